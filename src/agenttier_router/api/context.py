"""What a request handler reaches: the built services, and the caller behind the request.

The app holds the :class:`~agenttier_router.service.Services` it was built
with; handlers get them with :func:`services` and the caller with
:func:`authenticate`. Reading the ``X-API-Key`` header, or the ``/ui/``
session cookie on a read, is the only HTTP here.
"""

from __future__ import annotations

from fastapi import Request

from agenttier_router.service import Services

from .auth import DEV_IDENTITY, Identity
from .sessions import COOKIE, SessionStore

__all__ = ["authenticate", "services"]


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    built: Services = request.app.state.services
    return built


def authenticate(built: Services, request: Request) -> Identity | None:
    """Return the caller's identity, or None when the request carries no valid key.

    A GET or HEAD without a key may be a browser signed in to the ``/ui/`` pages.
    """
    if built.dev_auth:
        return DEV_IDENTITY
    if built.keys is None:
        return None
    presented = request.headers.get("x-api-key")
    if presented is None and request.method in ("GET", "HEAD"):
        # A signed-in browser: only for reads, so a cookie can never change state (an
        # export link is a read); SameSite=Strict keeps other sites from sending it at all.
        sessions: SessionStore | None = getattr(request.app.state, "sessions", None)
        if sessions is not None:
            return sessions.identify(request.cookies.get(COOKIE))
    return built.keys.identify(presented)
