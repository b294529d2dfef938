"""``--dev-auth`` cannot be driven from a web page (issue 9, item 9).

Under ``--dev-auth`` every request is an admin. A page on another site must
not reach it through DNS rebinding (a foreign ``Host``) or a cross-site POST
(a foreign ``Origin``): both get 403, and both are recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase

from agenttier_router.api.hosts import loopback_host


@pytest.fixture
def router(tmp_path: Path, store_url: str) -> Iterator[Router]:
    config = config_for(tmp_path, store_url, keys=None, dev_auth=True)
    with running_router(config) as router:
        http = router.http()
        created = http.post("/sandboxes", json={"name": "sb-d", "templateRef": {"name": "minimal"}})
        assert created.status_code == 201, created.text
        yield router


def test_a_foreign_host_or_origin_is_refused_and_recorded(router: Router, store_url: str) -> None:
    http = router.http()
    rebound = {"Host": "rebind.evil.example"}
    assert http.get("/sandboxes", headers=rebound).status_code == 403
    ran = http.post("/sandboxes/sb-d/exec", json={"command": "touch pwned"}, headers=rebound)
    assert ran.status_code == 403
    assert "loopback Host" in ran.json()["error"]
    # A cross-site form post: text/plain, foreign Origin.
    stopped = http.post("/sandboxes/sb-d/stop", content="x",
                        headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert stopped.status_code == 403
    assert "another origin" in stopped.json()["error"]
    assert http.post("/sandboxes/sb-d/stop", headers={"Origin": "null"}).status_code == 403
    assert http.get("/sandboxes/sb-d").json()["status"] == "Running"
    router.state.recorder.flush(10)
    denied = stored_audit(store_url, actor="anonymous", outcome="denied", resource="router")
    assert len(denied) == 4
    hosts = [json.loads(e.details)["host"] for e in denied]
    assert hosts[:2] == ["rebind.evil.example"] * 2
    assert json.loads(denied[2].details)["origin"] == "http://evil.example"


def test_loopback_and_same_origin_are_served(router: Router) -> None:
    http = router.http()
    port = router.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert http.get("/sandboxes", headers={"Host": host}).status_code == 200, host
    same = http.post("/sandboxes/sb-d/exec", json={"command": "echo ok"},
                     headers={"Origin": router.url})
    assert same.status_code == 200 and same.json()["stdout"] == "ok\n"
    wait_phase(router.client("dev"), "sb-d")
    assert http.post("/sandboxes/sb-d/stop").status_code == 200  # no Origin: not a browser
    assert httpx.get(f"{router.url}/healthz").status_code == 200


def test_loopback_host_names() -> None:
    for host in ("localhost", "localhost:8080", "127.0.0.1", "127.1.2.3:80", "[::1]:8080",
                 "app.localhost", "LOCALHOST"):
        assert loopback_host(host), host
    for host in ("rebind.evil.example", "10.0.0.1:8080", "localhost.evil.example", "",
                 "[2001:db8::1]:80", "0.0.0.0"):
        assert not loopback_host(host), host
