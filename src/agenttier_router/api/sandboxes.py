"""``/api/v1/sandboxes`` and ``/api/v1/user/me``: the endpoints the SDK drives.

Every svc-changing action and every exec leaves an audit event: success,
``denied`` (no valid key, or a sandbox the caller may not touch) or ``error``
(the control plane refused). A caller who may not see a sandbox gets 404,
as if it did not exist, and the attempt is still recorded.

Handlers are plain functions: FastAPI runs them in its thread pool, so a
long exec does not hold up other requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response

from agenttier_router.controlplane import (
    ControlPlaneError,
    Sandbox,
    SandboxNotFound,
)
from agenttier_router.service import Services
from agenttier_router.service.recording import cut_command
from agenttier_router.storage import format_ts

from .auth import Access, Identity, access
from .context import authenticate, services
from .errors import ApiError
from .models import (
    CreatedBy,
    CreateSandbox,
    ErrorOut,
    ExecOut,
    ExecRequest,
    SandboxList,
    SandboxOut,
    ShareEntry,
    ShareRequest,
    SharingOut,
    UserOut,
)

__all__ = ["router", "sandbox_out"]

# Any sandbox route may answer 400 (a body that is not even JSON), 404, and 409 (a name
# used in several namespaces, without ?namespace=): the spec says so for every route.
router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut},
    409: {"model": ErrorOut}, 422: {"model": ErrorOut},
})

T = TypeVar("T")
SandboxId = Annotated[str, Path(min_length=1, max_length=253)]
Namespace = Annotated[str | None, Query(min_length=1, max_length=63,
                                        description="The sandbox's namespace, when its name "
                                        "is used in several")]


def sandbox_out(sandbox: Sandbox) -> SandboxOut:
    """A sandbox in the SDK's ``SandboxSummary`` shape."""
    return SandboxOut(
        sandbox_id=sandbox.name, name=sandbox.name, namespace=sandbox.namespace,
        status=sandbox.phase.value, template_ref=sandbox.template.name,
        created_at=format_ts(sandbox.created_at),
        last_activity_at=format_ts(sandbox.last_activity_at),
        created_by=CreatedBy(email=sandbox.owner_email or None, display_name=sandbox.owner),
        message=sandbox.message,
    )


def _sharing(sandbox: Sandbox) -> SharingOut:
    return SharingOut(
        users=[ShareEntry(identity=i, level=v) for i, v in sorted(sandbox.shares.users.items())],
        groups=[ShareEntry(identity=i, level=v) for i, v in sorted(sandbox.shares.groups.items())],
    )


def _caller(request: Request) -> Identity:
    """The caller, for an endpoint that records nothing; 401 without a valid key."""
    identity = authenticate(services(request), request)
    if identity is None:
        raise ApiError(401, "a valid X-API-Key header is required")
    return identity


def _find(svc: Services, identity: Identity, name: str, namespace: str | None) -> Sandbox:
    """The sandbox a path names; 404 when it does not exist or the caller may not see it."""
    if namespace is not None:
        try:
            sandbox = svc.control_plane.get(name, namespace)
        except SandboxNotFound:
            raise ApiError(404, f"sandbox {name!r} not found") from None
        if access(identity, sandbox) is Access.NONE:
            raise ApiError(404, f"sandbox {name!r} not found")
        return sandbox
    visible = [s for s in svc.control_plane.named(name) if access(identity, s) is not Access.NONE]
    if not visible:
        raise ApiError(404, f"sandbox {name!r} not found")
    if len(visible) > 1:
        spaces = ", ".join(sorted(s.namespace for s in visible))
        raise ApiError(409, f"several sandboxes are named {name!r} (namespaces {spaces}); "
                            "add ?namespace=")
    return visible[0]


