"""An upload's body on its way to disk (``api/bodies.py``): every byte, in order, at most 32 MiB.

Over real HTTP against a running Router on the local plane: bodies streamed in
uneven pieces arrive exactly; a body of exactly 32 MiB without a
``Content-Length`` is taken and one byte more is refused; a client that goes
away mid-body leaves no file, no temporary file, and a recorded error.
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from router_helpers import (
    KEYS,
    Router,
    config_for,
    eventually,
    running_router,
    stored_audit,
    wait_phase,
)

NAME = "sb-upload"
MAX = 32 * 1024 * 1024


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    """A Router on SQLite with alice's sandbox NAME Running."""
    with running_router(config_for(tmp_path, f"sqlite:///{tmp_path}/router.db")) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", NAME)
        wait_phase(alice, NAME)
        yield router


def _workdir(router: Router) -> Path:
    root: Path = router.state.control_plane.workdir(NAME, "default")  # type: ignore[attr-defined]
    return root


def _writes(router: Router, tmp_path: Path) -> list[dict[str, object]]:
    assert router.state.recorder.flush(10)
    return [{"outcome": e.outcome, **json.loads(e.details)}
            for e in stored_audit(f"sqlite:///{tmp_path}/router.db", action="files.write")]


def test_uneven_pieces_arrive_exactly(router: Router, tmp_path: Path) -> None:
    pick = random.Random(12)
    pieces = [os.urandom(pick.choice([1, 100, 4096, 65535, 65537, 300_000, 1 << 20]))
              for _ in range(40)]
    response = router.http("alice").put(f"/sandboxes/{NAME}/files/workspace/up.bin",
                                        content=iter(pieces))  # chunked: no Content-Length
    expected = b"".join(pieces)
    assert response.status_code == 201
    assert response.json() == {"path": "/workspace/up.bin", "bytes": len(expected)}
    assert (_workdir(router) / "up.bin").read_bytes() == expected
    assert [(w["outcome"], w["path"], w["bytes"]) for w in _writes(router, tmp_path)] == [
        ("success", "/workspace/up.bin", len(expected))]


def test_exactly_32_mib_streamed_is_taken_and_one_byte_more_is_not(router: Router) -> None:
    http = router.http("alice")

    def chunks(extra: bytes) -> Iterator[bytes]:
        for _ in range(32):
            yield b"\1" * (1 << 20)
        yield extra

    taken = http.put(f"/sandboxes/{NAME}/files/workspace/max.bin", content=chunks(b""))
    assert taken.status_code == 201
    assert taken.json()["bytes"] == MAX
    refused = http.put(f"/sandboxes/{NAME}/files/workspace/max.bin", content=chunks(b"\2"))
    assert refused.status_code == 413
    assert refused.json() == {"error": f"payload exceeds {MAX} bytes"}
    assert (_workdir(router) / "max.bin").stat().st_size == MAX  # the old file stays


def test_a_client_gone_mid_body_leaves_nothing_but_a_record(router: Router,
                                                           tmp_path: Path) -> None:
    url = urlsplit(router.url)
    head = (f"PUT /api/v1/sandboxes/{NAME}/files/workspace/half.bin HTTP/1.1\r\n"
            f"Host: {url.netloc}\r\nX-API-Key: {KEYS['alice']}\r\n"
            f"Content-Length: {8 << 20}\r\n\r\n").encode()
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head + b"\0" * (3 << 20))  # 3 of the 8 MiB announced, then gone

    def recorded() -> list[dict[str, object]]:
        return [w for w in _writes(router, tmp_path) if w["path"] == "/workspace/half.bin"]

    writes = eventually(recorded, "the abandoned upload's record")
    assert [w["outcome"] for w in writes] == ["error"]
    assert "ended before its body" in str(writes[0]["error"])
    assert list(_workdir(router).iterdir()) == []
