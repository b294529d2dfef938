"""``/api/v1/sandboxes`` and ``/api/v1/user/me``: the endpoints the SDK drives.

Every action that changes a sandbox and every exec leaves an audit event
(:mod:`.acting` says how). Handlers are plain functions that FastAPI
runs in its thread pool, except exec: it runs on its own bounded pool, in a
slot of the caller's (:mod:`.execs`), so long commands never take the threads
other requests need.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from agenttier_router.controlplane import (
    Sandbox,
    SandboxConflict,
    SandboxNotFound,
)
from agenttier_router.controlplane.changes import (
    RESTART_MESSAGE,
    InvalidChange,
    change_from,
    format_go_duration,
    visible,
)
from agenttier_router.service import Services
from agenttier_router.service.recording import command_details
from agenttier_router.storage import format_ts

from .acting import (
    Namespace,
    SandboxId,
    act,
    caller,
    caller_of,
    find_sandbox,
    recorded,
)
from .auth import Access, Identity, access
from .context import services
from .errors import ApiError
from .execs import RETRY_AFTER, ExecSlots
from .models import (
    CreatedBy,
    CreateSandbox,
    ErrorOut,
    ExecOut,
    ExecRequest,
    SandboxList,
    SandboxOut,
    ShareEntry,
    ShareLinkOut,
    ShareRequest,
    SharingOut,
    UserOut,
    check_identity,
)
from .models_sdk import PatchRequest, PatchResultOut

__all__ = ["router", "sandbox_out", "sharing_out"]

# Any sandbox route may answer 400 (a body that is not even JSON), 404, and 409 (a name
# used in several namespaces, without ?namespace=): the spec says so for every route.
router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut},
    409: {"model": ErrorOut},
})



def sandbox_out(sandbox: Sandbox) -> SandboxOut:
    """A sandbox in the SDK's ``SandboxSummary`` shape."""
    return SandboxOut(
        sandbox_id=sandbox.name, name=sandbox.name, namespace=sandbox.namespace,
        status=sandbox.phase.value, template_ref=sandbox.template.name,
        created_at=format_ts(sandbox.created_at),
        last_activity_at=format_ts(sandbox.last_activity_at),
        created_by=CreatedBy(email=sandbox.owner_email or None, display_name=sandbox.owner),
        message=sandbox.message,
        labels=visible(sandbox.labels), annotations=visible(sandbox.annotations),
        idle_timeout=(format_go_duration(sandbox.idle_timeout)
                      if sandbox.idle_timeout is not None else None),
        resources=sandbox.resources.as_dict() if sandbox.resources is not None else None,
        restart_required=sandbox.restart_pending,
    )


def sharing_out(sandbox: Sandbox) -> SharingOut:
    """A sandbox's grants and share links (oldest first), as ``GET …/share`` answers."""
    return SharingOut(
        users=[ShareEntry(identity=i, level=v) for i, v in sorted(sandbox.shares.users.items())],
        groups=[ShareEntry(identity=i, level=v) for i, v in sorted(sandbox.shares.groups.items())],
        share_links=[ShareLinkOut.of(link) for link in sandbox.shares.links],
    )


