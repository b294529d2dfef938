"""The files seam (``plane.files``), run on every plane: local, and Kubernetes through pods/exec.

On the Kubernetes plane the fake API server runs the pod's commands on this
machine (tests/kubefake.py); each sandbox here gets a temporary directory as
its ``spec.storage.mountPath``, which is then its pod's workspace. So on both
planes ``workspace`` below is the sandbox's ``/workspace`` as seen from here.
"""

from __future__ import annotations

import io
import os
import stat
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_helpers import Driver, KubernetesDriver
from cp_helpers import NS, wait_for

from agenttier_router.controlplane import (
    ControlPlaneError,
    InvalidRequest,
    Phase,
    Sandbox,
    SandboxConflict,
)
from agenttier_router.controlplane.files import MAX_FILE_BYTES, FileNotFound, FileTooLarge

MiB = 1024 * 1024


def _running_with_workspace(driver: Driver, name: str, tmp_path: Path) -> tuple[Sandbox, Path]:
    """A Running sandbox and its workspace directory, as seen from this machine."""
    if not isinstance(driver, KubernetesDriver):
        sandbox = driver.running(name)
        return sandbox, driver.plane.workdir(name, NS)  # type: ignore[attr-defined]
    workspace = tmp_path / f"pod-{name}"
    workspace.mkdir()
    driver.plane.create(name, NS, "general-coding", "alice", "alice@example.com")
    driver.controller.kube.patch("sandboxes", NS, name,
                                 {"spec": {"storage": {"mountPath": str(workspace)}}})
    driver.controller.reconcile(name, NS)
    driver.controller.run(name, NS)
    wait_for(lambda: driver.plane.get(name, NS).phase is Phase.RUNNING, f"{name} Running")
    return driver.plane.get(name, NS), workspace


@pytest.fixture
def sandbox(driver: Driver, tmp_path: Path) -> tuple[Sandbox, Path]:
    return _running_with_workspace(driver, "sb", tmp_path)


def _read(driver: Driver, sandbox: Sandbox, path: str) -> bytes:
    with driver.plane.files.open_file(sandbox, path) as opened:
        data = b"".join(opened.chunks(1 << 20))
        assert len(data) == opened.size
        return data


def _zip(driver: Driver, sandbox: Sandbox, path: str = "/workspace") -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(driver.plane.files.archive(sandbox, path))))


def _leftovers(workspace: Path) -> list[str]:
    return [p.name for p in workspace.rglob(".agenttier-*")]


@pytest.mark.parametrize("hinted", [True, False], ids=["sized", "chunked"])
def test_write_list_read_and_archive_round_trip(driver: Driver, sandbox: tuple[Sandbox, Path],
                                                hinted: bool) -> None:
    sb, workspace = sandbox
    files = driver.plane.files
    body = b"print('hi')\n"
    assert files.write_file(sb, "/workspace/src/main.py", [body],
                            size=len(body) if hinted else None) == len(body)
    assert files.write_file(sb, "workspace/data.bin", [bytes(range(256))],
                            size=256 if hinted else None) == 256
    assert (workspace / "src" / "main.py").read_bytes() == body

    listing = files.list_files(sb, "/workspace")
    assert listing.path == "/workspace"
    entries = {e.name: e for e in listing.entries}
    assert list(entries) == ["data.bin", "src"]
    assert entries["src"].is_dir and entries["src"].mode.startswith("d")
    assert (entries["data.bin"].size, entries["data.bin"].mode) == (256, "-rw-r--r--")
    assert entries["data.bin"].modified_at == int((workspace / "data.bin").stat().st_mtime)
    assert [e.name for e in files.list_files(sb, "/workspace/src/").entries] == ["main.py"]

    with files.open_file(sb, "/workspace/src/main.py") as opened:
        assert (opened.path, opened.name, opened.size) == ("/workspace/src/main.py",
                                                           "main.py", len(body))
        assert b"".join(opened.chunks()) == body

    with _zip(driver, sb) as zf:
        assert sorted(zf.namelist()) == ["data.bin", "src/", "src/main.py"]
        assert zf.read("src/main.py") == body and zf.read("data.bin") == bytes(range(256))
        assert zf.getinfo("data.bin").compress_type == zipfile.ZIP_DEFLATED
    with _zip(driver, sb, "/workspace/src") as zf:
        assert zf.namelist() == ["main.py"]
    assert _leftovers(workspace) == []


