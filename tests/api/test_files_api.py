"""Files over real HTTP: the SDK's ``FilesAPI`` against a running Router on the local plane,
with every read, write, listing and archive recorded, and every way out refused."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agenttier.exceptions import APIError, ConflictError, NotFoundError
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase

NAME = "sb-files"


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


def _audit(router: Router, tmp_path: Path, action: str) -> list[dict[str, object]]:
    assert router.state.recorder.flush(10)
    return [{"outcome": e.outcome, "actor": e.actor, **json.loads(e.details)}
            for e in stored_audit(f"sqlite:///{tmp_path}/router.db", action=action)]


def test_write_list_read_download_and_archive_with_the_sdk(
        router: Router, tmp_path: Path) -> None:
    files = router.client("alice").get_sandbox(NAME).files
    files.write("/workspace/src/main.py", "print('hi')\n")
    files.write("workspace/data.bin", bytes(range(256)))
    assert (_workdir(router) / "src" / "main.py").read_text() == "print('hi')\n"

    entries = {e.name: e for e in files.list("/workspace")}
    assert set(entries) == {"src", "data.bin"}
    assert entries["src"].is_dir and entries["data.bin"].size == 256
    assert entries["data.bin"].mode == "-rw-r--r--" and entries["data.bin"].modified_at

    assert files.read("/workspace/src/main.py") == b"print('hi')\n"
    target = tmp_path / "copy.bin"
    assert files.download("/workspace/data.bin", str(target)) == 256
    assert target.read_bytes() == bytes(range(256))

    zipped = tmp_path / "ws.zip"
    assert files.archive(str(zipped)) > 0
    with zipfile.ZipFile(zipped) as zf:
        assert sorted(zf.namelist()) == ["data.bin", "src/", "src/main.py"]
        assert zf.read("src/main.py") == b"print('hi')\n"

    writes = _audit(router, tmp_path, "files.write")
    assert [(w["outcome"], w["path"], w["bytes"]) for w in writes] == [
        ("success", "/workspace/src/main.py", 12), ("success", "/workspace/data.bin", 256)]
    reads = _audit(router, tmp_path, "files.read")
    assert [(r["path"], r["bytes"]) for r in reads] == [
        ("/workspace/src/main.py", 12), ("/workspace/data.bin", 256)]
    assert [a["path"] for a in _audit(router, tmp_path, "files.list")] == ["/workspace"]
    assert [a["path"] for a in _audit(router, tmp_path, "files.archive")] == ["/workspace"]


def test_read_headers(router: Router) -> None:
    http = router.http("alice")
    assert http.put(f"/sandboxes/{NAME}/files/workspace/we ird;na\"me.txt",
                    content=b"abc").status_code == 201
    response = http.get(f"/sandboxes/{NAME}/files/workspace/we ird;na\"me.txt")
    assert response.status_code == 200 and response.content == b"abc"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="weirdname.txt"'
    zipped = http.get(f"/sandboxes/{NAME}/archive", params={"path": "/workspace"})
    assert zipped.headers["content-type"] == "application/zip"
    assert zipped.headers["content-disposition"] == f'attachment; filename="{NAME}-workspace.zip"'
    assert zipfile.ZipFile(io.BytesIO(zipped.content)).namelist() == ['we ird;na"me.txt']


def test_put_answers_path_and_bytes(router: Router) -> None:
    response = router.http("alice").put(f"/sandboxes/{NAME}/files/workspace/a/b/c.txt",
                                        content=b"12345")
    assert response.status_code == 201
    assert response.json() == {"path": "/workspace/a/b/c.txt", "bytes": 5}


@pytest.mark.parametrize(("path", "status", "message"), [
    ("workspace/../etc/passwd", 400, "under it"),
    ("etc/passwd", 400, "under it"),
    ("workspace/%2E%2E/%2E%2E/etc/passwd", 400, "under it"),
    ("workspace/a%00b", 400, "disallowed characters"),
    ("workspace/a%0Ab", 400, "disallowed characters"),
    ("workspace/it's", 400, "disallowed characters"),
])
def test_bad_paths_are_refused_and_recorded(router: Router, tmp_path: Path, path: str,
                                            status: int, message: str) -> None:
    http = router.http("alice")
    for response in (http.get(f"/sandboxes/{NAME}/files/{path}"),
                     http.put(f"/sandboxes/{NAME}/files/{path}", content=b"x")):
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
    outcomes = [a["outcome"] for a in _audit(router, tmp_path, "files.read")]
    outcomes += [a["outcome"] for a in _audit(router, tmp_path, "files.write")]
    assert outcomes == ["error", "error"]


def test_a_symlink_out_of_the_sandbox_is_refused(router: Router, tmp_path: Path) -> None:
    (_workdir(router) / "etc").symlink_to("/etc")
    files = router.client("alice").get_sandbox(NAME).files
    with pytest.raises(APIError, match="symbolic link") as raised:
        files.read("/workspace/etc/passwd")
    assert raised.value.status_code == 400
    with pytest.raises(APIError, match="symbolic link"):
        files.write("/workspace/etc/evil", b"x")
    with pytest.raises(APIError, match="symbolic link"):
        files.list("/workspace/etc")
    assert not Path("/etc/evil").exists()


def test_a_body_over_32_mib_is_refused_with_413(router: Router, tmp_path: Path) -> None:
    http = router.http("alice")
    response = http.put(f"/sandboxes/{NAME}/files/workspace/big.bin",
                        content=b"\0" * (33 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json() == {"error": "payload exceeds 33554432 bytes"}
    assert not (_workdir(router) / "big.bin").exists()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(33):
            yield b"\0" * (1024 * 1024)

    streamed = http.put(f"/sandboxes/{NAME}/files/workspace/big.bin", content=chunks())
    assert streamed.status_code == 413
    assert [a["outcome"] for a in _audit(router, tmp_path, "files.write")] == ["error", "error"]


def test_reading_a_file_over_32_mib_is_413(router: Router) -> None:
    with open(_workdir(router) / "huge", "wb") as f:
        f.truncate(32 * 1024 * 1024 + 1)
    assert router.http("alice").get(f"/sandboxes/{NAME}/files/workspace/huge").status_code == 413


def test_missing_files_and_directories_are_404(router: Router) -> None:
    files = router.client("alice").get_sandbox(NAME).files
    with pytest.raises(NotFoundError, match="file not found: /workspace/nope"):
        files.read("/workspace/nope")
    with pytest.raises(NotFoundError, match="path not found"):
        files.list("/workspace/nope")
    with pytest.raises(NotFoundError, match="directory not found: /workspace/nope"):
        files.archive(os.devnull, "/workspace/nope")
    response = router.http("alice").get(f"/sandboxes/{NAME}/archive", params={"path": "/etc"})
    assert response.status_code == 400


def test_only_owners_and_admins_and_only_running(router: Router, tmp_path: Path) -> None:
    router.client("alice").get_sandbox(NAME).files.write("/workspace/f", b"mine")
    response = router.http("bob").get(f"/sandboxes/{NAME}/files/workspace/f")
    assert response.status_code == 404
    assert router.http().get(f"/sandboxes/{NAME}/files/workspace/f").status_code == 401
    assert router.http("carol").get(f"/sandboxes/{NAME}/files/workspace/f").content == b"mine"
    # a collaborator sees the sandbox but may not touch its files
    router.http("alice").post(f"/sandboxes/{NAME}/share",
                              json={"identity": "bob", "level": "collaborator"})
    assert router.http("bob").get(f"/sandboxes/{NAME}/files/workspace/f").status_code == 403
    outcomes = [(a["actor"], a["outcome"]) for a in _audit(router, tmp_path, "files.read")]
    assert outcomes == [("bob", "denied"), ("anonymous", "denied"), ("carol", "success"),
                        ("bob", "denied")]

    router.client("alice").get_sandbox(NAME).stop()
    with pytest.raises(ConflictError, match="not running"):
        router.client("alice").get_sandbox(NAME).files.read("/workspace/f")


def test_a_refused_upload_is_answered_without_its_body(router: Router, tmp_path: Path) -> None:
    big = b"\0" * (8 * 1024 * 1024)
    assert router.http("bob").put(f"/sandboxes/{NAME}/files/workspace/x",
                                  content=big).status_code == 404
    assert router.http().put(f"/sandboxes/{NAME}/files/workspace/x",
                             content=big).status_code == 401
    assert router.http("alice").put(f"/sandboxes/{NAME}/files/workspace/%2E%2E/etc/x",
                                    content=big).status_code == 400
    assert not (_workdir(router) / "x").exists()
    assert [(a["actor"], a["outcome"]) for a in _audit(router, tmp_path, "files.write")] == [
        ("bob", "denied"), ("anonymous", "denied"), ("alice", "error")]