def _identify(svc: Services, request: Request, action: str, sandbox_id: str,
              namespace: str, base: dict[str, Any]) -> Identity:
    """The caller of an action; without a valid key, the attempt is recorded and refused (401)."""
    identity = authenticate(svc, request)
    if identity is None:
        svc.recording.audit(None, action, sandbox_id=sandbox_id, namespace=namespace,
                            outcome="denied", details={**base, "reason": "no valid API key"})
        raise ApiError(401, "a valid X-API-Key header is required")
    return identity


def _recorded(
    svc: Services,
    identity: Identity,
    action: str,
    where: dict[str, str],
    base: dict[str, Any],
    do: Callable[[], T],
    details: Callable[[T], dict[str, Any]] | None = None,
) -> T:
    """Run an authorised action and record its outcome: ``error`` if the control plane refuses."""
    try:
        result = do()
    except ControlPlaneError as error:
        svc.recording.audit(identity, action, outcome="error", **where,
                            details={**base, "error": str(error)})
        raise
    svc.recording.audit(identity, action, **where,
                        details={**base, **(details(result) if details else {})})
    return result


def _act(
    request: Request,
    action: str,
    name: str,
    namespace: str | None,
    need: Access,
    do: Callable[[Sandbox], T],
    details: Callable[[T], dict[str, Any]] | None = None,
    request_details: dict[str, Any] | None = None,
) -> T:
    """Authenticate, authorise, run ``do`` on the sandbox, and record the outcome."""
    svc = services(request)
    base = dict(request_details or {})
    identity = _identify(svc, request, action, name, namespace or "", base)
    try:
        sandbox = _find(svc, identity, name, namespace)
    except ApiError as error:
        outcome = "denied" if error.status == 404 else "error"
        svc.recording.audit(identity, action, sandbox_id=name, namespace=namespace or "",
                            outcome=outcome, details={**base, "reason": error.message})
        raise
    except ControlPlaneError as error:  # e.g. unavailable: the attempt is still history
        svc.recording.audit(identity, action, sandbox_id=name, namespace=namespace or "",
                            outcome="error", details={**base, "error": str(error)})
        raise
    where = {"sandbox_id": sandbox.name, "namespace": sandbox.namespace}
    if access(identity, sandbox) < need:
        svc.recording.audit(identity, action, outcome="denied", **where,
                            details={**base, "reason": f"{action} needs more than shared access"})
        raise ApiError(403, f"you may not {action} sandbox {name!r}")
    return _recorded(svc, identity, action, where, base, lambda: do(sandbox), details)


