"""``/api/v1/sandboxes`` and ``/api/v1/user/me``: the endpoints the SDK drives.

Every svc-changing action and every exec leaves an audit event: success,
``denied`` (no valid key, or a sandbox the caller may not touch) or ``error``
(the control plane refused). A caller who may not see a sandbox gets 404,
as if it did not exist, and the attempt is still recorded.

The caller is a dependency (:func:`_caller_of`): FastAPI solves it before it
validates the body, so a request without a valid key is refused (401) and
recorded whatever its body holds. Handlers are plain functions that FastAPI
runs in its thread pool, except exec: it runs on its own bounded pool, in a
slot of the caller's (:mod:`.execs`), so long commands never take the threads
other requests need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from agenttier_router.controlplane import (
    ControlPlane,
    ControlPlaneError,
    Sandbox,
    SandboxConflict,
    SandboxNotFound,
)
from agenttier_router.service import Services
from agenttier_router.service.recording import command_details
from agenttier_router.storage import format_ts

from .auth import Access, Identity, access
from .context import authenticate, services, source
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
    ShareRequest,
    SharingOut,
    UserOut,
    check_identity,
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


NO_KEY = "no valid API key"


def _caller_of(action: str) -> Any:
    """A dependency: the caller of ``action``; without a valid key, recorded and refused (401).

    FastAPI solves dependencies before it validates a body, and the body guard
    withholds a keyless caller's body, so such a request never gets a 422.
    """
    async def caller(request: Request) -> Identity:
        svc = services(request)
        identity = authenticate(svc, request)
        if identity is None:
            svc.recording.audit(
                None, action, sandbox_id=request.path_params.get("sandbox_id", ""),
                namespace=request.query_params.get("namespace", ""), outcome="denied",
                details={"reason": NO_KEY, "path": request.url.path}, source=source(request),
            )
            raise ApiError(401, "a valid X-API-Key header is required")
        return identity

    return Depends(caller)


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
    identity: Identity,
    action: str,
    name: str,
    namespace: str | None,
    need: Access,
    do: Callable[[Sandbox], T],
    details: Callable[[T], dict[str, Any]] | None = None,
    request_details: dict[str, Any] | None = None,
) -> T:
    """Authorise ``identity``, run ``do`` on the sandbox, and record the outcome."""
    svc = services(request)
    base = dict(request_details or {})
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
def create_sandbox(
    body: CreateSandbox, request: Request,
    identity: Annotated[Identity, _caller_of("create")],
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

    return sandbox_out(_recorded(svc, identity, "create", where, base, create))


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
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, _caller_of("delete")], namespace: Namespace = None,
) -> Response:
    """Delete a sandbox and its workspace (owner or admin)."""
    cp = services(request).control_plane
    _act(request, identity, "delete", sandbox_id, namespace, Access.OWN,
         lambda s: cp.delete(s.name, s.namespace))
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/stop", response_model=SandboxOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def stop_sandbox(
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, _caller_of("stop")], namespace: Namespace = None,
) -> SandboxOut:
    """Stop a Running sandbox (collaborator, owner or admin)."""
    cp = services(request).control_plane
    return sandbox_out(_act(request, identity, "stop", sandbox_id, namespace, Access.OPERATE,
                            lambda s: cp.stop(s.name, s.namespace)))


@router.post("/sandboxes/{sandbox_id}/resume", response_model=SandboxOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
def resume_sandbox(
    sandbox_id: SandboxId, request: Request,
    identity: Annotated[Identity, _caller_of("resume")], namespace: Namespace = None,
) -> SandboxOut:
    """Resume a Stopped sandbox (collaborator, owner or admin)."""
    cp = services(request).control_plane
    return sandbox_out(_act(request, identity, "resume", sandbox_id, namespace, Access.OPERATE,
                            lambda s: cp.resume(s.name, s.namespace)))


@router.post("/sandboxes/{sandbox_id}/exec", response_model=ExecOut,
             responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut},
                        429: {"model": ErrorOut}})
async def exec_command(
    sandbox_id: SandboxId, body: ExecRequest, request: Request,
    identity: Annotated[Identity, _caller_of("exec")], namespace: Namespace = None,
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
    result = await slots.run(identity.subject, lambda: _act(
        request, identity, "exec", sandbox_id, namespace, Access.OPERATE,
        lambda s: cp.exec(s.name, s.namespace, body.command, float(body.timeout)),
        details=lambda r: {"exitCode": r.exit_code, "timedOut": r.timed_out},
        request_details=base,
    ))
    return ExecOut(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)


@router.get("/sandboxes/{sandbox_id}/share", response_model=SharingOut)
def get_sharing(sandbox_id: SandboxId, request: Request, namespace: Namespace = None) -> SharingOut:
    """Who the sandbox is shared with."""
    return _sharing(_find(services(request), _caller(request), sandbox_id, namespace))


@router.post("/sandboxes/{sandbox_id}/share", response_model=SharingOut,
             responses={403: {"model": ErrorOut}})
def share_sandbox(
    sandbox_id: SandboxId, body: ShareRequest, request: Request,
    identity: Annotated[Identity, _caller_of("share")], namespace: Namespace = None,
) -> SharingOut:
    """Grant a user or group viewer or collaborator access (owner or admin)."""
    cp = services(request).control_plane
    sandbox = _act(
        request, identity, "share", sandbox_id, namespace, Access.OWN,
        lambda s: cp.share(s.name, s.namespace, body.kind, body.identity, body.level),
        request_details={"identity": body.identity, "level": body.level, "kind": body.kind},
    )
    return _sharing(sandbox)


def _unshare(plane: ControlPlane, sandbox: Sandbox, identity: str,
             kind: Literal["user", "group"] | None) -> Sandbox:
    """Revoke ``identity``'s shares, or with ``kind`` only that kind's.

    The control plane revokes both kinds at once; a grant of the other kind is
    given back right after (a share made in between by another admin may be lost).
    """
    other: Literal["user", "group"] = "group" if kind == "user" else "user"
    kept = (sandbox.shares.groups if kind == "user" else sandbox.shares.users).get(identity)
    revoked = plane.unshare(sandbox.name, sandbox.namespace, identity)
    if kind is None or kept is None:
        return revoked
    return plane.share(sandbox.name, sandbox.namespace, other, identity, kept)


def _revoke(request: Request, caller: Identity, sandbox_id: str, identity: str,
            kind: Literal["user", "group"] | None, namespace: str | None) -> SharingOut:
    try:
        check_identity(identity)
    except ValueError as error:
        raise ApiError(422, f"invalid request: identity: {error}") from None
    cp = services(request).control_plane
    details: dict[str, Any] = {"identity": identity} | ({"kind": kind} if kind else {})
    sandbox = _act(request, caller, "unshare", sandbox_id, namespace, Access.OWN,
                   lambda s: _unshare(cp, s, identity, kind), request_details=details)
    return _sharing(sandbox)


Kind = Annotated[Literal["user", "group"] | None,
                 Query(description="Revoke only a user's or only a group's share")]


@router.delete("/sandboxes/{sandbox_id}/share", response_model=SharingOut,
               responses={403: {"model": ErrorOut}})
def unshare_sandbox_by_query(
    sandbox_id: SandboxId,
    identity: Annotated[str, Query(min_length=1, max_length=255)],
    request: Request,
    caller: Annotated[Identity, _caller_of("unshare")],
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
    caller: Annotated[Identity, _caller_of("unshare")],
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
    identity = _caller(request)
    return UserOut(sub=identity.subject, email=identity.email or None,
                   name=identity.name or None, groups=list(identity.groups),
                   isAdmin=identity.is_admin)

