"""The files seam: list, read, write and zip a Running sandbox's workspace, on any plane.

The HTTP API (``api/files.py``) calls ``plane.files``, a :class:`SandboxFiles`,
and never knows where the files are: in a directory on the Router's machine
(the local plane, :class:`~agenttier_router.controlplane.localfiles.LocalFiles`)
or in a pod's volume, reached through ``pods/exec``
(:mod:`agenttier_router.controlplane.kubernetes.files`)::

    files = plane.files
    listing = files.list_files(sandbox, "/workspace")
    files.write_file(sandbox, "/workspace/src/main.py", [b"print('hi')\\n"])
    with files.open_file(sandbox, "/workspace/src/main.py") as opened:
        data = b"".join(opened.chunks())
    for piece in files.archive(sandbox, "/workspace/src"):   # a zip, streamed
        ...

**The same rules on every plane.** A path is what the SDK sends; it is
cleaned with :func:`clean_path` (``/workspace`` or under it, no ``..`` out of
it, no NUL, ``'``, ``\\``, backtick, CR or LF), and ``/workspace`` maps to the
sandbox's workspace (the local plane's directory; the Kubernetes plane's
``spec.storage.mountPath``). A symbolic link is never followed, not even one
pointing inside: a path through one is refused (:class:`InvalidRequest`);
listings show links as links and zips store them as their text. One file is
at most :data:`MAX_FILE_BYTES`, read or written; writes are atomic (a
temporary file renamed over the target) and make missing parent
directories. Every method needs a Running sandbox (:class:`SandboxConflict`
otherwise), and raises the errors of ``localfiles``::

    ControlPlaneError
      + InvalidRequest       a bad path: disallowed characters, outside /workspace, a link
      + FileNotFound         no such file or directory (the API: 404)
      + FileTooLarge         over 32 MiB (the API: 413)
      + SandboxConflict      the sandbox is not Running (the API: 409)
      + ControlPlaneUnavailable  the files cannot be reached now (the API: 503)

The path rules and shapes are defined once, in
:mod:`~agenttier_router.controlplane.localfiles`, and re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Protocol

from .base import Sandbox
from .localfiles import (
    MAX_FILE_BYTES,
    WORKSPACE,
    DirEntry,
    DirListing,
    FileNotFound,
    FileTooLarge,
    clean_path,
)

__all__ = [
    "MAX_FILE_BYTES",
    "WORKSPACE",
    "DirEntry",
    "DirListing",
    "FileNotFound",
    "FileTooLarge",
    "ReadableFile",
    "SandboxFiles",
    "clean_path",
]


class ReadableFile(Protocol):
    """A file opened for reading, its size known (and checked) before a byte is sent."""

    path: str
    """The cleaned path, e.g. ``/workspace/src/main.py``."""
    name: str
    """Its last component."""
    size: int
    """How many bytes :meth:`chunks` yields, exactly."""

    def chunks(self, size: int = ...) -> Iterator[bytes]:
        """The bytes, in pieces of at most ``size``; the file is closed when they run out."""

    def close(self) -> None:
        """Release the file (and whatever reads it); safe to call twice."""

    def __enter__(self) -> ReadableFile:
        """Use it in ``with``: closed at the end."""

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        """Close it."""


class SandboxFiles(Protocol):
    """A plane's access to its sandboxes' workspaces (see the module's docstring for the rules).

    Each method takes the sandbox as the caller last saw it; the plane checks
    afresh that it is Running. Every method is safe to call from several threads.
    """

    def list_files(self, sandbox: Sandbox, path: str = WORKSPACE) -> DirListing:
        """The directory at ``path``, its entries by name (links not followed)."""

    def open_file(self, sandbox: Sandbox, path: str) -> ReadableFile:
        """Open the regular file at ``path``; :class:`FileTooLarge` over 32 MiB, checked first."""

    def write_file(self, sandbox: Sandbox, path: str, chunks: Iterable[bytes], *,
                   size: int | None = None) -> int:
        """Write ``chunks`` to ``path`` atomically, making parents; return the bytes written.

        ``size`` is how many bytes the caller expects (an HTTP Content-Length),
        when it knows. A plane may use it to stream at once (the Kubernetes
        plane does, and then refuses a body that ends short of it or runs past
        it); the local plane needs no hint.
        """

    def archive(self, sandbox: Sandbox, path: str = WORKSPACE) -> Iterator[bytes]:
        """A zip of the directory at ``path``, streamed in flat memory; checked before returning."""