def test_binary_content_with_nul_bytes_and_a_mebibyte(driver: Driver,
                                                      sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    nul = b"\0a\0\0b\n\r\n\xff\0"
    big = os.urandom(MiB + 7)
    pieces = [big[i:i + 100_000] for i in range(0, len(big), 100_000)]
    assert driver.plane.files.write_file(sb, "/workspace/nul.bin", [nul], size=len(nul)) == 10
    assert driver.plane.files.write_file(sb, "/workspace/big.bin", pieces,
                                         size=len(big)) == len(big)
    assert driver.plane.files.write_file(sb, "/workspace/empty", [], size=0) == 0
    assert (workspace / "big.bin").read_bytes() == big
    assert _read(driver, sb, "/workspace/nul.bin") == nul
    assert _read(driver, sb, "/workspace/big.bin") == big
    assert _read(driver, sb, "/workspace/empty") == b""
    with _zip(driver, sb) as zf:
        assert zf.read("big.bin") == big and zf.read("nul.bin") == nul


def test_names_with_spaces_and_unicode(driver: Driver, sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    path = "/workspace/dir with space/ünïcödé ✓ -x;$(date)*.txt"
    driver.plane.files.write_file(sb, path, [b"odd"], size=3)
    assert (workspace / "dir with space" / "ünïcödé ✓ -x;$(date)*.txt").read_bytes() == b"odd"
    (workspace / "dir with space" / "-n").write_bytes(b"dash")
    listing = driver.plane.files.list_files(sb, "/workspace/dir with space")
    assert [e.name for e in listing.entries] == ["-n", "ünïcödé ✓ -x;$(date)*.txt"]
    assert _read(driver, sb, path) == b"odd"
    assert _read(driver, sb, "/workspace/dir with space/-n") == b"dash"
    with _zip(driver, sb) as zf:
        assert sorted(zf.namelist()) == ["dir with space/", "dir with space/-n",
                                         "dir with space/ünïcödé ✓ -x;$(date)*.txt"]


def test_an_existing_file_is_replaced_and_keeps_its_mode(
        driver: Driver, sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    script = workspace / "run.sh"
    script.write_bytes(b"old")
    script.chmod(0o750)
    driver.plane.files.write_file(sb, "/workspace/run.sh", [b"new!"], size=4)
    assert script.read_bytes() == b"new!"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750


@pytest.mark.parametrize(("path", "message"), [
    pytest.param("/workspace/../etc/passwd", "under it", id="dotdot"),
    pytest.param("/etc/passwd", "under it", id="outside"),
    pytest.param("/workspace/a\0b", "disallowed characters", id="nul"),
    pytest.param("/workspace/a\nb", "disallowed characters", id="newline"),
    pytest.param("/workspace/it's", "disallowed characters", id="quote"),
    pytest.param("/workspace/a\\b", "disallowed characters", id="backslash"),
    pytest.param("/workspace/`id`", "disallowed characters", id="backtick"),
])
def test_bad_paths_are_refused(driver: Driver, sandbox: tuple[Sandbox, Path], path: str,
                               message: str) -> None:
    sb, _ = sandbox
    files = driver.plane.files
    with pytest.raises(InvalidRequest, match=message):
        files.open_file(sb, path)
    with pytest.raises(InvalidRequest, match=message):
        files.write_file(sb, path, [b"x"], size=1)
    with pytest.raises(InvalidRequest, match=message):
        files.list_files(sb, path)
    with pytest.raises(InvalidRequest, match=message):
        files.archive(sb, path)


def test_a_symlink_out_of_the_workspace_is_never_followed(
        driver: Driver, sandbox: tuple[Sandbox, Path], tmp_path: Path) -> None:
    sb, workspace = sandbox
    files = driver.plane.files
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (workspace / "out").symlink_to(outside)
    (workspace / "secret-link").symlink_to(outside / "secret")
    link = "path goes through a symbolic link at /workspace/out"
    with pytest.raises(InvalidRequest, match=link):
        files.open_file(sb, "/workspace/out/secret")
    with pytest.raises(InvalidRequest, match=link):
        files.write_file(sb, "/workspace/out/evil", [b"x"], size=1)
    with pytest.raises(InvalidRequest, match=link):
        files.write_file(sb, "/workspace/out/deeper/evil", [b"x"], size=1)
    with pytest.raises(InvalidRequest, match=link):
        files.list_files(sb, "/workspace/out")
    with pytest.raises(InvalidRequest, match=link):
        files.archive(sb, "/workspace/out")
    with pytest.raises(InvalidRequest, match="symbolic link at /workspace/secret-link"):
        files.open_file(sb, "/workspace/secret-link")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]

    # The last component may be a link: a write replaces the link, never its target.
    files.write_file(sb, "/workspace/secret-link", [b"mine"], size=4)
    assert (outside / "secret").read_bytes() == b"secret"
    assert not (workspace / "secret-link").is_symlink()
    assert (workspace / "secret-link").read_bytes() == b"mine"

    # Listings show links as links; zips store them as their text.
    entries = {e.name: e for e in files.list_files(sb).entries}
    assert entries["out"].mode.startswith("l") and not entries["out"].is_dir
    with _zip(driver, sb) as zf:
        assert sorted(zf.namelist()) == ["out", "secret-link"]
        assert zf.read("out") == str(outside).encode()
        assert stat.S_ISLNK(zf.getinfo("out").external_attr >> 16)


def test_over_32_mib_is_refused_both_ways(driver: Driver, sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    files = driver.plane.files

    def body() -> Iterator[bytes]:
        for _ in range(33):
            yield b"\0" * MiB

    with pytest.raises(FileTooLarge, match="payload exceeds 33554432 bytes"):
        files.write_file(sb, "/workspace/big.bin", body())
    with pytest.raises(FileTooLarge, match="payload exceeds 33554432 bytes"):
        files.write_file(sb, "/workspace/big.bin", body(), size=33 * MiB)
    assert not (workspace / "big.bin").exists() and _leftovers(workspace) == []

    with open(workspace / "huge", "wb") as huge:
        huge.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(FileTooLarge, match="over 33554432"):
        files.open_file(sb, "/workspace/huge")
    (workspace / "huge").unlink()
    with open(workspace / "exact", "wb") as exact:
        exact.truncate(MAX_FILE_BYTES)
    assert len(_read(driver, sb, "/workspace/exact")) == MAX_FILE_BYTES


def test_missing_files_and_directories(driver: Driver, sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    files = driver.plane.files
    (workspace / "dir").mkdir()
    (workspace / "plain").write_bytes(b"x")
    with pytest.raises(FileNotFound, match=r"^file not found: /workspace/nope$"):
        files.open_file(sb, "/workspace/nope")
    with pytest.raises(FileNotFound, match=r"^file not found: /workspace/dir \(a directory\)"):
        files.open_file(sb, "/workspace/dir")
    with pytest.raises(FileNotFound, match=r"^file not found: /workspace$"):
        files.open_file(sb, "/workspace")
    with pytest.raises(FileNotFound, match=r"^path not found: /workspace/nope$"):
        files.list_files(sb, "/workspace/nope")
    with pytest.raises(FileNotFound, match=r"^path not found: /workspace/nope$"):
        files.open_file(sb, "/workspace/nope/file")
    with pytest.raises(FileNotFound, match=r"^path not found: /workspace/plain \(not a dir"):
        files.list_files(sb, "/workspace/plain")
    with pytest.raises(FileNotFound, match=r"^directory not found: /workspace/nope$"):
        files.archive(sb, "/workspace/nope")
    with pytest.raises(InvalidRequest, match="is a directory"):
        files.write_file(sb, "/workspace/dir", [b"x"], size=1)
    with pytest.raises(InvalidRequest, match="is a directory"):
        files.write_file(sb, "/workspace", [b"x"], size=1)
    with pytest.raises(InvalidRequest, match="/workspace/plain is not a directory"):
        files.write_file(sb, "/workspace/plain/under", [b"x"], size=1)
    assert (workspace / "plain").read_bytes() == b"x" and _leftovers(workspace) == []


def test_files_need_a_running_sandbox(driver: Driver, sandbox: tuple[Sandbox, Path]) -> None:
    sb, _ = sandbox
    files = driver.plane.files
    files.write_file(sb, "/workspace/kept", [b"kept"], size=4)
    driver.stop("sb")
    for call in (lambda: files.list_files(sb), lambda: files.open_file(sb, "/workspace/kept"),
                 lambda: files.write_file(sb, "/workspace/x", [b"x"], size=1),
                 lambda: files.archive(sb)):
        with pytest.raises(SandboxConflict, match="not running"):
            call()
    driver.resume("sb")
    assert _read(driver, driver.plane.get("sb", NS), "/workspace/kept") == b"kept"


def test_a_body_that_fails_midway_leaves_the_old_file(
        driver: Driver, sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    (workspace / "f").write_bytes(b"old")

    def broken() -> Iterator[bytes]:
        yield b"new" * 1000
        raise ControlPlaneError("the upload ended before its body did")

    with pytest.raises(ControlPlaneError, match="upload ended"):
        driver.plane.files.write_file(sb, "/workspace/f", broken(), size=10_000)
    assert (workspace / "f").read_bytes() == b"old"
    wait_for(lambda: _leftovers(workspace) == [], "the temporary file to go")


def test_an_archive_is_streamed_in_flat_memory(driver: Driver,
                                               sandbox: tuple[Sandbox, Path]) -> None:
    sb, workspace = sandbox
    big = os.urandom(24 * MiB)  # random: the zip is as big as its input
    (workspace / "big.bin").write_bytes(big)
    for i in range(200):
        (workspace / "many" / f"{i % 10}").mkdir(parents=True, exist_ok=True)
        (workspace / "many" / f"{i % 10}" / f"f{i}").write_bytes(b"x" * i)
    tracemalloc.start()
    try:
        total = 0
        largest = 0
        for piece in driver.plane.files.archive(sb):
            total += len(piece)
            largest = max(largest, len(piece))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > len(big)
    assert largest < 2 * MiB and peak < 8 * MiB, (largest, peak)  # never the whole 24 MiB
