"""Files of a local sandbox: list, read, write and zip, never outside its directory.

Every function takes the sandbox's directory (``root``) and a path as the SDK
sends it. ``/workspace`` maps to ``root``; a path is made absolute and cleaned
first, and must then be ``/workspace`` or under it::

    listing = list_dir(root, "/workspace")
    write_file(root, "/workspace/src/main.py", b"print('hi')\\n")   # parents are created
    with open_file(root, "workspace/src/main.py") as opened:         # the SDK strips the "/"
        data = b"".join(opened.chunks())
    for chunk in archive(root, "/workspace/src"):                     # a zip, streamed
        ...

**Never outside the root.** Paths are walked one component at a time with
``openat``-style calls (``dir_fd``) and ``O_NOFOLLOW``, holding each
directory open while the next is opened. A symbolic link is never followed,
not even one pointing inside: a link (or a directory swapped for a link
during the call) is refused with :class:`InvalidRequest`, so no race can
make a call read or write through a link. The zip walks with
:func:`os.fwalk`, which holds directory descriptors the same way, and stores
links as their text. A file is at most 32 MiB (:data:`MAX_FILE_BYTES`), read
or written.

**Atomic writes.** A write goes to a temporary file in the same directory,
then is renamed over the target: a reader sees the old bytes or the new
ones, never half. It is not fsync'ed: a local sandbox is evaluation-only
and lives no longer than the Router's process. A replaced file of 1 MiB or
more is freed on a background thread after the rename, not inside it.

The errors are the control plane's, plus two::

    ControlPlaneError
      + InvalidRequest       a bad path: disallowed characters, outside /workspace, a link
      + FileNotFound         no such file or directory (the API: 404)
      + FileTooLarge         over 32 MiB (the API: 413)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import queue
import secrets
import stat
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .base import ControlPlaneError, InvalidRequest, Phase, Sandbox, SandboxConflict

__all__ = [
    "MAX_FILE_BYTES",
    "WORKSPACE",
    "Chunk",
    "DirEntry",
    "DirListing",
    "FileNotFound",
    "FileTooLarge",
    "LocalFiles",
    "OpenedFile",
    "Piece",
    "ZipSink",
    "archive",
    "clean_path",
    "list_dir",
    "open_file",
    "read_file",
    "write_file",
]

_log = logging.getLogger(__name__)

MAX_FILE_BYTES = 32 * 1024 * 1024
"""The most bytes one file may hold, read or written (the SDK's ``FilesAPI.MAX_BYTES``)."""

WORKSPACE = "/workspace"
"""The path the sandbox's directory appears at."""

_DISALLOWED = frozenset("'\\`\r\n\x00")
_MAX_PATH = 4096
_CHUNK = 1 << 16
_ARCHIVE_CAP = 5 * 1024**3
_ARCHIVE_SECONDS = 2 * 3600.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileNotFound(ControlPlaneError):
    """No file or directory at that path in the sandbox."""


class FileTooLarge(ControlPlaneError):
    """A file over :data:`MAX_FILE_BYTES`, to read or to write."""


def clean_path(path: str) -> tuple[str, list[str]]:
    """Return ``path`` made absolute and cleaned, and its components below ``/workspace``.

    Raises :class:`InvalidRequest` for disallowed characters (``'``, ``\\``, a
    backtick, CR, LF, NUL) or a path that is not ``/workspace`` or under it
    once cleaned (so ``/workspace/../etc`` is refused).
    """
    if not isinstance(path, str) or not path:
        path = WORKSPACE
    if any(c in _DISALLOWED for c in path):
        raise InvalidRequest("path contains disallowed characters")
    if len(path) > _MAX_PATH:
        raise InvalidRequest(f"path is longer than {_MAX_PATH} characters")
    cleaned = posixpath.normpath("/" + path.lstrip("/"))
    if cleaned != WORKSPACE and not cleaned.startswith(WORKSPACE + "/"):
        raise InvalidRequest(f"path must be {WORKSPACE} or under it (got {cleaned})")
    parts = [p for p in cleaned[len(WORKSPACE):].split("/") if p]
    return cleaned, parts


# -- walking --------------------------------------------------------------------

def _open_root(root: Path) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise ControlPlaneError(f"the sandbox's directory is unusable: {error.strerror}") from None


def _open_dir_at(parent: int, name: str, shown: str, *, create: bool = False) -> int:
    """Open directory ``name`` under ``parent`` without following a link; maybe make it."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        if not create:
            raise FileNotFound(f"path not found: {shown}") from None
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass  # made meanwhile by another writer: open it below, checked as ever
        except OSError as error:
            raise _translate(error, shown) from None
    else:
        if stat.S_ISLNK(info.st_mode):
            raise _link(shown)
        if not stat.S_ISDIR(info.st_mode):
            if create:
                raise InvalidRequest(f"{shown} is not a directory")
            raise FileNotFound(f"path not found: {shown} (not a directory)")
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as error:
        # ELOOP / ENOTDIR here: it was swapped for a link (or a file) after the stat
        raise _translate(error, shown) from None


def _walk(root: Path, parts: list[str], *, create: bool = False) -> int:
    """A descriptor of the directory ``root/parts...``, every step link-free; caller closes."""
    fd = _open_root(root)
    shown = WORKSPACE
    try:
        for part in parts:
            shown = f"{shown}/{part}"
            child = _open_dir_at(fd, part, shown, create=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link(shown: str) -> InvalidRequest:
    return InvalidRequest(f"path goes through a symbolic link at {shown}; links are not followed")


def _translate(error: OSError, shown: str) -> ControlPlaneError:
    if error.errno in (errno.ELOOP, errno.EMLINK):
        return _link(shown)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileNotFound(f"path not found: {shown}")
    if error.errno in (errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
        return InvalidRequest(f"{shown}: {error.strerror}")
    if error.errno == errno.ENOSPC:
        return ControlPlaneError(f"{shown}: no space left on the device")
    return ControlPlaneError(f"{shown}: {error.strerror or error}")


# -- list -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DirEntry:
    """One entry of a directory, as the SDK's ``FileEntry`` reads it."""

    name: str
    size: int
    is_dir: bool
    mode: str
    """``ls``-style, e.g. ``-rw-r--r--`` or ``lrwxrwxrwx`` for a link (never followed)."""
    modified_at: int
    """Seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class DirListing:
    """A directory's cleaned path and its entries by name, without ``.`` and ``..``."""

    path: str
    entries: list[DirEntry]


def list_dir(root: Path, path: str = WORKSPACE) -> DirListing:
    """List the directory at ``path``; raise :class:`FileNotFound` if there is none."""
    cleaned, parts = clean_path(path)
    fd = _walk(root, parts)
    try:
        entries = []
        with os.scandir(fd) as found:
            for entry in found:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we listed
                entries.append(DirEntry(
                    name=entry.name, size=info.st_size, is_dir=stat.S_ISDIR(info.st_mode),
                    mode=stat.filemode(info.st_mode), modified_at=int(info.st_mtime)))
    finally:
        os.close(fd)
    entries.sort(key=lambda e: e.name)
    return DirListing(path=cleaned, entries=entries)


# -- read -------------------------------------------------------------------------

class OpenedFile:
    """A regular file opened for reading: its cleaned ``path``, ``name`` and ``size``.

    Use it as a context manager, or call :meth:`close`; :meth:`chunks` closes
    it when it is exhausted.
    """

    def __init__(self, fd: int, path: str, size: int) -> None:
        self._fd: int | None = fd
        self.path = path
        self.name = posixpath.basename(path)
        self.size = size

    def chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        """The file's bytes in pieces of at most ``size``, never more than it held when opened."""
        try:
            left = self.size
            while left > 0 and self._fd is not None:
                chunk = os.read(self._fd, min(size, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Release the file; safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def open_file(root: Path, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> OpenedFile:
    """Open the regular file at ``path`` for reading.

    Raises :class:`FileNotFound` when there is none (a directory counts as
    none), :class:`FileTooLarge` over ``max_bytes``, and :class:`InvalidRequest`
    for a link or anything that is not a regular file.
    """
    cleaned, parts = clean_path(path)
    if not parts:
        raise FileNotFound(f"file not found: {cleaned}")
    parent = _walk(root, parts[:-1])
    try:
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                raise FileNotFound(f"file not found: {cleaned}") from None
            raise _translate(error, cleaned) from None
    finally:
        os.close(parent)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileNotFound(f"file not found: {cleaned} (a directory)")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequest(f"{cleaned} is not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLarge(f"{cleaned} is {info.st_size} bytes, over {max_bytes}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return OpenedFile(fd, cleaned, info.st_size)


def read_file(root: Path, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The whole file at ``path``, as :func:`open_file` finds it."""
    with open_file(root, path, max_bytes=max_bytes) as opened:
        return b"".join(opened.chunks())


# -- write ------------------------------------------------------------------------

Chunk = bytes | bytearray | memoryview
"""Some of a file's bytes, as a body arrives."""
Piece = Chunk | Sequence[Chunk]
"""What a write is fed: a chunk, or a list of chunks written together (one ``writev``)."""


def write_file(root: Path, path: str, data: Chunk | Iterable[Piece], *,
               max_bytes: int = MAX_FILE_BYTES) -> int:
    """Write ``data`` to ``path`` atomically; return its size.

    ``data`` is the bytes, or an iterable of pieces, where a piece may also be a
    list of them: a list is written with one ``os.writev``, so a body that
    arrived in many small pieces is written without joining them first.
    Missing parent directories are made. An existing file keeps its
    permission bits. Raises :class:`FileTooLarge` past ``max_bytes`` (and
    leaves the old file as it was), :class:`InvalidRequest` when ``path`` is
    ``/workspace`` itself, a directory, or goes through a link.
    """
    cleaned, parts = clean_path(path)
    if not parts:
        raise InvalidRequest(f"{cleaned} is a directory")
    pieces: Iterable[Piece] = (
        [data] if isinstance(data, bytes | bytearray | memoryview) else data)
    parent = _walk(root, parts[:-1], create=True)
    name = parts[-1]
    temp = f".agenttier-{secrets.token_hex(8)}.tmp"
    try:
        mode, replaced = _existing(parent, name, cleaned)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        written = 0
        try:
            try:
                for piece in pieces:
                    group = ([piece] if isinstance(piece, bytes | bytearray | memoryview)
                             else piece)
                    views = [memoryview(chunk).cast("B") for chunk in group]
                    written += sum(view.nbytes for view in views)
                    if written > max_bytes:
                        raise FileTooLarge(f"payload exceeds {max_bytes} bytes")
                    _write_all(fd, views)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            held = _hold(parent, name) if replaced >= _RETIRE_BYTES else None
            try:
                os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            finally:
                if held is not None:
                    _retire(held)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=parent)
            raise
    except OSError as error:
        raise _translate(error, cleaned) from None
    finally:
        os.close(parent)
    return written


_IOV_MAX = 1024  # Linux's limit on the buffers of one writev


def _write_all(fd: int, views: list[memoryview]) -> None:
    """Write every byte of ``views``, in order: ``writev`` until partial writes are done."""
    views = [view for view in views if view.nbytes]
    while views:
        done = os.writev(fd, views[:_IOV_MAX])
        skipped = 0
        while skipped < len(views) and done >= views[skipped].nbytes:
            done -= views[skipped].nbytes
            skipped += 1
        views = views[skipped:]
        if done:
            views[0] = views[0][done:]


def _existing(parent: int, name: str, shown: str) -> tuple[int, int]:
    """The mode a write keeps, and the size of the regular file it replaces (0 for none)."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return 0o644, 0
    if stat.S_ISDIR(info.st_mode):
        raise InvalidRequest(f"{shown} is a directory")
    if not stat.S_ISREG(info.st_mode):
        return 0o644, 0
    return stat.S_IMODE(info.st_mode), info.st_size


# -- letting a replaced file go ---------------------------------------------------
#
# Renaming over a file frees the old one inside rename(2) when nothing else holds
# it: for a 32 MiB file that is 10-25 ms of freeing its page cache and blocks, on
# ext4 here, which was most of a write's time after its bytes were written
# (BENCHMARKS.md, "Upload of a 32 MiB file"). A large file being replaced is held
# by an O_PATH descriptor across the rename instead; the retiring thread closes
# it, and the freeing happens there, after the new file is in place. An O_PATH
# descriptor cannot read or write, and is not inherited (O_CLOEXEC).

_RETIRE_BYTES = 1 << 20
"""Replaced files from this size on are let go on the retiring thread."""

_O_PATH = getattr(os, "O_PATH", 0)
_to_close: queue.SimpleQueue[int] = queue.SimpleQueue()
_retirer: list[threading.Thread] = []
_retirer_lock = threading.Lock()


def _hold(parent: int, name: str) -> int | None:
    """A descriptor that keeps the file ``name`` alive past a rename over it, if one opens."""
    if not _O_PATH:
        return None
    try:
        return os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:  # gone already: the rename frees nothing (a link swapped in is held as
        return None  # the link itself, which is harmless: the descriptor is only closed)


def _retire(fd: int) -> None:
    """Close ``fd`` on the retiring thread (started on first use), not on the caller's."""
    with _retirer_lock:
        if not _retirer or not _retirer[0].is_alive():
            _retirer[:] = [threading.Thread(target=_retiring, name="localfiles-retire",
                                            daemon=True)]
            _retirer[0].start()
    _to_close.put(fd)


def _retiring() -> None:
    while True:
        fd = _to_close.get()
        with contextlib.suppress(OSError):
            os.close(fd)


# -- archive ----------------------------------------------------------------------

class ZipSink:
    """Where zipfile writes, as a stream: bytes are kept until the generator hands them on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        """Keep ``data``; it is handed on by :meth:`take`."""
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        """How many bytes were written in all (zipfile records offsets from it)."""
        return self._position

    def flush(self) -> None:
        """Nothing to flush: :meth:`take` hands the bytes on."""

    def take(self) -> bytes:
        """The bytes written since the last call, and forget them."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def archive(root: Path, path: str = WORKSPACE, *, max_bytes: int = _ARCHIVE_CAP,
            max_seconds: float = _ARCHIVE_SECONDS) -> Iterator[bytes]:
    """Stream a zip of the directory at ``path``: its directories, deflated files, and links.

    Checks the path before returning, so a missing directory raises
    :class:`FileNotFound` at the call, not mid-stream. Memory stays flat
    whatever the tree's size: each piece is handed on as soon as it is
    compressed. Past ``max_bytes`` of input or ``max_seconds``, the rest of
    the tree is left out (with a warning in the log) and the zip is closed.
    """
    cleaned, parts = clean_path(path)
    try:
        top = _walk(root, parts)
    except FileNotFound:
        raise FileNotFound(f"directory not found: {cleaned}") from None
    return _zip(top, cleaned, max_bytes, max_seconds)


def _zip(top: int, cleaned: str, max_bytes: int, max_seconds: float) -> Iterator[bytes]:
    sink = ZipSink()
    deadline = time.monotonic() + max_seconds
    total = 0
    try:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED,  # type: ignore[call-overload]
                             allowZip64=True) as zf:
            for directory, dirs, files, dir_fd in os.fwalk(".", dir_fd=top):
                # links to directories come in ``dirs``; fwalk never enters them, we store them
                links = [d for d in dirs if _is_link(d, dir_fd)]
                dirs[:] = sorted(d for d in dirs if d not in links)
                prefix = "" if directory == "." else directory[2:] + "/"
                if prefix:
                    zf.writestr(_info(prefix, os.stat(dir_fd), directory=True), b"")
                for name in sorted([*files, *links]):
                    if total > max_bytes or time.monotonic() > deadline:
                        break
                    total += yield from _add(zf, sink, dir_fd, name, prefix + name)
                else:
                    if out := sink.take():
                        yield out
                    continue
                _log.warning("archive of %s cut short after %d bytes", cleaned, total)
                break
        # only on a normal end: a generator closed early must not yield again
        if rest := sink.take():
            yield rest
    finally:
        os.close(top)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _add(zf: zipfile.ZipFile, sink: ZipSink, dir_fd: int, name: str,
         arcname: str) -> Generator[bytes, None, int]:
    """Add one file or link to the zip, yielding what is compressed; return its input size."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            zf.writestr(_info(arcname, info), os.readlink(name, dir_fd=dir_fd))
            return 0
        if not stat.S_ISREG(info.st_mode):
            return 0  # fifos, sockets, devices: nothing to store
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return 0  # removed while we walked
    except OSError as error:
        if error.errno != errno.ELOOP:  # ELOOP: swapped for a link since the stat; not followed
            _log.warning("archive: leaving out %s: %s", arcname, error.strerror)
        return 0
    size = 0
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return 0
        os.set_blocking(fd, True)
        with zf.open(_info(arcname, opened), "w", force_zip64=True) as entry:
            while chunk := os.read(fd, _CHUNK):
                entry.write(chunk)
                size += len(chunk)
                out = sink.take()
                if out:
                    yield out
    finally:
        os.close(fd)
    return size


def _info(arcname: str, info: os.stat_result, *, directory: bool = False) -> zipfile.ZipInfo:
    stamp = time.gmtime(max(info.st_mtime, 315532800))  # zip dates start in 1980
    entry = zipfile.ZipInfo(arcname, date_time=stamp[:6])
    entry.external_attr = (info.st_mode & 0xFFFF) << 16
    if directory:
        entry.external_attr |= 0x10  # MS-DOS directory flag
        entry.compress_type = zipfile.ZIP_STORED
    elif stat.S_ISLNK(info.st_mode):
        entry.compress_type = zipfile.ZIP_STORED
    else:
        entry.compress_type = zipfile.ZIP_DEFLATED
    return entry


# -- the plane's seam ---------------------------------------------------------------

class LocalFiles:
    """The local plane's :class:`~agenttier_router.controlplane.files.SandboxFiles`.

    ``workdir(name, namespace)`` is the sandbox's directory and ``get`` its
    current state (both the plane's); every call checks it is Running, then
    runs the functions above on that directory.
    """

    def __init__(self, workdir: Callable[[str, str], Path],
                 get: Callable[[str, str], Sandbox]) -> None:
        self._workdir = workdir
        self._get = get

    def _root(self, sandbox: Sandbox) -> Path:
        current = self._get(sandbox.name, sandbox.namespace)
        if current.phase is not Phase.RUNNING:
            raise SandboxConflict(f"sandbox {current.name!r} is not running "
                                  f"(it is {current.phase.value})")
        return self._workdir(sandbox.name, sandbox.namespace)

    def list_files(self, sandbox: Sandbox, path: str = WORKSPACE) -> DirListing:
        """:func:`list_dir` in the sandbox's directory."""
        return list_dir(self._root(sandbox), path)

    def open_file(self, sandbox: Sandbox, path: str) -> OpenedFile:
        """:func:`open_file` in the sandbox's directory."""
        return open_file(self._root(sandbox), path)

    def write_file(self, sandbox: Sandbox, path: str, chunks: Iterable[Piece], *,
                   size: int | None = None) -> int:
        """:func:`write_file` in the sandbox's directory (``size`` is not needed here)."""
        return write_file(self._root(sandbox), path, chunks)

    def archive(self, sandbox: Sandbox, path: str = WORKSPACE) -> Iterator[bytes]:
        """:func:`archive` of a directory of the sandbox's."""
        return archive(self._root(sandbox), path)
