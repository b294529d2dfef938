"""``/api/v1/user/api-keys``: callers mint, list and revoke their own API keys.

A key is shown once, in the answer that mints it; the Router keeps only its
SHA-256 (:mod:`agenttier_router.apikeys`). A user-level key acts as its owner
(never as an admin); a sandbox-scoped key (``sandboxId``, with ``scopes`` or
``actionGroups``) reaches only that sandbox and those groups, as
:mod:`.acting` enforces. Minting and revoking are recorded (``api-key.create``,
``api-key.revoke``: the key's id, name, sandbox, groups and expiry, never the
key), refusals and failures too; so are listings (``api-key.list``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request

from agenttier_router.apikeys import KeyStoreUnavailable, MintedKey, MintedKeyStore, mint
from agenttier_router.service import Services

from .acting import Namespace, caller_of, find_sandbox, recorded_call
from .auth import Access, Identity, access
from .context import services
from .durations import parse_go_duration
from .errors import ApiError
from .models import ErrorOut
from .models_sdk import (
    ApiKeyCreatedOut,
    ApiKeyCreateRequest,
    ApiKeyOut,
    ApiKeyRevokedOut,
    ApiKeysOut,
)

__all__ = ["key_out", "router"]

T = TypeVar("T")

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut},
    404: {"model": ErrorOut}, 503: {"model": ErrorOut},
})

WARNING = "Store this key securely: it is shown only once and cannot be retrieved later."
_RESOURCE = "api-key"


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def key_out(key: MintedKey) -> ApiKeyOut:
    """A key's metadata as the SDK's ``APIKeyMetadata`` reads it (never the key or hash)."""
    return ApiKeyOut(id=key.id, user_id=key.user_id, name=key.name,
                     sandbox_id=key.sandbox or None, action_groups=list(key.action_groups),
                     created_at=_time(key.created_at) or "", expires_at=_time(key.expires_at))


def _details(key: MintedKey) -> dict[str, Any]:
    """What a later reader needs of a key: never the key or its hash."""
    return {"keyId": key.id, "name": key.name, "sandboxId": key.sandbox,
            "namespace": key.namespace, "actionGroups": list(key.action_groups),
            "expiresAt": _time(key.expires_at), "owner": key.user_id}


def _store(svc: Services) -> MintedKeyStore:
    if svc.api_keys is None:
        raise ApiError(503, "API keys cannot be minted on this Router")
    return svc.api_keys


def _stored(do: Callable[[], T]) -> T:
    try:
        return do()
    except KeyStoreUnavailable as error:
        raise ApiError(503, f"the API key store is unavailable: {error}") from None


@router.get("/user/api-keys", response_model=ApiKeysOut)
def list_keys(request: Request,
              identity: Annotated[Identity, caller_of("api-key.list")]) -> ApiKeysOut:
    """The caller's own keys, oldest first (never the keys themselves)."""
    svc = services(request)

    def mine() -> list[MintedKey]:
        return [k for k in _store(svc).all_keys() if k.user_id == identity.subject]

    keys = recorded_call(svc, identity, "api-key.list", _RESOURCE, mine)
    return ApiKeysOut(keys=[key_out(k) for k in keys])


def _check(svc: Services, identity: Identity, body: ApiKeyCreateRequest,
           namespace: str | None) -> tuple[Any, str, str]:
    """The body's expiry, sandbox and namespace, checked; ApiError (400, 404) otherwise."""
    problem = body.problem()
    if problem is not None:
        raise ApiError(400, problem)
    expires_in = None
    if body.expires_in is not None:
        try:
            expires_in = parse_go_duration(body.expires_in)
        except ValueError:
            expires_in = None
        if expires_in is None or expires_in.total_seconds() <= 0:
            raise ApiError(400, 'expiresIn must be a positive Go duration (e.g. "720h")')
    if not body.sandbox_id:
        return expires_in, "", ""
    sandbox = find_sandbox(svc, identity, body.sandbox_id, namespace)
    if access(identity, sandbox) < Access.OWN:  # a share grantee may not mint for it
        raise ApiError(404, f"sandbox {body.sandbox_id!r} not found")
    return expires_in, sandbox.name, sandbox.namespace


@router.post("/user/api-keys", status_code=201, response_model=ApiKeyCreatedOut)
def create_key(request: Request, identity: Annotated[Identity, caller_of("api-key.create")],
               body: ApiKeyCreateRequest | None = None,
               namespace: Namespace = None) -> ApiKeyCreatedOut:
    """Mint a key for the caller: user-level, or scoped to one sandbox the caller owns.

    ``expiresIn`` is a Go duration (none: the key never expires). With
    ``sandboxId``, ``scopes`` (or ``actionGroups``) limits what it may do
    there; none named means every group. The key is in this answer only.
    """
    svc = services(request)
    body = body or ApiKeyCreateRequest()
    asked: dict[str, Any] = {"name": body.name or "", "sandboxId": body.sandbox_id or "",
                             "actionGroups": body.named_groups() or []}

    def create() -> tuple[str, MintedKey]:
        expires_in, sandbox, space = _check(svc, identity, body, namespace)
        key, minted = mint(user_id=identity.subject, email=identity.email,
                           name=body.name or "", expires_in=expires_in, sandbox=sandbox,
                           namespace=space, action_groups=body.groups())
        _stored(lambda: _store(svc).add(minted))
        asked.clear()
        asked.update(_details(minted))  # what is recorded: the key's id, never the key
        return key, minted

    key, minted = recorded_call(svc, identity, "api-key.create", _RESOURCE, create,
                                details=asked)
    return ApiKeyCreatedOut(
        id=minted.id, key=key, name=minted.name, sandbox_id=minted.sandbox,
        action_groups=list(minted.action_groups), created_at=_time(minted.created_at) or "",
        expires_at=_time(minted.expires_at), warning=WARNING)


KeyId = Annotated[str, Path(min_length=1, max_length=128)]


@router.delete("/user/api-keys/{key_id}", response_model=ApiKeyRevokedOut)
def revoke_key(key_id: KeyId, request: Request,
               identity: Annotated[Identity, caller_of("api-key.revoke")]) -> ApiKeyRevokedOut:
    """Revoke a key: it stops working at once. Owners revoke their own; admins any."""
    svc = services(request)
    details: dict[str, Any] = {"keyId": key_id[:128]}

    def revoke() -> None:
        store = _store(svc)
        key = store.get(key_id)
        if key is None:
            raise ApiError(404, "api key not found")
        details.update(_details(key))
        if key.user_id != identity.subject and not identity.is_admin:
            raise ApiError(403, "you do not own this API key")
        if not _stored(lambda: store.remove(key_id)):
            raise ApiError(404, "api key not found")

    recorded_call(svc, identity, "api-key.revoke", _RESOURCE, revoke, details=details)
    return ApiKeyRevokedOut(id=key_id)