@router.post("/sandboxes", status_code=201, response_model=SandboxOut,
             responses={400: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def create_sandbox(body: CreateSandbox, request: Request) -> SandboxOut:
    """Create a sandbox from a template; it is Creating, then Running."""
    svc = services(request)
    base: dict[str, Any] = {"template": body.template_ref.name}
    identity = _identify(svc, request, "create", body.name, body.namespace, base)
    sandbox = _recorded(
        svc, identity, "create", {"sandbox_id": body.name, "namespace": body.namespace}, base,
        lambda: svc.control_plane.create(body.name, body.namespace, body.template_ref.name,
                                           identity.subject, identity.email),
    )
    return sandbox_out(sandbox)


@router.get("/sandboxes", response_model=SandboxList)
def list_sandboxes(
    request: Request,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
) -> SandboxList:
    """The sandboxes the caller may see, oldest first."""
    identity = _caller(request)
    sandboxes = [
        s for s in services(request).control_plane.list(namespace or None)
        if access(identity, s) is not Access.NONE and (not status or s.phase.value == status)
    ]
    return SandboxList(sandboxes=[sandbox_out(s) for s in sandboxes])


@router.get("/sandboxes/{sandbox_id}", response_model=SandboxOut)
def get_sandbox(sandbox_id: SandboxId, request: Request, namespace: Namespace = None) -> SandboxOut:
    """One sandbox."""
    return sandbox_out(_find(services(request), _caller(request), sandbox_id, namespace))


@router.delete("/sandboxes/{sandbox_id}", status_code=204, response_class=Response,
               responses={403: {"model": ErrorOut}})
def delete_sandbox(
    sandbox_id: SandboxId, request: Request, namespace: Namespace = None
) -> Response:
    """Delete a sandbox and its workspace (owner or admin)."""
    cp = services(request).control_plane
    _act(request, "delete", sandbox_id, namespace, Access.OWN,
         lambda s: cp.delete(s.name, s.namespace))
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/stop", response_model=SandboxOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def stop_sandbox(
    sandbox_id: SandboxId, request: Request, namespace: Namespace = None
) -> SandboxOut:
    """Stop a Running sandbox (collaborator, owner or admin)."""
    cp = services(request).control_plane
    return sandbox_out(_act(request, "stop", sandbox_id, namespace, Access.OPERATE,
                            lambda s: cp.stop(s.name, s.namespace)))


@router.post("/sandboxes/{sandbox_id}/resume", response_model=SandboxOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def resume_sandbox(
    sandbox_id: SandboxId, request: Request, namespace: Namespace = None
) -> SandboxOut:
    """Resume a Stopped sandbox (collaborator, owner or admin)."""
    cp = services(request).control_plane
    return sandbox_out(_act(request, "resume", sandbox_id, namespace, Access.OPERATE,
                            lambda s: cp.resume(s.name, s.namespace)))


@router.post("/sandboxes/{sandbox_id}/exec", response_model=ExecOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def exec_command(
    sandbox_id: SandboxId, body: ExecRequest, request: Request, namespace: Namespace = None
) -> ExecOut:
    """Run a shell command in a Running sandbox and wait for it (at most ``timeout`` s)."""
    cp = services(request).control_plane
    result = _act(
        request, "exec", sandbox_id, namespace, Access.OPERATE,
        lambda s: cp.exec(s.name, s.namespace, body.command, float(body.timeout)),
        details=lambda r: {"exitCode": r.exit_code, "timedOut": r.timed_out},
        request_details={"command": cut_command(body.command), "timeout": body.timeout},
    )
    return ExecOut(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)


@router.get("/sandboxes/{sandbox_id}/share", response_model=SharingOut)
def get_sharing(sandbox_id: SandboxId, request: Request, namespace: Namespace = None) -> SharingOut:
    """Who the sandbox is shared with."""
    return _sharing(_find(services(request), _caller(request), sandbox_id, namespace))


@router.post("/sandboxes/{sandbox_id}/share", response_model=SharingOut,
             responses={403: {"model": ErrorOut}})
def share_sandbox(
    sandbox_id: SandboxId, body: ShareRequest, request: Request, namespace: Namespace = None
) -> SharingOut:
    """Grant a user or group viewer or collaborator access (owner or admin)."""
    cp = services(request).control_plane
    sandbox = _act(
        request, "share", sandbox_id, namespace, Access.OWN,
        lambda s: cp.share(s.name, s.namespace, body.kind, body.identity, body.level),
        request_details={"identity": body.identity, "level": body.level, "kind": body.kind},
    )
    return _sharing(sandbox)


@router.delete("/sandboxes/{sandbox_id}/share/{identity}", response_model=SharingOut,
               responses={403: {"model": ErrorOut}})
def unshare_sandbox(
    sandbox_id: SandboxId,
    identity: Annotated[str, Path(min_length=1, max_length=255)],
    request: Request,
    namespace: Namespace = None,
) -> SharingOut:
    """Revoke every share ``identity`` holds on the sandbox (owner or admin)."""
    cp = services(request).control_plane
    sandbox = _act(request, "unshare", sandbox_id, namespace, Access.OWN,
                   lambda s: cp.unshare(s.name, s.namespace, identity),
                   request_details={"identity": identity})
    return _sharing(sandbox)


@router.get("/user/me", response_model=UserOut, response_model_by_alias=True)
def current_user(request: Request) -> UserOut:
    """The caller's identity, as the Router sees it."""
    identity = _caller(request)
    return UserOut(sub=identity.subject, email=identity.email or None,
                   name=identity.name or None, groups=list(identity.groups),
                   isAdmin=identity.is_admin)

