"""Who may act, on which sandbox, and how every outcome of an action is recorded.

Every action leaves an audit event: success, ``denied`` (no valid key, a
sandbox the caller may not touch, an admin-only action) or ``error`` (the
control plane refused). A caller who may not see a sandbox gets 404, as if it
did not exist, and the attempt is still recorded.

::

    @router.post("/sandboxes/{sandbox_id}/stop")
    def stop(sandbox_id: SandboxId, request: Request,
             identity: Annotated[Identity, caller_of("stop")]) -> ...:
        return act(request, identity, "stop", sandbox_id, None, Access.OWNER, plane_stop)

:func:`caller_of` is a dependency: FastAPI solves it before it validates a
body, so a request without a valid key is refused (401) and recorded whatever
its body holds. Actions on no one sandbox (templates, analytics, admin) use
:func:`audited_caller` and :func:`recorded_call`.

**Sandbox-scoped API keys** are enforced here and only here, deny by default:
such a key reaches only its own sandbox, and only the actions of
:data:`SCOPED_ACTIONS` that its action groups cover (reading the sandbox
itself, ``get``, and ``/user/me`` need no group). Every other action, on any
route, whatever it is called (list, create, delete, share, bulk, templates,
records, admin, the keys themselves, and any route added later), is a 403,
recorded as ``denied``. :func:`caller`, :func:`caller_of` and
:func:`audited_caller` check the action and the sandbox the path names;
:func:`act` checks the sandbox it found (its namespace too). Anything that
reads the caller without them gets no identity for a scoped key at all
(:func:`~.context.authenticate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request

from agenttier_router.controlplane import ControlPlaneError, Sandbox, SandboxNotFound
from agenttier_router.service import Services

from .auth import Access, Identity, KeyScope, access
from .context import authenticate, services, source
from .errors import ApiError

__all__ = [
    "NO_KEY", "SCOPED_ACTIONS", "Namespace", "SandboxId", "act", "audited_caller", "caller",
    "caller_of", "find_sandbox", "recorded", "recorded_call", "scope_refusal",
]

T = TypeVar("T")
SandboxId = Annotated[str, Path(min_length=1, max_length=253)]
"""A sandbox's name, as a path parameter."""
Namespace = Annotated[str | None, Query(min_length=1, max_length=63,
                                        description="The sandbox's namespace, when its name "
                                        "is used in several")]
"""The ``?namespace=`` that picks one of several sandboxes with one name."""

SCOPED_ACTIONS: Mapping[str, str | None] = {
    "get": None, "user.me": None,
    "exec": "run-command",
    "files.list": "files:read", "files.read": "files:read", "files.archive": "files:read",
    "files.write": "files:write",
    "stop": "stop", "resume": "resume",
}
"""The actions a sandbox-scoped key may take, with the action group each needs (None: any
key may). ``user.me`` is the only one on no sandbox. (``ports``, ``agent:invoke`` and
``agent:configure`` are groups a key may hold; the routes they would open are not served.)"""


def scope_refusal(scope: KeyScope, action: str, name: str | None,
                  namespace: str | None) -> str | None:
    """Why a key with ``scope`` may not take ``action`` on sandbox ``namespace/name``; None if
    it may. ``name`` is None for an action on no one sandbox."""
    if action not in SCOPED_ACTIONS:
        return f"a key scoped to sandbox {scope.sandbox!r} may not {action}"
    group = SCOPED_ACTIONS[action]
    if group is not None and group not in scope.groups:
        return f"this key's action groups do not include {group}"
    if action == "user.me":
        return None
    if name != scope.sandbox or (namespace is not None and namespace != scope.namespace):
        return f"this key is scoped to sandbox {scope.sandbox!r}"
    return None


def _check_scope(svc: Services, request: Request, identity: Identity, action: str,
                 *, resource: str = "") -> None:
    """Refuse (403) and record a scoped key's ``action`` on the sandbox the path names."""
    if identity.scope is None:
        return
    name = request.path_params.get("sandbox_id")
    namespace = request.query_params.get("namespace")
    reason = scope_refusal(identity.scope, action, name, namespace)
    if reason is None:
        return
    svc.recording.audit(identity, action, sandbox_id=name or "", namespace=namespace or "",
                        resource=resource or "sandbox", outcome="denied", source=source(request),
                        details={"reason": reason, "keyId": identity.key_id,
                                 "method": request.method, "path": request.url.path})
    raise ApiError(403, reason)


