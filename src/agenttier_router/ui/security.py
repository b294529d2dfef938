"""Headers and checks that keep the pages safe to open in a browser.

Every ``/ui/`` response carries a strict Content-Security-Policy (scripts and
styles only from this Router, nothing inline, no framing) and its friends. A
state-changing request whose ``Origin`` is another site's is refused, and one to
``/ui/`` must name this Router as its ``Origin``: sign-in and sign-out cannot be
forged from another page.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "PageSecurity"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
"""The pages' Content-Security-Policy: no inline script or style, nothing from elsewhere."""

_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_SAFE = {"GET", "HEAD", "OPTIONS"}


def _own_origin(scope: Scope, headers: Headers) -> str:
    scheme = scope.get("scheme", "http")
    return f"{scheme}://{headers.get('host', '')}"


class PageSecurity:
    """ASGI middleware: security headers on ``/ui/`` and ``/``, and the Origin check."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        page = path == "/" or path.startswith("/ui/") or path == "/ui"
        # The pages' own forms (sign-in, sign-out). The API's state changes need a key in
        # a header, which no other site's page can send; under --dev-auth, where no key is
        # needed, the API's DevAuthGuard checks Origin (and records the refusal).
        if page and scope["method"] not in _SAFE:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is None or origin != _own_origin(scope, headers):
                response = PlainTextResponse(
                    "refused: a state-changing request must come from this Router's own pages "
                    "(Origin header missing or from another site)", status_code=403)
                await response(scope, receive, send)
                return
        if not page:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
