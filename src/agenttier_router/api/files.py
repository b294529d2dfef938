"""A sandbox's files: list, read, write and a streamed zip, as the SDK's ``FilesAPI`` calls them.

Owners and admins only, on a Running sandbox (409 otherwise). Every call
leaves an audit event (``files.list``, ``files.read``, ``files.write``,
``files.archive``) naming the path, and the bytes for reads and writes;
refusals are recorded too. Paths follow :mod:`~agenttier_router.controlplane.files`:
``/workspace`` is the sandbox's workspace and nothing leads out of it.

Every plane serves them through its files seam (``plane.files``): the local
plane from the sandbox's directory, the Kubernetes plane through ``pods/exec``
in the sandbox's pod (503 with ``Retry-After`` while that cannot be reached).
"""

from __future__ import annotations

import asyncio
import queue
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.convertors import PathConvertor, register_url_convertor

from agenttier_router.controlplane import ControlPlaneError, Sandbox
from agenttier_router.controlplane.files import (
    MAX_FILE_BYTES,
    WORKSPACE,
    FileTooLarge,
    clean_path,
)

from .acting import Namespace, SandboxId, act, caller_of
from .auth import Access, Identity
from .context import services
from .models import ErrorOut
from .models_sdk import FileEntryOut, FileListOut, FileWrittenOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut},
    404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 413: {"model": ErrorOut},
    503: {"model": ErrorOut},
})

FilePath = Annotated[str, Query(max_length=4096)]
_STREAM_CHUNK = 1 << 20  # fewer thread-pool hops per file: a 64 KiB chunk ran at 1/5 of cp
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class _AnyPath(PathConvertor):
    """Starlette's ``path``, but matching CR and LF too, so such a path is a recorded 400."""

    regex = r"[\s\S]*"


register_url_convertor("anypath", _AnyPath())


def _shown(path: str) -> str:
    """The path as recorded: cleaned when it can be, else as sent (cut short)."""
    try:
        return clean_path(path)[0]
    except ValueError:
        return path[:256]


def _attachment(name: str) -> str:
    safe = _UNSAFE.sub("", name) or "file"
    return f'attachment; filename="{safe}"'


@router.get("/sandboxes/{sandbox_id}/files/", response_model=FileListOut)
def list_files(sandbox_id: SandboxId, request: Request,
               identity: Annotated[Identity, caller_of("files.list")],
               path: FilePath = WORKSPACE, namespace: Namespace = None) -> FileListOut:
    """List a directory in the sandbox (default ``/workspace``)."""
    plane = services(request).control_plane
    listing = act(request, identity, "files.list", sandbox_id, namespace, Access.OWN,
                   lambda s: plane.files.list_files(s, path),
                   details=lambda found: {"entries": len(found.entries)},
                   request_details={"path": _shown(path)})
    return FileListOut(path=listing.path, entries=[
        FileEntryOut(name=e.name, size=e.size, is_dir=e.is_dir, mode=e.mode,
                     modified_at=e.modified_at) for e in listing.entries])


@router.get("/sandboxes/{sandbox_id}/files/{file_path:anypath}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def read_file(sandbox_id: SandboxId, file_path: str, request: Request,
              identity: Annotated[Identity, caller_of("files.read")],
              namespace: Namespace = None) -> StreamingResponse:
    """Download one file (at most 32 MiB), streamed."""
    plane = services(request).control_plane
    opened = act(request, identity, "files.read", sandbox_id, namespace, Access.OWN,
                  lambda s: plane.files.open_file(s, file_path),
                  details=lambda o: {"bytes": o.size},
                  request_details={"path": _shown(file_path)})
    return StreamingResponse(
        opened.chunks(_STREAM_CHUNK), media_type="application/octet-stream",
        headers={"Content-Length": str(opened.size),
                 "Content-Disposition": _attachment(opened.name)})


_END, _TOO_LARGE, _GONE = object(), object(), object()
_HANDOFF = 1 << 20


def _fed(chunks: queue.SimpleQueue[Any]) -> Iterator[bytes]:
    """The body's chunks as the event loop hands them over, ending at ``_END``."""
    while True:
        item = chunks.get()
        if item is _END:
            return
        if item is _TOO_LARGE:
            raise FileTooLarge(f"payload exceeds {MAX_FILE_BYTES} bytes")
        if item is _GONE:
            raise ControlPlaneError("the upload ended before its body did")
        yield item


async def _pump(request: Request, chunks: queue.SimpleQueue[Any],
                writer: asyncio.Future[int]) -> None:
    """Hand the body to the writer as it arrives, up to 32 MiB; stop if the writer is done."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FILE_BYTES:
        chunks.put(_TOO_LARGE)  # refused without reading a byte of it
        return
    size = 0
    batch = bytearray()
    async for chunk in request.stream():
        if writer.done():  # refused (401, 404, 409, a bad path): the rest is not wanted
            return
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            chunks.put(_TOO_LARGE)
            return
        batch += chunk
        if len(batch) >= _HANDOFF:  # one hand-off per MiB, not per socket read
            chunks.put(bytes(batch))
            batch.clear()
    if batch:
        chunks.put(bytes(batch))
    chunks.put(_END)


@router.put("/sandboxes/{sandbox_id}/files/{file_path:anypath}", status_code=201,
            response_model=FileWrittenOut)
async def write_file_route(sandbox_id: SandboxId, file_path: str, request: Request,
                           identity: Annotated[Identity, caller_of("files.write")],
                           namespace: Namespace = None) -> FileWrittenOut:
    """Create or replace a file from the raw body (at most 32 MiB); parents are made.

    The caller is checked and the file written on a worker thread while the
    body still arrives, so the write overlaps the upload instead of following it.
    """
    plane = services(request).control_plane
    chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else None  # lets a plane stream at once

    def write(sandbox: Sandbox) -> int:
        return plane.files.write_file(sandbox, file_path, _fed(chunks), size=size)

    shown = _shown(file_path)
    writer = asyncio.ensure_future(run_in_threadpool(
        act, request, identity, "files.write", sandbox_id, namespace, Access.OWN, write,
        lambda n: {"bytes": n}, {"path": shown}))
    try:
        await _pump(request, chunks, writer)
    finally:
        chunks.put(_GONE)  # after _END it is never read; otherwise it ends the writer
        written = await writer
    return FileWrittenOut(path=shown, bytes=written)


@router.get("/sandboxes/{sandbox_id}/archive", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}}})
def archive_files(sandbox_id: SandboxId, request: Request,
                  identity: Annotated[Identity, caller_of("files.archive")],
                  path: FilePath = WORKSPACE, namespace: Namespace = None) -> StreamingResponse:
    """Download a directory (default ``/workspace``) as a zip, streamed as it is made."""
    plane = services(request).control_plane
    found: list[Sandbox] = []

    def start(sandbox: Sandbox) -> Iterator[bytes]:
        found.append(sandbox)
        return plane.files.archive(sandbox, path)

    stream = act(request, identity, "files.archive", sandbox_id, namespace, Access.OWN, start,
                  request_details={"path": _shown(path)})
    base = _UNSAFE.sub("", found[0].name + "-" + (PurePosixPath(_shown(path)).name
                                                   or "workspace"))
    return StreamingResponse(stream, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{base}.zip"'})
