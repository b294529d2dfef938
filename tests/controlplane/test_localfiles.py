"""Files of a local sandbox: list, read, write, zip, and every way out of the root refused."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from agenttier_router.controlplane import ControlPlaneError, InvalidRequest
from agenttier_router.controlplane.localfiles import (
    MAX_FILE_BYTES,
    FileNotFound,
    FileTooLarge,
    archive,
    clean_path,
    list_dir,
    open_file,
    read_file,
    write_file,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir(mode=0o700)
    return sandbox


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file beside the sandbox, which no call may read or change."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (outside / "outside-only").write_text("top secret")
    return outside


# -- paths ------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "cleaned", "parts"), [
    ("/workspace", "/workspace", []),
    ("", "/workspace", []),
    ("workspace/a.txt", "/workspace/a.txt", ["a.txt"]),
    ("/workspace//src/./x/../main.py", "/workspace/src/main.py", ["src", "main.py"]),
    ("/workspace/", "/workspace", []),
])
def test_paths_are_made_absolute_and_cleaned(given: str, cleaned: str, parts: list[str]) -> None:
    assert clean_path(given) == (cleaned, parts)


@pytest.mark.parametrize("bad", ["/workspace/a'b", "/workspace/a\\b", "/workspace/`id`",
                                 "/workspace/a\nb", "/workspace/a\rb", "/workspace/a\x00b"])
def test_disallowed_characters(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="disallowed characters"):
        clean_path(bad)


@pytest.mark.parametrize("outside", ["/etc/passwd", "/workspace/../etc/passwd",
                                     "/workspace/a/../../etc", "../../etc", "/", "/workspaces",
                                     "/workspace-evil/x", "workspace/../../../root"])
def test_paths_outside_the_workspace_are_refused(outside: str, root: Path) -> None:
    with pytest.raises(InvalidRequest, match="under it"):
        read_file(root, outside)
    with pytest.raises(InvalidRequest, match="under it"):
        write_file(root, outside, b"x")
    assert list(root.iterdir()) == []


# -- write and read ------------------------------------------------------------------------

def test_write_then_read_with_parents_made(root: Path) -> None:
    assert write_file(root, "/workspace/src/pkg/main.py", b"print('hi')\n") == 12
    assert (root / "src" / "pkg" / "main.py").read_bytes() == b"print('hi')\n"
    assert read_file(root, "workspace/src/pkg/main.py") == b"print('hi')\n"


def test_write_in_chunks_and_overwrite_keeps_the_mode(root: Path) -> None:
    write_file(root, "/workspace/run.sh", b"old")
    os.chmod(root / "run.sh", 0o750)
    assert write_file(root, "/workspace/run.sh", iter([b"#!/bin/sh\n", b"", b"echo hi\n"])) == 18
    assert (root / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o750


def test_write_leaves_no_temporary_files(root: Path) -> None:
    write_file(root, "/workspace/a", b"1")
    with pytest.raises(FileTooLarge):
        write_file(root, "/workspace/b", b"x" * 10, max_bytes=5)
    assert sorted(p.name for p in root.iterdir()) == ["a"]


def test_an_empty_file(root: Path) -> None:
    assert write_file(root, "/workspace/empty", b"") == 0
    assert read_file(root, "/workspace/empty") == b""


def test_a_body_over_32_mib_is_refused_and_the_old_file_kept(root: Path) -> None:
    write_file(root, "/workspace/big.bin", b"original")
    chunk = b"\0" * (1 << 20)
    with pytest.raises(FileTooLarge, match="payload exceeds 33554432 bytes"):
        write_file(root, "/workspace/big.bin", (chunk for _ in range(33)))
    assert read_file(root, "/workspace/big.bin") == b"original"
    assert write_file(root, "/workspace/big.bin", (chunk for _ in range(32))) == MAX_FILE_BYTES


def test_reading_a_file_over_32_mib_is_refused(root: Path) -> None:
    with open(root / "huge", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(FileTooLarge):
        open_file(root, "/workspace/huge")


def test_read_missing_or_directory_is_not_found(root: Path) -> None:
    (root / "dir").mkdir()
    for path in ("/workspace/nope", "/workspace/dir", "/workspace", "/workspace/nope/x"):
        with pytest.raises(FileNotFound, match="not found"):
            read_file(root, path)


def test_reading_a_fifo_does_not_hang(root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(InvalidRequest, match="not a regular file"):
        read_file(root, "/workspace/pipe")


def test_write_onto_a_directory_or_the_root_is_refused(root: Path) -> None:
    (root / "dir").mkdir()
    with pytest.raises(InvalidRequest, match="is a directory"):
        write_file(root, "/workspace/dir", b"x")
    with pytest.raises(InvalidRequest, match="is a directory"):
        write_file(root, "/workspace", b"x")
    write_file(root, "/workspace/file", b"x")
    with pytest.raises(InvalidRequest, match="not a directory"):
        write_file(root, "/workspace/file/child", b"x")


def test_opened_file_streams_in_chunks_and_closes(root: Path) -> None:
    write_file(root, "/workspace/data", bytes(range(256)) * 1000)
    with open_file(root, "/workspace/data") as opened:
        assert (opened.name, opened.size, opened.path) == ("data", 256000, "/workspace/data")
        pieces = list(opened.chunks(100_000))
    assert [len(p) for p in pieces] == [100_000, 100_000, 56_000]


def test_lists_of_pieces_are_written_in_order(root: Path) -> None:
    pieces = [os.urandom(n % 97) for n in range(3000)]  # more than one writev takes
    data: list[object] = [pieces[:1500], b"", bytearray(b"mid"), [], [memoryview(b"xyz")],
                          pieces[1500:]]
    expected = b"".join(pieces[:1500]) + b"mid" + b"xyz" + b"".join(pieces[1500:])
    assert write_file(root, "/workspace/pieces.bin", data) == len(expected)  # type: ignore[arg-type]
    assert (root / "pieces.bin").read_bytes() == expected


def test_lists_of_pieces_past_the_limit_keep_the_old_file(root: Path) -> None:
    write_file(root, "/workspace/f", b"original")
    with pytest.raises(FileTooLarge, match="payload exceeds 10 bytes"):
        write_file(root, "/workspace/f", [[b"12345", b"678"], [b"9", b"01"]], max_bytes=10)
    assert read_file(root, "/workspace/f") == b"original"
    assert sorted(p.name for p in root.iterdir()) == ["f"]


def _descriptors() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


def test_replacing_a_large_file_lets_the_old_one_go(root: Path) -> None:
    old, new = os.urandom(2 << 20), os.urandom(2 << 20)
    write_file(root, "/workspace/big.bin", old)
    with open(root / "big.bin", "rb") as reader:  # a reader keeps the old bytes, as ever
        before = _descriptors()
        assert write_file(root, "/workspace/big.bin", new) == len(new)
        assert (root / "big.bin").read_bytes() == new
        assert reader.read() == old
        assert os.fstat(reader.fileno()).st_nlink == 0
    # the replaced file's hold is closed on the retiring thread: no descriptor is kept
    for _ in range(500):
        if _descriptors() <= before:
            break
        threading.Event().wait(0.01)
    assert _descriptors() <= before
    assert sorted(p.name for p in root.iterdir()) == ["big.bin"]


# -- symlinks ------------------------------------------------------------------------------

def test_a_link_to_etc_is_never_followed(root: Path) -> None:
    (root / "etc").symlink_to("/etc")
    (root / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        read_file(root, "/workspace/etc/passwd")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        read_file(root, "/workspace/passwd")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        list_dir(root, "/workspace/etc")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        archive(root, "/workspace/etc")


def test_writing_through_a_link_never_reaches_outside(root: Path, secret: Path) -> None:
    (root / "out").symlink_to(secret)
    (root / "secret.txt").symlink_to(secret / "secret.txt")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        write_file(root, "/workspace/out/secret.txt", b"pwned")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        write_file(root, "/workspace/out/new/file", b"pwned")
    # a link as the last component is replaced, not written through
    write_file(root, "/workspace/secret.txt", b"mine")
    assert (root / "secret.txt").read_bytes() == b"mine" and not (root / "secret.txt").is_symlink()
    assert (secret / "secret.txt").read_text() == "top secret"
    assert sorted(p.name for p in secret.iterdir()) == ["outside-only", "secret.txt"]


def test_a_link_inside_the_root_is_not_followed_either(root: Path) -> None:
    (root / "real").mkdir()
    (root / "real" / "f").write_text("x")
    (root / "alias").symlink_to(root / "real")
    with pytest.raises(InvalidRequest, match="symbolic link"):
        read_file(root, "/workspace/alias/f")


def _flip(real: Path, link: Path, parked: Path, stop: threading.Event) -> None:
    """Swap directory ``real`` for the link at ``link`` and back, until ``stop``."""
    while not stop.is_set():
        for source, target in ((real, parked), (link, real), (real, link), (parked, real)):
            with contextlib.suppress(OSError):  # a writer may have made ``real`` meanwhile
                os.rename(source, target)


def _race(root: Path, secret: Path, call: Callable[[], None]) -> None:
    real = root / "d"
    real.mkdir()
    (real / "secret.txt").write_text("sandbox's own")
    (root / "link").symlink_to(secret)
    stop = threading.Event()
    flipper = threading.Thread(target=_flip, args=(real, root / "link", root / "parked", stop))
    flipper.start()
    try:
        for _ in range(2000):
            with contextlib.suppress(InvalidRequest, FileNotFound):
                call()
    finally:
        stop.set()
        flipper.join()
    assert (secret / "secret.txt").read_text() == "top secret"
    assert sorted(p.name for p in secret.iterdir()) == ["outside-only", "secret.txt"]


def test_reads_while_a_directory_is_swapped_for_a_link(root: Path, secret: Path) -> None:
    """Every read through ``d``, flipped between a directory and a link to the secret,
    sees the sandbox's own file or is refused; never the secret."""
    seen: set[bytes] = set()
    _race(root, secret, lambda: seen.add(read_file(root, "/workspace/d/secret.txt")))
    assert seen <= {b"sandbox's own"}


