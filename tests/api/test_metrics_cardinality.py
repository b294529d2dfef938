"""``/metrics`` stays the same size however odd the requests (issue 9, item 1).

Every label comes from a closed set: a method outside it is ``other``, a path no
route matches is one ``<unmatched>`` route, a matched path is its template. A
random method never gets that far: uvicorn's HTTP parser (httptools) refuses it
with a 400 before the app sees the request, so it is in no series at all.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from router_helpers import Router, config_for, running_router


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with running_router(config_for(tmp_path, None)) as router:
        yield router


def _random_method(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=200))


_ODD_METHODS = ("PROPFIND", "MKCOL", "LOCK", "SEARCH", "PURGE", "REPORT")
"""Methods the HTTP parser knows and the Router does not: the app sees them."""


def _metrics_size(http: httpx.Client) -> int:
    response = http.get("/metrics")
    assert response.status_code == 200
    return len(response.content)


def test_random_methods_and_paths_add_no_series(router: Router) -> None:
    rng = random.Random(9)
    with httpx.Client(base_url=router.url, timeout=30) as http:
        assert http.request(_random_method(rng), "/healthz").status_code == 400
        assert http.request("PROPFIND", "/healthz").status_code == 405
        assert http.request("MKCOL", f"/no/such/{rng.random()}").status_code == 404
        assert http.get(f"/api/v1/sandboxes/sb-{rng.randrange(10**9)}").status_code == 401
        _metrics_size(http)  # its own series exists from here on
        before = _metrics_size(http)
        for _ in range(200):
            http.request(_random_method(rng), "/healthz")
            http.request(rng.choice(_ODD_METHODS), "/healthz")
            http.request(rng.choice(_ODD_METHODS), f"/no/such/{rng.random()}")
            http.get(f"/api/v1/sandboxes/sb-{rng.randrange(10**9)}")
        after = _metrics_size(http)
        text = http.get("/metrics").text
    # Only the counts' digits grow; 200 new series of each would add megabytes.
    assert after - before < 1000, (before, after)
    assert 'method="other",route="/healthz",status="405"' in text
    assert 'method="other",route="<unmatched>",status="404"' in text
    assert 'route="/api/v1/sandboxes/{sandbox_id}",status="401"' in text
    assert "AAAA" not in text and "/no/such" not in text
    assert not any(odd in text for odd in _ODD_METHODS)
