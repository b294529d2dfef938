"""Callers of actions on no one sandbox (templates, analytics), with every outcome recorded.

::

    svc, identity = audited_caller(request, "analytics.costs", "analytics", admin=True)
    ...                                       # on success:
    svc.recording.audit(identity, "analytics.costs", resource="analytics")

:func:`audited_caller` records the refusals itself: ``denied`` without a valid
key (401) or, for admin-only actions, for a caller who is not one (403).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request

from agenttier_router.service import Services

from .auth import Identity
from .context import authenticate, services
from .errors import ApiError

__all__ = ["audited_caller", "recorded_call"]

T = TypeVar("T")


def audited_caller(request: Request, action: str, resource: str, *, admin: bool = False,
                   details: Mapping[str, Any] | None = None) -> tuple[Services, Identity]:
    """The services and the caller of ``action``; a refused caller is recorded, then refused."""
    svc = services(request)
    identity = authenticate(svc, request)
    if identity is None:
        svc.recording.audit(None, action, resource=resource, outcome="denied",
                            details={**(details or {}), "reason": "no valid API key"})
        raise ApiError(401, "a valid X-API-Key header is required")
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