def test_writes_while_a_directory_is_swapped_for_a_link(root: Path, secret: Path) -> None:
    _race(root, secret, lambda: write_file(root, "/workspace/d/secret.txt", b"pwned") and None)
    _race(root / "d", secret, lambda: write_file(root, "/workspace/d/d/new.txt", b"x") and None)


def test_listing_and_zipping_while_a_directory_is_swapped(root: Path, secret: Path) -> None:
    names: set[str] = set()
    _race(root, secret, lambda: names.update(
        e.name for e in list_dir(root, "/workspace/d").entries))
    _race(root / "d", secret, lambda: names.update(
        _unzip(archive(root, "/workspace/d")).namelist()))
    assert names and not any("outside-only" in name for name in names)


# -- list ----------------------------------------------------------------------------------

def test_list_a_directory(root: Path) -> None:
    write_file(root, "/workspace/b.txt", b"hello")
    (root / "a-dir").mkdir()
    (root / "z-link").symlink_to("/etc")
    listing = list_dir(root, "/workspace")
    assert listing.path == "/workspace"
    by_name = {e.name: e for e in listing.entries}
    assert [e.name for e in listing.entries] == ["a-dir", "b.txt", "z-link"]
    assert by_name["b.txt"].size == 5 and not by_name["b.txt"].is_dir
    assert by_name["b.txt"].mode == "-rw-r--r--"
    assert by_name["a-dir"].is_dir and by_name["a-dir"].mode.startswith("d")
    assert by_name["z-link"].mode.startswith("l") and not by_name["z-link"].is_dir
    assert by_name["b.txt"].modified_at == int((root / "b.txt").stat().st_mtime)


