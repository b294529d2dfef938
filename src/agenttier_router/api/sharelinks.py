"""Share links: create and revoke them on a sandbox (owner or admin), and redeem one (anyone).

::

    POST   /api/v1/sandboxes/{id}/share-links      {level, expiresIn, maxUses} -> 201 + token
    DELETE /api/v1/sandboxes/{id}/share-links/{linkId}                        -> 200 sharing
    POST   /api/v1/share-links/redeem              {token}                    -> 200 sandbox + level

The token (43 characters: 32 random bytes, unpadded base64url) is shown once,
in the 201; the control plane is given only its SHA-256, and neither ever
reaches a log or an audit event. Redeeming grants the caller (by subject) the
link's level as a user share, and counts the use atomically on either plane.

Every attempt is recorded (``share-link.create``, ``share-link.revoke``,
``share-link.redeem``): success; ``denied`` for 401, 403, 404 and a refused
redeem (expired, used up, the owner's own); ``error`` for a bad request or a
failing control plane. Refused redeems answer:

- 404 ``share link not found``: no such token, a malformed one, or a revoked link
  (the three are not told apart);
- 410 ``this share link has expired`` / ``… has been used its N times``;
- 409 ``you own sandbox X; a share link is for others``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from agenttier_router.controlplane import (
    ControlPlaneError,
    Sandbox,
    ShareLink,
    ShareLinkNotFound,
    ShareLinkRefused,
)
from agenttier_router.storage import format_ts

from .acting import Namespace, SandboxId, act, caller_of
from .auth import Access, Identity
from .context import services
from .errors import ApiError
from .models import ErrorOut, SharingOut
from .models_sdk import RedeemedOut, RedeemRequest, ShareLinkCreatedOut, ShareLinkRequest
from .sandboxes import sandbox_out, sharing_out

__all__ = ["CREATE", "REDEEM", "REVOKE", "router"]

CREATE = "share-link.create"
"""The audit action of creating a link."""
REVOKE = "share-link.revoke"
"""The audit action of revoking a link."""
REDEEM = "share-link.redeem"
"""The audit action of redeeming a link."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_WARNING = ("Save this token now: it is shown only once. Anyone who has it can redeem the "
            "link until it expires, is used up, or is revoked.")
_NOT_FOUND = "share link not found"

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut},
    404: {"model": ErrorOut}, 409: {"model": ErrorOut},
})


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _link_details(link: ShareLink) -> dict[str, Any]:
    """What an audit event says about a link: never its token or its hash."""
    return {"linkId": link.id, "level": link.level, "maxUses": link.max_uses,
            "usedCount": link.used_count,
            "expiresAt": format_ts(link.expires_at) if link.expires_at else None}


def _bad_request(error: ValidationError) -> RequestValidationError:
    """The 400 (with ``fields``) for a body that failed its model."""
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()])


def _reason(error: ValidationError) -> str:
    return "; ".join(str(e["msg"]) for e in error.errors())


@router.post("/sandboxes/{sandbox_id}/share-links", status_code=201,
             response_model=ShareLinkCreatedOut)
def create_share_link(
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, caller_of(CREATE)],
    body: Annotated[dict[str, Any] | None, Body(
        description="ShareLinkRequest: {level, expiresIn, maxUses}, all optional")] = None,
    namespace: Namespace = None,
) -> ShareLinkCreatedOut:
    """Create a share link (owner or admin); its token is in this answer, and only here.

    Body (optional): ``level`` (``viewer``, the default, or ``collaborator``),
    ``expiresIn`` (a Go duration > 0, e.g. ``24h``; none: no expiry), ``maxUses``
    (>= 0; 0, the default: unlimited).
    """
    svc = services(request)
    try:
        wanted = ShareLinkRequest.model_validate(body or {})
    except ValidationError as error:
        svc.recording.audit(identity, CREATE, sandbox_id=sandbox_id, namespace=namespace or "",
                            outcome="error", details={"reason": _reason(error)})
        raise _bad_request(error) from None
    lifetime = wanted.lifetime()
    expires_at = datetime.now(UTC) + lifetime if lifetime is not None else None
    token = secrets.token_urlsafe(32)  # 32 random bytes: 43 characters, unpadded base64url
    asked = {"level": wanted.level, "maxUses": wanted.max_uses,
             "expiresAt": format_ts(expires_at) if expires_at else None}
    cp = svc.control_plane
    link = act(request, identity, CREATE, sandbox_id, namespace, Access.OWN,
               lambda s: cp.create_share_link(s.name, s.namespace, token_hash=_hash(token),
                                              level=wanted.level, expires_at=expires_at,
                                              max_uses=wanted.max_uses),
               details=lambda made: {"linkId": made.id}, request_details=asked)
    return ShareLinkCreatedOut(
        id=link.id, token=token, level=link.level, max_uses=link.max_uses, warning=_WARNING,
        expires_at=format_ts(link.expires_at) if link.expires_at else None)


