"""Files of a sandbox on Kubernetes: list, read, write and zip through ``pods/exec``.

Every call is one exec (:func:`.exec.open_session`) of ``/bin/sh -c SCRIPT``
in the container ``sandbox`` of the pod ``status.podName``. The script is a
constant; the path arrives as separate arguments (``sh -c SCRIPT sh ROOT …``),
so no name is ever parsed by the shell, whatever bytes it holds. The root is
the sandbox's workspace mount, ``spec.storage.mountPath`` (its template's, or
``/workspace``); the SDK's ``/workspace/a/b`` is ``<mountPath>/a/b``.

- **list**: GNU ``find -printf`` (one process), else a ``stat -c`` per entry
  (busybox); each entry is ``MODE SIZE MTIME NAME`` ending in a NUL, so any
  name but one with a NUL (none can) is read back exactly.
- **read**: the script opens the file, prints its size (413 over 32 MiB, 404
  when missing or a directory, checked before a byte is sent), then ``cat``
  streams it as stdout frames, handed on as they come (binary-safe).
- **write**: the body goes to the command's stdin (channel 0) in frames, into
  a temporary file beside the target, ``head -c SIZE`` of it; on ``v5`` stdin
  is then closed (channel 255). The script checks it got every byte, then
  ``mv``s it over the target (atomic); a short body (a dropped connection)
  removes it instead. The size is known first: the HTTP Content-Length, or
  (chunked uploads) the body spooled to a temporary file on the Router.
- **archive**: ``tar`` streams the directory out of the pod and the Router
  turns it into a zip on the fly (deflated files, directories, links stored
  as their text), in flat memory, capped at 5 GiB of input and 2 hours.

**What the paths guarantee.** The path is cleaned by the same rules as on
the local plane (:func:`~agenttier_router.controlplane.files.clean_path`).
In the pod, the script enters the root, then each directory one at a time
with ``cd -P``, refusing any component that is a symbolic link (400, as
locally) and checking after each step that ``pwd -P`` is still under the
root. A read opens the file, then compares the opened file's device and inode
with the (unfollowed) name's, so a link swapped in is refused. A write
replaces a link at the last component with a file (the link is not
followed), as the local plane does. These checks run as the container's
user, in the container; unlike the local plane's ``openat`` walk they are not
atomic: a process *inside the sandbox* racing them could make a write land
through a link it swaps in at that instant. It could only reach what that
user can reach anyway (the same rights exec has); nothing outside the pod.

Errors: :class:`SandboxConflict` (409) unless Running;
:class:`ControlPlaneUnavailable` (503, ``Retry-After``) when the pod, the API
server or RBAC (``pods/exec`` create) stops the exec; the path errors of
:mod:`~agenttier_router.controlplane.files`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
import secrets
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any

from kubernetes.client import ApiClient

from ..base import (
    ControlPlaneError,
    ControlPlaneUnavailable,
    InvalidRequest,
    Sandbox,
    SandboxConflict,
)
from ..files import (
    MAX_FILE_BYTES,
    WORKSPACE,
    DirEntry,
    DirListing,
    FileNotFound,
    FileTooLarge,
    Piece,
    clean_path,
)
from ..localfiles import ZipSink
from .exec import CONTAINER, ExecSession, exit_status, open_session

__all__ = ["KubernetesFiles", "Target"]

_log = logging.getLogger(__name__)

Target = Callable[[str, str], tuple[str, str]]
"""``(name, namespace) -> (pod, workspace root)`` of a Running sandbox; raises otherwise."""

_IDLE = 120.0  # seconds without a frame before the pod counts as gone
_FRAME = 256 * 1024  # stdin bytes per WebSocket frame
_CHUNK = 1 << 16
_ERR_KEEP = 16 * 1024
_ARCHIVE_CAP = 5 * 1024**3
_ARCHIVE_SECONDS = 2 * 3600.0

# Exit codes of the scripts' refusals; the last line of stderr is the depth of the
# component at fault (1 = the first below the root), or a number for 75 and 77.
_NOT_FOUND, _LINK, _NOT_DIR, _IS_DIR, _TOO_BIG, _NOT_FILE, _SHORT, _NO_ROOT, _FAILED = \
    range(71, 80)

# $1 root, $2 size, $3 token, $4 the last component (or ""), then the directories to enter.
_PRELUDE = r"""
set -u
root=$1 size=$2 token=$3 name=$4
shift 4
fail() { printf '%s\n' "$2" >&2; exit "$1"; }
cd -P "$root" 2>/dev/null || fail 78 0
top=$(pwd -P)
depth=0
for d do
  depth=$((depth + 1))
  [ -L "./$d" ] && fail 72 $depth
  if [ ! -d "./$d" ]; then
    [ -e "./$d" ] && fail 73 $depth
    [ "$make" = 1 ] || fail 71 $depth
    mkdir "./$d" 2>/dev/null || [ -d "./$d" ] || fail 79 $depth
    [ -L "./$d" ] && fail 72 $depth
  fi
  cd -P "./$d" 2>/dev/null || fail 71 $depth
  case $(pwd -P)/ in "${top%/}"/*) ;; *) fail 72 $depth ;; esac
done
last=$((depth + 1))
"""

_LIST = "make=0" + _PRELUDE + r"""
if find . -maxdepth 0 -printf '' >/dev/null 2>&1; then
  exec find . -mindepth 1 -maxdepth 1 -printf '%M %s %T@ %f\0'
fi
for f in .* *; do
  case $f in .|..) continue ;; esac
  [ -e "./$f" ] || [ -L "./$f" ] || continue
  line=$(stat -c '%A %s %Y' "./$f" 2>/dev/null) || continue
  printf '%s %s\0' "$line" "$f"
done
"""

_READ = "make=0" + _PRELUDE + r"""
[ -L "./$name" ] && fail 72 $last
[ -d "./$name" ] && fail 74 $last
[ -e "./$name" ] || fail 71 $last
[ -f "./$name" ] || fail 76 $last
{
  opened=$(stat -L -c '%d:%i:%s' /dev/stdin 2>/dev/null ||
           stat -L -c '%d:%i:%s' /proc/self/fd/0) || fail 79 $last
  here=$(stat -c '%d:%i' "./$name") || fail 71 $last
  [ "${opened%:*}" = "$here" ] || fail 72 $last
  [ "${opened##*:}" -le "$size" ] || fail 75 "${opened##*:}"
  printf '%s\n' "${opened##*:}"
  exec cat
} < "./$name" || fail 71 $last
"""

_WRITE = "make=1" + _PRELUDE + r"""
[ -d "./$name" ] && [ ! -L "./$name" ] && fail 74 $last
mode=644
if [ -f "./$name" ] && [ ! -L "./$name" ]; then
  mode=$(stat -c '%a' "./$name") || mode=644
fi
tmp=.agenttier-$token.tmp
trap 'rm -f "./$tmp"' HUP INT TERM PIPE
(set -C; : > "./$tmp") 2>/dev/null || fail 79 $last
printf 'ready\n'
head -c "$size" > "./$tmp" || { rm -f "./$tmp"; fail 79 $last; }
got=$(($(wc -c < "./$tmp")))
[ "$got" -eq "$size" ] || { rm -f "./$tmp"; fail 77 "$got"; }
chmod "$mode" "./$tmp" 2>/dev/null
if [ -L "./$name" ]; then
  mv -f -T "./$tmp" "./$name" || { rm -f "./$tmp"; fail 79 $last; }
elif [ -d "./$name" ]; then
  rm -f "./$tmp"; fail 74 $last
else
  mv -f "./$tmp" "./$name" || { rm -f "./$tmp"; fail 79 $last; }
fi
printf 'done\n'
"""

_ARCHIVE = "make=0" + _PRELUDE + r"""
printf 'ready\n'
if tar --version 2>/dev/null | grep -q GNU; then
  exec tar -c -f - --hard-dereference .
fi
exec tar -c -f - .
"""


class _Output:
    """A session's frames, read on demand: stdout handed on, stderr and the exit status kept."""

    def __init__(self, session: ExecSession) -> None:
        self.session = session
        self._err = bytearray()
        self._status = b""
        self._ended = False

    def stdout(self) -> bytes | None:
        """The next piece of stdout, or None once the command has ended."""
        while not self._ended:
            frame = self.session.receive(_IDLE)
            if frame is None:
                self._ended = True
                break
            channel, data = frame
            if channel == 1 and data:
                return data
            if channel == 2 and len(self._err) < _ERR_KEEP:
                self._err += data[:_ERR_KEEP - len(self._err)]
            elif channel == 3:
                self._status += data
        return None

    def line(self) -> tuple[bytes, bytes] | None:
        """The first line of stdout and what followed it, or None if it ended before one."""
        got = bytearray()
        while b"\n" not in got:
            piece = self.stdout()
            if piece is None:
                return None
            got += piece
        head, _, rest = bytes(got).partition(b"\n")
        return head, rest

    def finish(self) -> tuple[int, str]:
        """Read to the end (dropping stdout); the exit code and the last line of stderr."""
        while self.stdout() is not None:
            pass
        code, note = exit_status(self._status)
        lines = self._err.decode("utf-8", "replace").strip().splitlines()
        return code, (lines[-1] if lines else note)

    def close(self) -> None:
        """End the exec."""
        self.session.close()


def _shown(parts: list[str], depth: int) -> str:
    return WORKSPACE + "".join("/" + p for p in parts[:max(depth, 0)])


def _depth(detail: str) -> int:
    try:
        return int(detail)
    except ValueError:
        return 0


def _refusal(code: int, detail: str, action: str, cleaned: str,
             parts: list[str]) -> ControlPlaneError:
    """The error a script's exit code stands for, worded as the local plane words it."""
    depth = _depth(detail)
    shown = _shown(parts, depth)
    last = depth >= len(parts)
    if code == _LINK:
        return InvalidRequest(f"path goes through a symbolic link at {shown}; "
                              "links are not followed")
    if code in (_NOT_FOUND, _NOT_DIR):
        if action == "archive":
            return FileNotFound(f"directory not found: {cleaned}")
        if action == "write" and code == _NOT_DIR:
            return InvalidRequest(f"{shown} is not a directory")
        if action == "read" and last:
            return FileNotFound(f"file not found: {cleaned}")
        suffix = " (not a directory)" if code == _NOT_DIR else ""
        return FileNotFound(f"path not found: {shown}{suffix}")
    if code == _IS_DIR:
        if action == "read":
            return FileNotFound(f"file not found: {cleaned} (a directory)")
        return InvalidRequest(f"{cleaned} is a directory")
    if code == _TOO_BIG:
        return FileTooLarge(f"{cleaned} is {detail} bytes, over {MAX_FILE_BYTES}")
    if code == _NOT_FILE:
        return InvalidRequest(f"{cleaned} is not a regular file")
    if code == _SHORT:
        return ControlPlaneError(f"write failed: the pod received {detail} bytes of the body")
    if code == _NO_ROOT:
        return ControlPlaneError("the sandbox's workspace is missing in its pod")
    if code == _FAILED:
        return ControlPlaneError(f"{action} failed in the pod at {shown}")
    return ControlPlaneError(f"{action} failed: {detail or f'exit code {code}'}")


class _PodFile:
    """A file being read out of a pod: its size known, its bytes still on the way."""

    def __init__(self, output: _Output, path: str, size: int, first: bytes) -> None:
        self._output: _Output | None = output
        self.path = path
        self.name = posixpath.basename(path)
        self.size = size
        self._first = first

    def chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        """The file's bytes in pieces of at most ``size``, exactly :attr:`size` of them."""
        try:
            left = self.size
            pending = bytearray(self._first[:left])
            while left > 0 or pending:
                while len(pending) < size and len(pending) < left:
                    piece = self._output.stdout() if self._output is not None else None
                    if piece is None:
                        break
                    pending += piece[:left - len(pending)]
                if not pending:
                    raise ControlPlaneError(f"read failed: {self.path} ended "
                                            f"{left} bytes short of {self.size}")
                out = bytes(pending[:size])
                del pending[:size]
                left -= len(out)
                yield out
        finally:
            self.close()

    def close(self) -> None:
        """Stop the read (and the ``cat`` in the pod); safe to call twice."""
        if self._output is not None:
            output, self._output = self._output, None
            output.close()

    def __enter__(self) -> _PodFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class KubernetesFiles:
    """The Kubernetes plane's :class:`~agenttier_router.controlplane.files.SandboxFiles`.

    ``target`` finds a Running sandbox's pod and workspace root (the plane's);
    see the module's docstring for how each call runs in the pod.
    """

    def __init__(self, api_client: ApiClient, target: Target, *,
                 container: str = CONTAINER) -> None:
        self._api = api_client
        self._target = target
        self._container = container

    def _start(self, sandbox: Sandbox, script: str, dirs: list[str], *, name: str = "",
               size: int = 0, stdin: bool = False) -> _Output:
        pod, root = self._target(sandbox.name, sandbox.namespace)
        argv = ["/bin/sh", "-c", script, "sh", root, str(size), secrets.token_hex(8), name,
                *dirs]
        try:
            session = open_session(self._api, sandbox.namespace, pod, argv, stdin=stdin,
                                   container=self._container)
        except SandboxConflict as error:  # the Sandbox says Running but its pod is away
            raise ControlPlaneUnavailable(
                f"the pod {pod!r} of sandbox {sandbox.name!r} cannot be reached now",
                retry_after=5.0) from error
        return _Output(session)

    def list_files(self, sandbox: Sandbox, path: str = WORKSPACE) -> DirListing:
        """List the directory at ``path`` (``find -printf``, else ``stat`` per entry)."""
        cleaned, parts = clean_path(path)
        output = self._start(sandbox, _LIST, parts)
        try:
            raw = bytearray()
            while (piece := output.stdout()) is not None:
                raw += piece
            code, detail = output.finish()
        finally:
            output.close()
        if code not in (0, 1):  # 1: find met an entry that went away meanwhile
            raise _refusal(code, detail, "list", cleaned, parts)
        entries = [e for e in map(_entry, bytes(raw).split(b"\0")) if e is not None]
        entries.sort(key=lambda e: e.name)
        return DirListing(path=cleaned, entries=entries)

    def open_file(self, sandbox: Sandbox, path: str) -> _PodFile:
        """Open the regular file at ``path``: its size is checked in the pod first."""
        cleaned, parts = clean_path(path)
        if not parts:
            raise FileNotFound(f"file not found: {cleaned}")
        output = self._start(sandbox, _READ, parts[:-1], name=parts[-1], size=MAX_FILE_BYTES)
        try:
            first = output.line()
            if first is None:
                code, detail = output.finish()
                raise _refusal(code, detail, "read", cleaned, parts)
            if not first[0].isdigit():
                raise ControlPlaneError("read failed: the pod sent no size for the file")
            size = int(first[0])
        except BaseException:
            output.close()
            raise
        return _PodFile(output, cleaned, size, first[1])

    def write_file(self, sandbox: Sandbox, path: str, pieces: Iterable[Piece], *,
                   size: int | None = None) -> int:
        """Stream ``pieces`` into the file at ``path`` (see the module's docstring)."""
        chunks = _flat(pieces)
        cleaned, parts = clean_path(path)
        if not parts:
            raise InvalidRequest(f"{cleaned} is a directory")
        if size is not None and size > MAX_FILE_BYTES:
            raise FileTooLarge(f"payload exceeds {MAX_FILE_BYTES} bytes")
        with contextlib.ExitStack() as stack:
            if size is None:  # a chunked upload: count it first, on disk
                spool = stack.enter_context(tempfile.TemporaryFile())
                size = _spool(chunks, spool)
                chunks = _unspool(spool)
            output = self._start(sandbox, _WRITE, parts[:-1], name=parts[-1], size=size,
                                 stdin=True)
            stack.callback(output.close)
            if output.line() is None:  # refused before a byte of the body was sent
                raise _refusal(*output.finish(), "write", cleaned, parts)
            try:
                sent = _send(output.session, chunks, size)
            except BaseException:
                # The body failed: on v5, end stdin so that the script sees it short and
                # removes its temporary file (on v4 only the closed connection ends it).
                with contextlib.suppress(Exception):
                    if output.session.close_stdin():
                        output.finish()
                raise
            if sent is not None:
                code, detail = output.finish()
                raise _refusal(code, detail, "write", cleaned, parts) if code else sent
            output.session.close_stdin()  # v5; on v4, head -c has ended by itself
            code, detail = output.finish()
            if code:
                raise _refusal(code, detail, "write", cleaned, parts)
        return size

    def archive(self, sandbox: Sandbox, path: str = WORKSPACE, *,
                max_bytes: int = _ARCHIVE_CAP,
                max_seconds: float = _ARCHIVE_SECONDS) -> Iterator[bytes]:
        """Stream a zip of the directory at ``path``, made from ``tar`` as it arrives.

        The path is checked in the pod before this returns. Past ``max_bytes``
        of input or ``max_seconds``, the rest is left out (a warning is logged).
        """
        cleaned, parts = clean_path(path)
        output = self._start(sandbox, _ARCHIVE, parts)
        try:
            first = output.line()
            if first is None:
                raise _refusal(*output.finish(), "archive", cleaned, parts)
        except BaseException:
            output.close()
            raise
        return _zip(output, first[1], cleaned, max_bytes, max_seconds)


def _entry(record: bytes) -> DirEntry | None:
    """One ``MODE SIZE MTIME NAME`` record of the listing, or None for an empty one."""
    fields = record.split(b" ", 3)
    if len(fields) != 4:
        return None
    mode, size, mtime, name = (f.decode("utf-8", "surrogateescape") for f in fields)
    try:
        return DirEntry(name=name, size=int(size), is_dir=mode.startswith("d"), mode=mode,
                        modified_at=int(mtime.partition(".")[0]))
    except ValueError:
        return None


def _spool(chunks: Iterable[bytes], spool: IO[bytes]) -> int:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise FileTooLarge(f"payload exceeds {MAX_FILE_BYTES} bytes")
        spool.write(chunk)
    spool.seek(0)
    return size


def _unspool(spool: IO[bytes]) -> Iterator[bytes]:
    while chunk := spool.read(1 << 20):
        yield chunk


def _send(session: ExecSession, chunks: Iterable[bytes], size: int) -> Exception | None:
    """Send the body to stdin; an error of the body is raised, the pod's is returned."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > size:
            raise InvalidRequest(f"the body is longer than its {size} bytes")
        view = memoryview(chunk)
        try:
            for start in range(0, len(view), _FRAME):
                session.send(bytes(view[start:start + _FRAME]))
        except ControlPlaneError as error:
            return error  # the command ended early: its exit code tells why
    if sent < size:
        raise ControlPlaneError("the upload ended before its body did")
    return None


class _TarSource(io.RawIOBase):
    """The pod's stdout as a file ``tarfile`` reads in stream mode."""

    def __init__(self, output: _Output, first: bytes) -> None:
        self._output = output
        self._pending = first

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            piece = self._output.stdout()
            if piece is None:
                return 0
            self._pending = piece
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _zip(output: _Output, first: bytes, cleaned: str, max_bytes: int,
         max_seconds: float) -> Iterator[bytes]:
    sink = ZipSink()
    deadline = time.monotonic() + max_seconds
    total = 0
    try:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED,  # type: ignore[call-overload]
                             allowZip64=True) as zf, \
                tarfile.open(fileobj=io.BufferedReader(_TarSource(output, first), 1 << 16),
                             mode="r|") as tar:
            for member in tar:
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                name = name.strip("/")
                if not name or name == ".":
                    continue
                if total > max_bytes or time.monotonic() > deadline:
                    _log.warning("archive of %s cut short after %d bytes", cleaned, total)
                    break
                if member.isdir():
                    zf.writestr(_info(name + "/", stat.S_IFDIR | member.mode, member.mtime), b"")
                elif member.issym():
                    zf.writestr(_info(name, stat.S_IFLNK | 0o777, member.mtime),
                                member.linkname)
                elif member.isreg():
                    source = tar.extractfile(member)
                    assert source is not None
                    with zf.open(_info(name, stat.S_IFREG | member.mode, member.mtime), "w",
                                 force_zip64=True) as entry:
                        while chunk := source.read(_CHUNK):
                            entry.write(chunk)
                            total += len(chunk)
                            if out := sink.take():
                                yield out
                if out := sink.take():
                    yield out
            else:
                code, detail = output.finish()
                if code:
                    _log.warning("archive of %s: tar in the pod ended with %d: %s", cleaned,
                                 code, detail)
        if rest := sink.take():  # only on a normal end: a closed generator yields no more
            yield rest
    except tarfile.TarError as error:
        raise ControlPlaneError(f"archive failed: the pod's tar stream is unreadable: "
                                f"{error}") from error
    finally:
        output.close()


def _info(arcname: str, mode: int, mtime: float) -> zipfile.ZipInfo:
    stamp = time.gmtime(max(mtime, 315532800))  # zip dates start in 1980
    entry = zipfile.ZipInfo(arcname, date_time=stamp[:6])
    entry.external_attr = (mode & 0xFFFF) << 16
    if stat.S_ISDIR(mode):
        entry.external_attr |= 0x10  # MS-DOS directory flag
        entry.compress_type = zipfile.ZIP_STORED
    elif stat.S_ISLNK(mode):
        entry.compress_type = zipfile.ZIP_STORED
    else:
        entry.compress_type = zipfile.ZIP_DEFLATED
    return entry


def _flat(pieces: Iterable[Piece]) -> Iterator[bytes]:
    """Each chunk of ``pieces`` in turn, a list of them taken apart."""
    for piece in pieces:
        if isinstance(piece, bytes | bytearray | memoryview):
            yield bytes(piece)
        else:
            yield from (bytes(chunk) for chunk in piece)