def test_list_missing_or_a_file_is_not_found(root: Path) -> None:
    write_file(root, "/workspace/f", b"")
    for path in ("/workspace/nope", "/workspace/f"):
        with pytest.raises(FileNotFound, match="path not found"):
            list_dir(root, path)


def test_an_unusable_root_is_a_control_plane_error(tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneError, match="unusable"):
        list_dir(tmp_path / "gone", "/workspace")


# -- archive -------------------------------------------------------------------------------

def _unzip(chunks: object) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(chunks)))  # type: ignore[arg-type]


def test_archive_holds_directories_deflated_files_and_links(root: Path) -> None:
    write_file(root, "/workspace/src/main.py", b"print('hi')\n" * 100)
    write_file(root, "/workspace/README", b"read me")
    (root / "empty").mkdir()
    (root / "src" / "etc").symlink_to("/etc")
    zf = _unzip(archive(root, "/workspace"))
    assert zf.testzip() is None
    names = sorted(zf.namelist())
    assert names == ["README", "empty/", "src/", "src/etc", "src/main.py"]
    assert zf.read("src/main.py") == b"print('hi')\n" * 100
    assert zf.getinfo("src/main.py").compress_type == zipfile.ZIP_DEFLATED
    link = zf.getinfo("src/etc")
    assert stat.S_ISLNK(link.external_attr >> 16) and zf.read("src/etc") == b"/etc"
    assert zf.getinfo("empty/").is_dir()


def test_archive_of_a_subtree(root: Path) -> None:
    write_file(root, "/workspace/a/b/c.txt", b"c")
    write_file(root, "/workspace/top.txt", b"t")
    zf = _unzip(archive(root, "/workspace/a"))
    assert sorted(zf.namelist()) == ["b/", "b/c.txt"]


def test_archive_of_a_missing_directory_fails_at_the_call(root: Path) -> None:
    with pytest.raises(FileNotFound, match="directory not found: /workspace/nope"):
        archive(root, "/workspace/nope")
    with pytest.raises(InvalidRequest, match="under it"):
        archive(root, "/etc")


def test_archive_streams_in_pieces(root: Path) -> None:
    write_file(root, "/workspace/random.bin", os.urandom(1 << 20))
    pieces = list(archive(root))
    assert len(pieces) > 4 and max(len(p) for p in pieces) < 1 << 18
    assert len(_unzip(pieces).read("random.bin")) == 1 << 20


def test_an_archive_closed_early_releases_its_descriptors(root: Path) -> None:
    for i in range(20):
        write_file(root, f"/workspace/d{i}/f", os.urandom(100_000))
    before = len(os.listdir("/proc/self/fd"))
    stream = archive(root)
    next(stream)
    stream.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_an_archive_past_its_cap_is_cut_short_but_valid(root: Path) -> None:
    for name in "abcde":
        write_file(root, f"/workspace/{name}", b"x" * 1000)
    zf = _unzip(archive(root, max_bytes=1500))
    assert zf.namelist() == ["a", "b"] and zf.testzip() is None
