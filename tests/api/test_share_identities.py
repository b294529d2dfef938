"""Share identities with ``/`` or dots can be revoked, and bad ones are refused (issue 9, item 8).

``acme/devs`` is a usual group name, yet no path segment can carry it: the
revoke takes ``?identity=…&kind=…`` besides the path form. An identity must
be at most 255 characters, with no control character, and not ``.`` or ``..``
(which once turned a revoke into a delete of the sandbox).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase


@pytest.fixture
def router(tmp_path: Path, store_url: str) -> Iterator[Router]:
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-s")
        wait_phase(alice, "sb-s")
        yield router


def test_an_identity_with_a_slash_is_granted_and_revoked(router: Router, store_url: str) -> None:
    http = router.http("alice")
    for kind in ("group", "user"):
        granted = http.post("/sandboxes/sb-s/share",
                            json={"identity": "acme/devs", "level": "viewer", "kind": kind})
        assert granted.status_code == 200, granted.text
    revoked = http.delete("/sandboxes/sb-s/share",
                          params={"identity": "acme/devs", "kind": "group"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["groups"] == []
    assert revoked.json()["users"] == [{"identity": "acme/devs", "level": "viewer"}]
    gone = http.delete("/sandboxes/sb-s/share", params={"identity": "acme/devs"})
    assert gone.json()["users"] == [] and gone.json()["groups"] == []
    # The path form still works for plain identities.
    http.post("/sandboxes/sb-s/share", json={"identity": "bob", "level": "viewer"})
    assert http.delete("/sandboxes/sb-s/share/bob").json()["users"] == []
    router.state.recorder.flush(10)
    unshares = stored_audit(store_url, action="unshare")
    assert [json.loads(e.details)["identity"] for e in unshares] == ["acme/devs"] * 2 + ["bob"]
    assert json.loads(unshares[0].details)["kind"] == "group"


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Router]:
    """A Router with storage off (nothing here is about the database)."""
    with running_router(config_for(tmp_path, None)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-s")
        wait_phase(alice, "sb-s")
        yield router


def test_a_bad_identity_is_refused_for_share_and_unshare(plain: Router) -> None:
    http = plain.http("alice")
    for identity in (".", "..", "a\x00b", "tab\there", "x" * 256, "  ", "esc\x1b[31m", "c1\x85"):
        shared = http.post("/sandboxes/sb-s/share",
                           json={"identity": identity, "level": "viewer"})
        assert shared.status_code == 400, (identity, shared.text)
        assert "identity" in shared.json()["error"]
        unshared = http.delete("/sandboxes/sb-s/share", params={"identity": identity})
        assert unshared.status_code == 400, (identity, unshared.text)


def test_dots_in_the_path_never_delete_the_sandbox(plain: Router) -> None:
    router = plain
    http = router.http("alice")
    for encoded in ("%2E%2E", "%2E", ".%2E"):
        response = http.delete(f"/sandboxes/sb-s/share/{encoded}")
        assert response.status_code == 400, (encoded, response.text)
    assert router.client("alice").get_sandbox("sb-s").status().status == "Running"
