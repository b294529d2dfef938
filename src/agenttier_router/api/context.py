"""What a request handler reaches: the built services, and the caller behind the request.

The app holds the :class:`~agenttier_router.service.Services` it was built
with; handlers get them with :func:`services`, the caller with
:func:`authenticate` and the caller's address with :func:`source`. Reading
the ``X-API-Key`` header is the only HTTP here.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from agenttier_router.service import Services

from .auth import DEV_IDENTITY, Identity

__all__ = ["authenticate", "services", "source"]


def services(request: HTTPConnection) -> Services:
    """The services of the app serving ``request``."""
    built: Services = request.app.state.services
    return built


def authenticate(built: Services, request: HTTPConnection) -> Identity | None:
    """Return the caller's identity, or None when the request carries no valid key."""
    if built.dev_auth:
        return DEV_IDENTITY
    if built.keys is None:
        return None
    return built.keys.identify(request.headers.get("x-api-key"))


def source(request: HTTPConnection) -> str:
    """The caller's network address, as the server saw it ("" when unknown)."""
    return request.client.host if request.client is not None else ""