@router.delete("/sandboxes/{sandbox_id}/share-links/{link_id}", response_model=SharingOut)
def revoke_share_link(
    sandbox_id: SandboxId,
    link_id: Annotated[str, Path(min_length=1, max_length=64)],
    request: Request,
    identity: Annotated[Identity, caller_of(REVOKE)],
    namespace: Namespace = None,
) -> SharingOut:
    """Revoke one share link (owner or admin); its token stops working at once. The answer is
    the sandbox's sharing, as ``GET …/share`` gives it. The shares it granted stay."""
    svc = services(request)
    cp = svc.control_plane
    asked = {"linkId": link_id}

    def revoke(sandbox: Sandbox) -> Sandbox:
        try:
            return cp.revoke_share_link(sandbox.name, sandbox.namespace, link_id)
        except ShareLinkNotFound:
            svc.recording.audit(identity, REVOKE, sandbox_id=sandbox.name,
                                namespace=sandbox.namespace, outcome="denied",
                                details={**asked, "reason": "no such share link"})
            raise ApiError(404, f"share link {link_id!r} not found on sandbox "
                                f"{sandbox.name!r}") from None

    return sharing_out(act(request, identity, REVOKE, sandbox_id, namespace, Access.OWN, revoke,
                           request_details=asked))


@router.post("/share-links/redeem", response_model=RedeemedOut,
             responses={410: {"model": ErrorOut}})
def redeem_share_link(
    request: Request,
    identity: Annotated[Identity, caller_of(REDEEM)],
    body: Annotated[dict[str, Any] | None, Body(description="RedeemRequest: {token}")] = None,
) -> RedeemedOut:
    """Redeem a share link: the caller gets its level on the sandbox, as a user share.

    404 for a token that is unknown, malformed or revoked; 410 once the link has
    expired or been used ``maxUses`` times; 409 for the sandbox's owner. A link
    never lowers a share the caller holds: a collaborator stays one.
    """
    svc = services(request)
    try:
        token = RedeemRequest.model_validate(body or {}).token
    except ValidationError as error:
        svc.recording.audit(identity, REDEEM, outcome="error",
                            details={"reason": _reason(error)})
        raise _bad_request(error) from None
    try:
        if _TOKEN.fullmatch(token) is None:  # cannot be one of ours: no need to look
            raise ShareLinkNotFound(_NOT_FOUND)
        done = svc.control_plane.redeem_share_link(_hash(token), identity.subject)
    except ShareLinkNotFound:
        svc.recording.audit(identity, REDEEM, outcome="denied",
                            details={"reason": "unknown, malformed or revoked token"})
        raise ApiError(404, _NOT_FOUND) from None
    except ShareLinkRefused as refused:
        svc.recording.audit(identity, REDEEM, sandbox_id=refused.sandbox.name,
                            namespace=refused.sandbox.namespace, outcome="denied",
                            details={**_link_details(refused.link), "reason": refused.reason})
        raise ApiError(409 if refused.reason == "owner" else 410, str(refused)) from None
    except ControlPlaneError as error:
        svc.recording.audit(identity, REDEEM, outcome="error", details={"error": str(error)})
        raise
    svc.recording.audit(identity, REDEEM, sandbox_id=done.sandbox.name,
                        namespace=done.sandbox.namespace,
                        details={**_link_details(done.link), "granted": done.level})
    return RedeemedOut(**sandbox_out(done.sandbox).model_dump(), level=done.level,
                       link_id=done.link.id)
