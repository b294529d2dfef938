"""Files in kubernetes mode, end to end: the SDK's ``FilesAPI`` against a Router on a cluster.

The API server is :class:`kubefake.FakeKubernetes` over real HTTP (its docstring
says why it is a fake, and how a temporary ``spec.storage.mountPath`` gives the
pod a workspace of its own); :class:`kubecontroller.Controller` plays
AgentTier's controller. The Router is the real one; every transfer goes
through ``pods/exec``, and every action is in the audit log.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agenttier.exceptions import APIError, ConflictError, NotFoundError
from kubecontroller import Controller, seed_templates
from kubefake import FakeKubernetes
from router_helpers import Router, config_for, eventually, running_router, stored_audit, wait_phase

NS = "default"
NAME = "sb-kf"
MiB = 1024 * 1024


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        seed_templates(server)
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig")))
        yield server
        assert server.rejected == []


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The pod's workspace: the Sandbox's ``spec.storage.mountPath`` (see kubefake)."""
    path = tmp_path / "pod-workspace"
    path.mkdir()
    return path


@pytest.fixture
def router(kube: FakeKubernetes, workspace: Path, tmp_path: Path) -> Iterator[Router]:
    """A Router in kubernetes mode on SQLite, with alice's sandbox NAME Running."""
    config = config_for(tmp_path, f"sqlite:///{tmp_path}/router.db",
                        control_plane_url="kubernetes://")
    controller = Controller(kube)
    with running_router(config) as router:
        eventually(lambda: router.http("alice").get("/sandboxes").status_code == 200,
                   "the informer to sync")
        alice = router.client("alice")
        alice.create_sandbox(template="general-coding", name=NAME)
        kube.patch("sandboxes", NS, NAME, {"spec": {"storage": {"mountPath": str(workspace)}}})
        controller.reconcile(NAME, NS)
        controller.run(NAME, NS)
        wait_phase(alice, NAME)
        yield router


def _audit(router: Router, tmp_path: Path, action: str) -> list[dict[str, object]]:
    assert router.state.recorder.flush(10)
    return [{"outcome": e.outcome, "actor": e.actor, **json.loads(e.details)}
            for e in stored_audit(f"sqlite:///{tmp_path}/router.db", action=action)]


def test_the_sdk_writes_reads_lists_and_archives_through_the_pod(
        router: Router, kube: FakeKubernetes, workspace: Path, tmp_path: Path) -> None:
    files = router.client("alice").get_sandbox(NAME).files
    binary = bytes(range(256)) * 4096 + b"\0\0end"  # a MiB and more, NUL bytes included
    files.write("/workspace/src/main.py", "print('hi')\n")
    files.write("workspace/data.bin", binary)
    assert (workspace / "src" / "main.py").read_text() == "print('hi')\n"
    assert (workspace / "data.bin").read_bytes() == binary

    entries = {e.name: e for e in files.list("/workspace")}
    assert set(entries) == {"src", "data.bin"}
    assert entries["src"].is_dir and entries["data.bin"].size == len(binary)
    assert entries["data.bin"].mode == "-rw-r--r--" and entries["data.bin"].modified_at

    assert files.read("/workspace/src/main.py") == b"print('hi')\n"
    assert files.read("/workspace/data.bin") == binary
    target = tmp_path / "copy.bin"
    assert files.download("/workspace/data.bin", str(target)) == len(binary)
    assert target.read_bytes() == binary

    (workspace / "link").symlink_to("src/main.py")
    zipped = tmp_path / "ws.zip"
    assert files.archive(str(zipped)) > 0
    with zipfile.ZipFile(zipped) as zf:
        assert sorted(zf.namelist()) == ["data.bin", "link", "src/", "src/main.py"]
        assert zf.read("src/main.py") == b"print('hi')\n" and zf.read("data.bin") == binary
        assert zf.read("link") == b"src/main.py"
    assert any(p.endswith(f"/namespaces/{NS}/pods/{NAME}-pod/exec") for _, p, _ in kube.requests)

    writes = _audit(router, tmp_path, "files.write")
    assert [(w["outcome"], w["actor"], w["path"], w["bytes"]) for w in writes] == [
        ("success", "alice", "/workspace/src/main.py", 12),
        ("success", "alice", "/workspace/data.bin", len(binary))]
    reads = _audit(router, tmp_path, "files.read")
    assert [(r["outcome"], r["path"], r["bytes"]) for r in reads] == [
        ("success", "/workspace/src/main.py", 12), ("success", "/workspace/data.bin", len(binary)),
        ("success", "/workspace/data.bin", len(binary))]
    assert [a["path"] for a in _audit(router, tmp_path, "files.list")] == ["/workspace"]
    assert [a["path"] for a in _audit(router, tmp_path, "files.archive")] == ["/workspace"]


