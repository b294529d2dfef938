"""Checks made on every request before the app sees it: body size, whose body it reads,
and, under ``--dev-auth``, that a browser on another site cannot drive the Router.

:class:`BodyGuard` is plain ASGI middleware (issue 9, item 5: four anonymous
200 MB bodies took the Router from 374 MB to 1.5 GB before the 401):

- a ``Content-Length`` over the limit is refused (413) before a byte is read,
  and a streamed body is counted as it arrives and refused once it passes;
- the body of a request without a valid key is never read: the app sees an
  empty body, so the handler's authentication answers 401 (and records the
  attempt), never a 400 about a body nobody was entitled to send (the one
  exception is the ``/ui/`` sign-in form, whose body is the key; it is capped);
- a file upload (``PUT …/files/<path>``) is left to its handler, which
  streams it to disk and refuses (and records) one over a whole file's limit.

:class:`DevAuthGuard` (issue 9, item 9): under ``--dev-auth`` every request is
an admin, so any web page the developer opens could drive the Router, through
DNS rebinding (``Host: rebind.evil.example``) or a cross-site ``text/plain``
POST. It accepts only loopback Host names, and refuses a state-changing
request whose ``Origin`` is not the Router's own; each refusal is a 403,
recorded as a ``denied`` audit event.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenttier_router.service import Services

from .context import authenticate, source
from .errors import ApiError
from .hosts import loopback_host

__all__ = ["SAFE_METHODS", "BodyGuard", "DevAuthGuard"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing: no ``Origin`` check for them."""


class _TooLarge(HTTPException):
    """A streamed body passed the limit.

    An HTTPException, so FastAPI's body reading lets it through (it turns other
    errors into 400) and the error handlers answer it as a 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


def _too_large_message(limit: int) -> str:
    return f"request body too large: at most {limit} bytes"


_UPLOAD = re.compile(r"/api/v1/sandboxes/[^/]+/files/")
_SIGN_IN = "/ui/signin"  # its body is how a caller without a key presents one


class BodyGuard:
    """Refuse bodies over ``max_bytes`` (413) and withhold bodies from callers without a key.

    A file upload from a caller with a key is let through: its handler has its own limit.
    """

    def __init__(self, app: ASGIApp, services: Services, max_bytes: int) -> None:
        self.app = app
        self.services = services
        self.max_bytes = max_bytes

    def _too_large(self, limit: int) -> JSONResponse:
        return JSONResponse(
            {"error": _too_large_message(limit)},
            status_code=413, headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        try:
            identity = authenticate(self.services, connection, scoped=True)
        except ApiError:  # an identity provider away: the handler answers (503)
            identity = None
        if identity is None and scope["path"] != _SIGN_IN:
            await self.app(scope, _withheld(receive), send)
            return
        if identity is not None and scope["method"] == "PUT" and _UPLOAD.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = connection.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._too_large(limit)(scope, receive, send)
            return
        started = False

        async def counted_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counted(receive, limit), counted_send)
        except _TooLarge:
            if started:
                raise
            await self._too_large(limit)(scope, receive, send)


def _counted(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge(limit)
        return message

    return counting


def _withheld(receive: Receive) -> Receive:
    """The app sees an empty body; the client's is never kept (it is discarded unread)."""
    given = False

    async def empty() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:  # later calls wait for the client to go, as after any body
            message = await receive()
            if message["type"] != "http.request":
                return message

    return empty


class DevAuthGuard:
    """Under ``--dev-auth``: loopback Host names only; same-origin state changes only (403)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    def _refusal(self, connection: HTTPConnection, method: str) -> str | None:
        host = connection.headers.get("host", "")
        if not loopback_host(host):
            return "--dev-auth accepts only loopback Host names (localhost, 127.0.0.1, [::1])"
        origin = connection.headers.get("origin")
        if method not in SAFE_METHODS and origin is not None:
            own = f"{connection.url.scheme}://{host}".lower()
            if origin.lower() != own:
                return ("--dev-auth refuses state-changing requests from another origin "
                        f"({own} only)")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.services.dev_auth:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        reason = self._refusal(connection, scope["method"])
        if reason is None:
            await self.app(scope, receive, send)
            return
        self.services.recording.audit(
            None, "request", resource="router", outcome="denied", source=source(connection),
            details={"reason": reason, "method": scope["method"][:16], "path": scope["path"],
                     "host": connection.headers.get("host", ""),
                     "origin": connection.headers.get("origin", "")},
        )
        await JSONResponse({"error": reason}, status_code=403)(scope, receive, send)
