"""What a request handler reaches: the built services, and the caller behind the request.

The app holds the :class:`~agenttier_router.service.Services` it was built
with; handlers get them with :func:`services`, the caller with
:func:`authenticate` and the caller's address with :func:`source`. Reading
the ``X-API-Key`` and ``Authorization`` headers is the only HTTP here.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from agenttier_router.service import Services

from .auth import DEV_IDENTITY, Identity
from .errors import ApiError
from .oidc import IdpUnavailable, InvalidToken

__all__ = ["authenticate", "services", "source"]


def services(request: HTTPConnection) -> Services:
    """The services of the app serving ``request``."""
    built: Services = request.app.state.services
    return built


def authenticate(built: Services, request: HTTPConnection) -> Identity | None:
    """Return the caller's identity, or None when the request carries no valid credential.

    ``X-API-Key`` is tried first; without one, an ``Authorization: Bearer`` JWT
    when OIDC is configured. An identity provider that cannot be reached is a
    503 for Bearer callers only: API keys keep working.
    """
    if built.dev_auth:
        return DEV_IDENTITY
    presented = request.headers.get("x-api-key")
    verifier = built.config.oidc
    if presented is not None or verifier is None:
        return built.keys.identify(presented) if built.keys is not None else None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return verifier.verify(token.strip())
    except InvalidToken:
        return None
    except IdpUnavailable as error:
        raise ApiError(503, f"the identity provider is unavailable: {error}") from None


def source(request: HTTPConnection) -> str:
    """The caller's network address, as the server saw it ("" when unknown)."""
    return request.client.host if request.client is not None else ""