def test_http_headers_and_a_chunked_upload(router: Router, workspace: Path) -> None:
    http = router.http("alice")

    def body() -> Iterator[bytes]:  # no Content-Length: the Router counts it first
        yield b"chunk one;"
        yield b"chunk two"

    put = http.put(f"/sandboxes/{NAME}/files/workspace/we ird;na\"me.txt", content=body())
    assert put.status_code == 201 and put.json() == {"path": "/workspace/we ird;na\"me.txt",
                                                     "bytes": 19}
    got = http.get(f"/sandboxes/{NAME}/files/workspace/we ird;na\"me.txt")
    assert got.content == b"chunk one;chunk two"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-length"] == "19"
    assert got.headers["content-disposition"] == 'attachment; filename="weirdname.txt"'
    zipped = http.get(f"/sandboxes/{NAME}/archive")
    assert zipped.headers["content-disposition"] == f'attachment; filename="{NAME}-workspace.zip"'
    assert zipfile.ZipFile(io.BytesIO(zipped.content)).namelist() == ['we ird;na"me.txt']


def test_refusals_are_answered_and_recorded(router: Router, kube: FakeKubernetes,
                                            workspace: Path, tmp_path: Path) -> None:
    http = router.http("alice")
    files = router.client("alice").get_sandbox(NAME).files
    for path, message in [("workspace/%2E%2E/etc/passwd", "under it"),
                          ("workspace/a%00b", "disallowed characters")]:
        response = http.put(f"/sandboxes/{NAME}/files/{path}", content=b"x")
        assert response.status_code == 400 and message in response.json()["error"]

    (workspace / "etc").symlink_to("/etc")
    with pytest.raises(APIError, match="symbolic link") as raised:
        files.read("/workspace/etc/passwd")
    assert raised.value.status_code == 400
    with pytest.raises(APIError, match="symbolic link"):
        files.write("/workspace/etc/evil", b"x")
    assert not Path("/etc/evil").exists()

    too_big = http.put(f"/sandboxes/{NAME}/files/workspace/big.bin", content=b"\0" * (33 * MiB))
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "payload exceeds 33554432 bytes"}
    assert not (workspace / "big.bin").exists()

    with pytest.raises(NotFoundError, match="file not found: /workspace/nope"):
        files.read("/workspace/nope")
    (workspace / "dir").mkdir()
    assert http.get(f"/sandboxes/{NAME}/files/workspace/dir").status_code == 404
    with open(workspace / "huge", "wb") as huge:
        huge.truncate(32 * MiB + 1)
    assert http.get(f"/sandboxes/{NAME}/files/workspace/huge").status_code == 413

    kube.forbid("create", "pods/exec")
    refused = http.get(f"/sandboxes/{NAME}/files/workspace/x")
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    assert "pods/exec" in refused.json()["error"]
    kube.allow("create", "pods/exec")

    router.client("alice").get_sandbox(NAME).stop()
    Controller(kube).act_on_stop(NAME, NS)
    wait_phase(router.client("alice"), NAME, "Stopped")
    with pytest.raises(ConflictError, match="not running"):
        files.read("/workspace/etc/passwd")

    writes = [(w["outcome"], w["path"]) for w in _audit(router, tmp_path, "files.write")]
    assert writes == [("error", "workspace/../etc/passwd"), ("error", "workspace/a\x00b"),
                      ("error", "/workspace/etc/evil"), ("error", "/workspace/big.bin")]
    reads = [(r["outcome"], r["path"]) for r in _audit(router, tmp_path, "files.read")]
    assert reads == [("error", "/workspace/etc/passwd"), ("error", "/workspace/nope"),
                     ("error", "/workspace/dir"), ("error", "/workspace/huge"),
                     ("error", "/workspace/x"), ("error", "/workspace/etc/passwd")]