def caller(request: Request, action: str = "read") -> Identity:
    """The caller of a read that records nothing; 401 without a valid key.

    ``action`` names the read for a sandbox-scoped key (``get``, ``user.me``),
    refused (403, recorded) unless :data:`SCOPED_ACTIONS` allows it.
    """
    svc = services(request)
    identity = authenticate(svc, request, scoped=True)
    if identity is None:
        raise ApiError(401, "a valid X-API-Key header is required")
    _check_scope(svc, request, identity, action)
    return identity


def find_sandbox(svc: Services, identity: Identity, name: str, namespace: str | None) -> Sandbox:
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
"""Why a request without a valid key was refused, as its audit event says."""


def caller_of(action: str) -> Any:
    """A dependency: the caller of ``action``; without a valid key, recorded and refused (401).

    FastAPI solves dependencies before it validates a body, and the body guard
    withholds a keyless caller's body, so such a request never gets a 400.
    """
    async def dependency(request: Request) -> Identity:
        svc = services(request)
        identity = authenticate(svc, request, scoped=True)
        if identity is None:
            svc.recording.audit(
                None, action, sandbox_id=request.path_params.get("sandbox_id", ""),
                namespace=request.query_params.get("namespace", ""), outcome="denied",
                details={"reason": NO_KEY, "path": request.url.path}, source=source(request),
            )
            raise ApiError(401, "a valid X-API-Key header is required")
        _check_scope(svc, request, identity, action)
        return identity

    return Depends(dependency)


def recorded(
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


def act(
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
        sandbox = find_sandbox(svc, identity, name, namespace)
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
    scope = identity.scope
    refusal = None if scope is None else \
        scope_refusal(scope, action, sandbox.name, sandbox.namespace)
    if scope is not None and refusal is not None:  # its name in another namespace; bulk items
        svc.recording.audit(identity, action, outcome="denied", **where,
                            details={**base, "reason": refusal, "keyId": identity.key_id})
        raise ApiError(403, refusal)
    if access(identity, sandbox) < need:
        svc.recording.audit(identity, action, outcome="denied", **where,
                            details={**base, "reason": f"{action} needs more than shared access"})
        raise ApiError(403, f"you may not {action} sandbox {name!r}")
    return recorded(svc, identity, action, where, base, lambda: do(sandbox), details)


def audited_caller(request: Request, action: str, resource: str, *, admin: bool = False,
                   details: Mapping[str, Any] | None = None) -> tuple[Services, Identity]:
    """The services and the caller of ``action``; a refused caller is recorded, then refused."""
    svc = services(request)
    identity = authenticate(svc, request, scoped=True)
    if identity is None:
        svc.recording.audit(None, action, resource=resource, outcome="denied",
                            details={**(details or {}), "reason": NO_KEY})
        raise ApiError(401, "a valid X-API-Key header is required")
    _check_scope(svc, request, identity, action, resource=resource)
    if admin and not identity.is_admin:
        svc.recording.audit(identity, action, resource=resource, outcome="denied",
                            details={**(details or {}), "reason": "admin_required"})
        raise ApiError(403, "admin_required")
    return svc, identity


def recorded_call(svc: Services, identity: Identity, action: str, resource: str,
                  do: Callable[[], T], *, details: Mapping[str, Any] | None = None) -> T:
    """Run ``do`` and record its outcome: success, ``denied`` for a 404, else ``error``."""
    try:
        result = do()
    except ApiError as error:
        svc.recording.audit(identity, action, resource=resource,
                            outcome="denied" if error.status in (401, 403, 404) else "error",
                            details={**(details or {}), "reason": error.message})
        raise
    except Exception as error:
        svc.recording.audit(identity, action, resource=resource, outcome="error",
                            details={**(details or {}), "error": str(error)[:512]})
        raise
    svc.recording.audit(identity, action, resource=resource, details=details)
    return result