@router.post("/sandboxes", status_code=201, response_model=SandboxOut,
             responses={400: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def create_sandbox(
    body: CreateSandbox, request: Request,
    identity: Annotated[Identity, caller_of("create")],
) -> SandboxOut:
    """Create a sandbox from a template; it is Creating, then Running.

    A name taken by a sandbox the caller may not see is a 409 like any other,
    that neither names nor describes that sandbox; the attempt is recorded as
    ``denied``.
    """
    svc = services(request)
    base: dict[str, Any] = {"template": body.template_ref.name}
    where = {"sandbox_id": body.name, "namespace": body.namespace}

    def create() -> Sandbox:
        try:
            return svc.control_plane.create(body.name, body.namespace, body.template_ref.name,
                                            identity.subject, identity.email)
        except SandboxConflict as error:
            if not _taken_out_of_sight(svc, identity, body.name, body.namespace):
                raise
            svc.recording.audit(identity, "create", outcome="denied", **where, details={
                **base, "reason": "the name is taken by a sandbox the caller may not see",
                "error": str(error)})
            raise ApiError(409, f"the name {body.name!r} is not available in namespace "
                                f"{body.namespace!r}; choose another") from None

    return sandbox_out(recorded(svc, identity, "create", where, base, create))


def _taken_out_of_sight(svc: Services, identity: Identity, name: str, namespace: str) -> bool:
    """Whether ``namespace/name`` is a sandbox that ``identity`` may not see."""
    try:
        return access(identity, svc.control_plane.get(name, namespace)) is Access.NONE
    except SandboxNotFound:
        return False


@router.get("/sandboxes", response_model=SandboxList)
def list_sandboxes(
    request: Request,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
) -> SandboxList:
    """The sandboxes the caller may see, oldest first."""
    identity = caller(request, "list")
    sandboxes = [
        s for s in services(request).control_plane.list(namespace or None)
        if access(identity, s) is not Access.NONE and (not status or s.phase.value == status)
    ]
    return SandboxList(sandboxes=[sandbox_out(s) for s in sandboxes])


@router.get("/sandboxes/{sandbox_id}", response_model=SandboxOut)
def get_sandbox(sandbox_id: SandboxId, request: Request, namespace: Namespace = None) -> SandboxOut:
    """One sandbox."""
    return sandbox_out(find_sandbox(services(request), caller(request, "get"), sandbox_id,
                                    namespace))


@router.delete("/sandboxes/{sandbox_id}", status_code=204, response_class=Response,
               responses={403: {"model": ErrorOut}})
def delete_sandbox(
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, caller_of("delete")], namespace: Namespace = None,
) -> Response:
    """Delete a sandbox and its workspace (owner or admin)."""
    cp = services(request).control_plane
    act(request, identity, "delete", sandbox_id, namespace, Access.OWN,
         lambda s: cp.delete(s.name, s.namespace))
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/stop", response_model=SandboxOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def stop_sandbox(
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, caller_of("stop")], namespace: Namespace = None,
) -> SandboxOut:
    """Stop a Running sandbox (collaborator, owner or admin)."""
    cp = services(request).control_plane
    return sandbox_out(act(request, identity, "stop", sandbox_id, namespace, Access.OPERATE,
                            lambda s: cp.stop(s.name, s.namespace)))


@router.post("/sandboxes/{sandbox_id}/resume", response_model=SandboxOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def resume_sandbox(
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, caller_of("resume")], namespace: Namespace = None,
) -> SandboxOut:
    """Resume a Stopped sandbox (collaborator, owner or admin)."""
    cp = services(request).control_plane
    return sandbox_out(act(request, identity, "resume", sandbox_id, namespace, Access.OPERATE,
                            lambda s: cp.resume(s.name, s.namespace)))


@router.post("/sandboxes/{sandbox_id}/exec", response_model=ExecOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut},
                        429: {"model": ErrorOut}})
async def exec_command(
    sandbox_id: SandboxId, body: ExecRequest, request: Request,
    identity: Annotated[Identity, caller_of("exec")], namespace: Namespace = None,
) -> ExecOut:
    """Run a shell command in a Running sandbox and wait for it (at most ``timeout`` s).

    It runs on the exec pool, in one of the caller's slots; with none free the
    answer is 429 with ``Retry-After``, and the refusal is recorded.
    """
    svc = services(request)
    slots: ExecSlots = request.app.state.exec_slots
    base = {**command_details(body.command), "timeout": body.timeout}
    refusal = slots.acquire(identity.subject)
    if refusal is not None:
        svc.recording.audit(identity, "exec", sandbox_id=sandbox_id, namespace=namespace or "",
                            outcome="denied", details={**base, "reason": refusal})
        raise ApiError(429, refusal, headers={"Retry-After": str(RETRY_AFTER)})
    cp = svc.control_plane
    result = await slots.run(identity.subject, lambda: act(
        request, identity, "exec", sandbox_id, namespace, Access.OPERATE,
        lambda s: cp.exec(s.name, s.namespace, body.command, float(body.timeout)),
        details=lambda r: {"exitCode": r.exit_code, "timedOut": r.timed_out},
        request_details=base,
    ))
    return ExecOut(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)


@router.get("/sandboxes/{sandbox_id}/share", response_model=SharingOut)
def get_sharing(sandbox_id: SandboxId, request: Request, namespace: Namespace = None) -> SharingOut:
    """Who the sandbox is shared with."""
    return sharing_out(find_sandbox(services(request), caller(request, "sharing.get"), sandbox_id,
                                    namespace))


@router.post("/sandboxes/{sandbox_id}/share", response_model=SharingOut,
             responses={403: {"model": ErrorOut}})
def share_sandbox(
    sandbox_id: SandboxId, body: ShareRequest, request: Request,
    identity: Annotated[Identity, caller_of("share")], namespace: Namespace = None,
) -> SharingOut:
    """Grant a user or group viewer or collaborator access (owner or admin)."""
    cp = services(request).control_plane
    sandbox = act(
        request, identity, "share", sandbox_id, namespace, Access.OWN,
        lambda s: cp.share(s.name, s.namespace, body.kind, body.identity, body.level),
        request_details={"identity": body.identity, "level": body.level, "kind": body.kind},
    )
    return sharing_out(sandbox)


