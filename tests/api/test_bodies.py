"""Request bodies: capped, and never read for a caller without a key (issue 9, items 5, 18).

A body over the limit is refused with 413 before it is read; a keyless
request is refused with 401 (and recorded) whatever its body, before a byte
of the body is read; a refused history read is recorded as ``denied``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from router_helpers import KEYS, Router, config_for, running_router, stored_audit, wait_phase

LIMIT = 64 * 1024


@pytest.fixture
def router(tmp_path: Path, store_url: str) -> Iterator[Router]:
    with running_router(config_for(tmp_path, store_url, max_body_bytes=LIMIT)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-a")
        wait_phase(alice, "sb-a")
        yield router


def _head_only(router: Router, path: str, length: int, key: str | None) -> tuple[int, bytes]:
    """Send a request's headers and 1 KiB of a ``length``-byte body; return the answer.

    The rest of the body is never sent: a server that waits to read it all
    never answers, and the read times out.
    """
    url = urlsplit(router.url)
    headers = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}",
               "Content-Type: application/json", f"Content-Length: {length}"]
    if key is not None:
        headers.append(f"X-API-Key: {key}")
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + b"{" + b" " * 1023)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.split(b"\r\n\r\n", 1)[1]


def test_a_body_over_the_limit_is_413_before_it_is_read(router: Router) -> None:
    status, body = _head_only(router, "/api/v1/sandboxes/sb-a/exec", 200 * 2**20, KEYS["alice"])
    assert status == 413
    assert json.loads(body) == {"error": f"request body too large: at most {LIMIT} bytes"}
    http = router.http("alice")
    # Streamed (chunked, no Content-Length): counted as it arrives.
    chunks = (b" " * 8192 for _ in range(LIMIT // 8192 + 2))
    streamed = http.post("/sandboxes/sb-a/exec", content=chunks,
                         headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    # Under the limit, all is as before.
    command = "echo " + "x" * (LIMIT // 2)
    assert http.post("/sandboxes/sb-a/exec", json={"command": command}).status_code == 200


def test_a_keyless_body_is_never_read_and_the_attempt_recorded(
    router: Router, store_url: str
) -> None:
    # 50 MiB announced, 1 KiB sent: the 401 comes without the rest.
    status, body = _head_only(router, "/api/v1/sandboxes/sb-a/exec", 50 * 2**20, None)
    assert status == 401
    assert json.loads(body) == {"error": "a valid X-API-Key header is required"}
    router.state.recorder.flush(10)
    [event] = stored_audit(store_url, actor="anonymous", action="exec")
    assert (event.outcome, event.sandbox_id) == ("denied", "sb-a")
    assert json.loads(event.details)["reason"] == "no valid API key"


def test_a_keyless_bad_body_is_401_not_400_and_recorded(router: Router, store_url: str) -> None:
    anonymous = router.http()
    for path, body in (("/sandboxes", "{not json"), ("/sandboxes/sb-a/exec", '{"command": 5}'),
                       ("/sandboxes/sb-a/share", "[]")):
        response = anonymous.post(path, content=body,
                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 401, (path, response.text)
    # With a key, a bad body is still a 400 that names the field.
    bad = router.http("alice").post("/sandboxes/sb-a/exec", json={"command": 5})
    assert bad.status_code == 400 and "command" in bad.json()["error"]
    router.state.recorder.flush(10)
    denied = stored_audit(store_url, actor="anonymous", outcome="denied")
    assert sorted(e.action for e in denied) == ["create", "exec", "share"]


def test_a_refused_history_read_is_recorded(router: Router, store_url: str) -> None:
    assert router.http("bob").get("/audit/events").status_code == 403
    assert router.http().get("/records/costs").status_code == 401
    assert router.http("carol").get("/audit/events").status_code == 200
    router.state.recorder.flush(10)
    [bob] = stored_audit(store_url, actor="bob")
    assert (bob.action, bob.resource, bob.outcome) == ("read", "history", "denied")
    assert json.loads(bob.details) == {"email": "bob@example.com", "path": "/api/v1/audit/events",
                                       "reason": "reading history is for admins"}
    [anonymous] = stored_audit(store_url, actor="anonymous", resource="history")
    assert json.loads(anonymous.details)["path"] == "/api/v1/records/costs"
    assert stored_audit(store_url, actor="carol", action="read") == []
