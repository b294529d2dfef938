"""What a request handler reaches: the built services, and the caller behind the request.

The app holds the :class:`~agenttier_router.service.Services` it was built
with; handlers get them with :func:`services` and the caller with
:func:`authenticate`. Reading the ``X-API-Key`` header is the only HTTP here.
"""

from __future__ import annotations

from fastapi import Request

from agenttier_router.service import Services

from .auth import DEV_IDENTITY, Identity

__all__ = ["authenticate", "services"]


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    built: Services = request.app.state.services
    return built


def authenticate(built: Services, request: Request) -> Identity | None:
    """Return the caller's identity, or None when the request carries no valid key."""
    if built.dev_auth:
        return DEV_IDENTITY
    if built.keys is None:
        return None
    return built.keys.identify(request.headers.get("x-api-key"))
