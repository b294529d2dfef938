"""What a request handler reaches: the built services, and the caller behind the request.

The app holds the :class:`~agenttier_router.service.Services` it was built
with; handlers get them with :func:`services`, the caller with
:func:`authenticate` and the caller's address with :func:`source`. Reading
the ``X-API-Key`` and ``Authorization`` headers, or the ``/ui/`` session
cookie on a read, is the only HTTP here.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from agenttier_router.apikeys import MintedKey
from agenttier_router.service import Services

from .auth import DEV_IDENTITY, Identity, KeyScope
from .errors import ApiError
from .oidc import IdpUnavailable, InvalidToken
from .sessions import COOKIE, SessionStore

__all__ = ["authenticate", "identify_key", "services", "source"]


def services(request: HTTPConnection) -> Services:
    """The services of the app serving ``request``."""
    built: Services = request.app.state.services
    return built


def _minted(key: MintedKey) -> Identity:
    """The caller a minted key authenticates: its owner, under the key's name, never admin."""
    scope = None
    if key.scoped:
        scope = KeyScope(sandbox=key.sandbox, namespace=key.namespace,
                         groups=frozenset(key.action_groups))
    return Identity(subject=key.user_id, email=key.email, name=key.name, groups=(),
                    is_admin=False, key_id=key.id, scope=scope)


def _still_valid(built: Services, identity: Identity | None) -> Identity | None:
    """A session's identity, unless it signed in with a minted key since revoked or expired."""
    if identity is None or not identity.key_id:
        return identity
    key = built.api_keys.get(identity.key_id) if built.api_keys is not None else None
    return identity if key is not None and not key.expired() else None


def identify_key(built: Services, presented: str, *, scoped: bool = False) -> Identity | None:
    """Who the API key ``presented`` belongs to: the keys file first, then minted keys.

    A sandbox-scoped key is None unless ``scoped``: only code that enforces
    scopes (:mod:`.acting`) may see one, so any other reader of the caller
    treats it as no key at all.
    """
    identity = built.keys.identify(presented) if built.keys is not None else None
    if identity is None and built.api_keys is not None:
        minted = built.api_keys.identify(presented)
        identity = _minted(minted) if minted is not None else None
    if identity is not None and identity.scope is not None and not scoped:
        return None
    return identity


def authenticate(built: Services, request: HTTPConnection, *,
                 scoped: bool = False) -> Identity | None:
    """Return the caller's identity, or None when the request carries no valid credential.

    ``X-API-Key`` is tried first (:func:`identify_key`; a sandbox-scoped key
    only with ``scoped=True``). Without one, a GET or HEAD may come from a
    browser signed in to the ``/ui/`` pages (its session cookie), and any
    request may carry an ``Authorization: Bearer`` JWT when OIDC is configured.
    An identity provider that cannot be reached is a 503 for Bearer callers
    only: API keys keep working.
    """
    if built.dev_auth:
        return DEV_IDENTITY
    presented = request.headers.get("x-api-key")
    if presented is not None:
        return identify_key(built, presented, scoped=scoped)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    verifier = built.config.oidc
    if verifier is not None and scheme.lower() == "bearer" and token.strip():
        try:
            return verifier.verify(token.strip())
        except InvalidToken:
            return None
        except IdpUnavailable as error:
            raise ApiError(503, f"the identity provider is unavailable: {error}") from None
    if request.scope.get("method") in ("GET", "HEAD"):
        # A signed-in browser: only for reads, so a cookie can never change state (an
        # export link is a read); SameSite=Strict keeps other sites from sending it at all.
        sessions: SessionStore | None = getattr(request.app.state, "sessions", None)
        if sessions is not None:
            return _still_valid(built, sessions.identify(request.cookies.get(COOKIE)))
    return None


def source(request: HTTPConnection) -> str:
    """The caller's network address, as the server saw it ("" when unknown)."""
    return request.client.host if request.client is not None else ""
