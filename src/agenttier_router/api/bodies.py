"""A request body handed from the event loop to one writing thread as it arrives, within a limit.

The upload route (``PUT …/files/<path>``) writes the file on a worker thread
while the body still arrives, so that the write overlaps the upload. The
event loop keeps the body's pieces as uvicorn hands them over (no copy) and
passes them on a MiB at a time: one wake-up of the writing thread per MiB, not
per socket read, and one ``os.writev`` of the pieces there. Before, each MiB
was joined into ``bytes`` first (two more copies of every byte, on the event
loop). BENCHMARKS.md, "Upload of a 32 MiB file", has the figures.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request

from agenttier_router.controlplane import ControlPlaneError
from agenttier_router.controlplane.localfiles import FileTooLarge

__all__ = ["HANDOFF", "BodyFeed"]

HANDOFF = 1 << 20
"""Bytes the event loop gathers before it wakes the writing thread."""

_END, _TOO_LARGE, _GONE = object(), object(), object()


class BodyFeed:
    """A body, from :meth:`pump` on the event loop to :meth:`pieces` on one writing thread.

    At most ``limit`` bytes pass: past it (or a ``Content-Length`` over it, refused
    before a byte is read) the writing thread gets :class:`FileTooLarge` with the
    message ``payload exceeds <limit> bytes``. A body that ends early (the client
    went) gets it :class:`ControlPlaneError`, so it never keeps half a file.
    """

    def __init__(self, limit: int, handoff: int = HANDOFF) -> None:
        self.limit = limit
        self.handoff = handoff
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def pieces(self) -> Iterator[list[bytes]]:
        """The body as lists of pieces, each list about ``handoff`` bytes; blocks for the next.

        For the writing thread: a list is written with one ``os.writev``.
        """
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _TOO_LARGE:
                raise FileTooLarge(f"payload exceeds {self.limit} bytes")
            if item is _GONE:
                raise ControlPlaneError("the upload ended before its body did")
            yield item

    async def pump(self, request: Request, writer: asyncio.Future[Any]) -> None:
        """Hand the body over as it arrives; stop early once ``writer`` is done (it refused)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            self._queue.put(_TOO_LARGE)  # refused without reading a byte of it
            return
        size = 0
        batch: list[bytes] = []
        gathered = 0
        async for chunk in request.stream():
            if writer.done():  # refused (401, 404, 409, a bad path): the rest is not wanted
                return
            if not chunk:
                continue
            size += len(chunk)
            if size > self.limit:
                self._queue.put(_TOO_LARGE)
                return
            batch.append(chunk)
            gathered += len(chunk)
            if gathered >= self.handoff:
                self._queue.put(batch)
                batch = []
                gathered = 0
        if batch:
            self._queue.put(batch)
        self._queue.put(_END)

    def close(self) -> None:
        """End the writing thread's wait: after the body's end it is never read."""
        self._queue.put(_GONE)
