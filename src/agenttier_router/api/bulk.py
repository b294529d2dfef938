"""``POST /sandboxes/bulk`` and ``POST /sandboxes/bulk-action``: many sandboxes in one call.

Each item is its own action, with its own audit event and outcome, exactly as
if it had come alone (``create``, ``stop``, ``resume``, ``delete``): one bad
item never stops the others, and the reply reports every item in order, in
the shapes the SDK's ``BulkCreateResultItem`` and ``BulkActionResultItem``
parse. A caller without a valid key is refused once, for the whole batch
(401, recorded as ``bulk-create`` or ``bulk-action``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from agenttier_router.controlplane import ControlPlaneError

from .acting import act, caller_of, recorded
from .auth import Access, Identity
from .context import services
from .errors import ApiError
from .models import ErrorOut
from .models_sdk import (
    BulkActionOut,
    BulkActionRequest,
    BulkActionResult,
    BulkCreateOut,
    BulkCreateRequest,
    BulkCreateResult,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut},
})

_NEEDS = {"stop": Access.OPERATE, "resume": Access.OPERATE, "delete": Access.OWN}


@router.post("/sandboxes/bulk", response_model=BulkCreateOut)
def create_bulk(body: BulkCreateRequest, request: Request,
                identity: Annotated[Identity, caller_of("bulk-create")]) -> BulkCreateOut:
    """Create each sandbox of ``items`` independently; report each one's outcome."""
    svc = services(request)
    results = []
    for index, item in enumerate(body.items):
        base: dict[str, Any] = {"template": item.template_ref.name, "bulkIndex": index}
        try:
            sandbox = recorded(
                svc, identity, "create", {"sandbox_id": item.name, "namespace": item.namespace},
                base, lambda item=item: svc.control_plane.create(  # type: ignore[misc]
                    item.name, item.namespace, item.template_ref.name, identity.subject,
                    identity.email))
        except ControlPlaneError as error:
            results.append(BulkCreateResult(index=index, status="error", error=str(error)))
            continue
        results.append(BulkCreateResult(index=index, status="created", sandbox_id=sandbox.name))
    return BulkCreateOut(results=results)


@router.post("/sandboxes/bulk-action", response_model=BulkActionOut)
def bulk_action(body: BulkActionRequest, request: Request,
                identity: Annotated[Identity, caller_of("bulk-action")]) -> BulkActionOut:
    """Stop, resume or delete each sandbox of ``ids``, with the single routes' rules."""
    svc = services(request)
    plane = svc.control_plane
    do = {"stop": lambda s: plane.stop(s.name, s.namespace),
          "resume": lambda s: plane.resume(s.name, s.namespace),
          "delete": lambda s: plane.delete(s.name, s.namespace)}[body.action]
    results = []
    for sandbox_id in body.ids:
        try:
            act(request, identity, body.action, sandbox_id, None, _NEEDS[body.action], do,
                 request_details={"bulk": True})
        except (ApiError, ControlPlaneError) as error:
            message = error.message if isinstance(error, ApiError) else str(error)
            results.append(BulkActionResult(id=sandbox_id, status="error", error=message))
            continue
        results.append(BulkActionResult(id=sandbox_id, status="ok"))
    return BulkActionOut(results=results)