def _revoke(request: Request, caller: Identity, sandbox_id: str, identity: str,
            kind: Literal["user", "group"] | None, namespace: str | None) -> SharingOut:
    try:
        check_identity(identity)
    except ValueError as error:
        raise ApiError(400, f"invalid request: identity: {error}") from None
    cp = services(request).control_plane
    details: dict[str, Any] = {"identity": identity} | ({"kind": kind} if kind else {})
    sandbox = act(request, caller, "unshare", sandbox_id, namespace, Access.OWN,
                   lambda s: cp.unshare(s.name, s.namespace, identity, kind),
                   request_details=details)
    return sharing_out(sandbox)


Kind = Annotated[Literal["user", "group"] | None,
                 Query(description="Revoke only a user's or only a group's share")]


@router.delete("/sandboxes/{sandbox_id}/share", response_model=SharingOut,
               responses={403: {"model": ErrorOut}})
def unshare_sandbox_by_query(
    sandbox_id: SandboxId,
    identity: Annotated[str, Query(min_length=1, max_length=255)],
    request: Request,
    caller: Annotated[Identity, caller_of("unshare")],
    kind: Kind = None,
    namespace: Namespace = None,
) -> SharingOut:
    """Revoke the shares ``identity`` holds (owner or admin); any identity, ``acme/devs`` too."""
    return _revoke(request, caller, sandbox_id, identity, kind, namespace)


@router.delete("/sandboxes/{sandbox_id}/share/{identity}", response_model=SharingOut,
               responses={403: {"model": ErrorOut}})
def unshare_sandbox(
    sandbox_id: SandboxId,
    identity: Annotated[str, Path(min_length=1, max_length=255)],
    request: Request,
    caller: Annotated[Identity, caller_of("unshare")],
    kind: Kind = None,
    namespace: Namespace = None,
) -> SharingOut:
    """Revoke every share ``identity`` holds on the sandbox (owner or admin).

    An identity with ``/`` cannot be a path segment: use ``?identity=`` instead.
    """
    return _revoke(request, caller, sandbox_id, identity, kind, namespace)


@router.get("/user/me", response_model=UserOut, response_model_by_alias=True)
def current_user(request: Request) -> UserOut:
    """The caller's identity, as the Router sees it."""
    identity = caller(request, "user.me")
    return UserOut(sub=identity.subject, email=identity.email or None,
                   name=identity.name or None, groups=list(identity.groups),
                   isAdmin=identity.is_admin)



# -- Updating a sandbox (PATCH /sandboxes/{id}) ----------------------------------------------

def _update_details(body: PatchRequest) -> dict[str, Any]:
    """What an update's audit event says it changed: the fields, and their values, except the
    annotations' values (they may be large, or secret), of which only the keys are kept."""
    details: dict[str, Any] = {"fields": body.present()}
    if body.idle_timeout is not None:
        details["idleTimeout"] = body.idle_timeout
    if body.resources is not None:
        details["resources"] = body.resources
    if body.labels is not None:
        details["labels"] = body.labels
    if body.annotations is not None:
        details["annotationKeys"] = sorted(body.annotations)
    return details


@router.patch("/sandboxes/{sandbox_id}", response_model=PatchResultOut,
              responses={403: {"model": ErrorOut}})
def update_sandbox(
    sandbox_id: SandboxId, body: PatchRequest, request: Request,
    identity: Annotated[Identity, caller_of("update")], namespace: Namespace = None,
) -> PatchResultOut | JSONResponse:
    """Change a sandbox's idle timeout, resources, labels or annotations (owner or admin).

    The idle timeout, labels and annotations apply at once; resources when the
    sandbox is next stopped and resumed (its cost rate too). Labels and
    annotations are merged into the sandbox's: a ``null`` value removes a key.
    A collaborator or viewer gets 403, anyone else 404; bad input is a 400 naming
    the field. Every outcome is recorded (action ``update``).
    """
    cp = services(request).control_plane

    def update(sandbox: Sandbox) -> Sandbox:
        change = change_from(idle_timeout=body.idle_timeout, resources=body.resources,
                             labels=body.labels, annotations=body.annotations)
        return cp.update(sandbox.name, sandbox.namespace, change)

    try:
        updated = act(request, identity, "update", sandbox_id, namespace, Access.OWN, update,
                      request_details=_update_details(body))
    except InvalidChange as error:
        return JSONResponse({"error": str(error),
                             "fields": [{"field": error.field, "message": error.reason}]},
                            status_code=400)
    applied: dict[str, Literal["immediately", "on-restart"]] = {
        name: "on-restart" if name == "resources" else "immediately" for name in body.present()}
    restart = "resources" in applied
    return PatchResultOut(sandbox_id=updated.name, applied=applied, restart_required=restart,
                          message=RESTART_MESSAGE if restart else None)
