"""``GET /admin/sandboxes`` and ``GET /admin/sharing``: the whole fleet, for admins.

``/admin/sandboxes`` lists every sandbox in the SDK's ``SandboxSummary`` shape,
each with ``scopedApiKeys``: the metadata of the keys scoped to it (never a key);
``/admin/sharing`` lists every sandbox that is shared or has share links, with
its user and group grants and its links (never a token), where the Go Router
answers ``{}``::

    {"sandboxes": [{"sandboxId", "namespace", "owner", "users": [{identity, level}],
                    "groups": [...], "shareLinks": [{id, level, expiresAt, maxUses,
                                                     usedCount}]}]}

Both reads are recorded
(``admin.sandboxes``, ``admin.sharing``); refusals too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from .acting import audited_caller, recorded_call
from .apikeys import key_out
from .models import ErrorOut, ShareLinkOut
from .models_sdk import (
    AdminSandboxesOut,
    AdminSandboxOut,
    AdminSharingEntry,
    AdminSharingOut,
    ApiKeyOut,
)
from .sandboxes import sandbox_out

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses={
    401: {"model": ErrorOut}, 403: {"model": ErrorOut},
})


@router.get("/admin/sandboxes", response_model=AdminSandboxesOut)
def admin_sandboxes(
    request: Request,
    namespace: Annotated[str | None, Query(min_length=1, max_length=63)] = None,
) -> AdminSandboxesOut:
    """Every sandbox (or a namespace's), whoever owns it, oldest first."""
    svc, identity = audited_caller(request, "admin.sandboxes", "admin", admin=True)
    sandboxes = recorded_call(svc, identity, "admin.sandboxes", "admin",
                              lambda: svc.control_plane.list(namespace))
    scoped: dict[tuple[str, str], list[ApiKeyOut]] = {}
    for key in svc.api_keys.all_keys() if svc.api_keys is not None else []:
        if key.scoped:
            scoped.setdefault((key.namespace, key.sandbox), []).append(key_out(key))
    return AdminSandboxesOut(sandboxes=[
        AdminSandboxOut(**sandbox_out(s).model_dump(),
                        scoped_api_keys=scoped.get((s.namespace, s.name), []))
        for s in sandboxes])


@router.get("/admin/sharing", response_model=AdminSharingOut)
def admin_sharing(request: Request) -> AdminSharingOut:
    """Every sandbox with a grant or a share link, with them all, by namespace and name."""
    svc, identity = audited_caller(request, "admin.sharing", "admin", admin=True)
    sandboxes = recorded_call(svc, identity, "admin.sharing", "admin",
                              lambda: svc.control_plane.list())
    shared = sorted((s for s in sandboxes
                     if s.shares.users or s.shares.groups or s.shares.links),
                    key=lambda s: (s.namespace, s.name))
    return AdminSharingOut(sandboxes=[AdminSharingEntry(
        sandbox_id=s.name, namespace=s.namespace, owner=s.owner,
        users=[{"identity": i, "level": v} for i, v in sorted(s.shares.users.items())],
        groups=[{"identity": i, "level": v} for i, v in sorted(s.shares.groups.items())],
        share_links=[ShareLinkOut.of(link) for link in s.shares.links]) for s in shared])
