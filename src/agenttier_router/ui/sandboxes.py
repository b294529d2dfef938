"""``/ui/sandboxes``: the sandboxes the caller may see, each linked to its activity and costs.

Sandboxes come from :func:`agenttier_router.api.sandboxes.list_sandboxes`, the
JSON endpoint's function; an admin also sees each one's cost so far, from
:func:`agenttier_router.api.records.cost_records`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from agenttier_router.api import records
from agenttier_router.api import sandboxes as sandbox_api
from agenttier_router.api.errors import ApiError
from agenttier_router.api.models import CostTotalsOut

from .render import page
from .signin import viewer

__all__ = ["age", "router"]

router = APIRouter(include_in_schema=False)


def age(created_at: str, now: datetime) -> str:
    """How long ago ``created_at`` was, in the largest whole unit: ``3d``, ``5h``, ``12m``."""
    try:
        seconds = (now - datetime.fromisoformat(created_at.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


@router.get("/ui/sandboxes")
def sandboxes_page(request: Request) -> Response:
    """The sandboxes page."""
    seen = viewer(request, admin=False)
    if isinstance(seen, Response):
        return seen
    listed = sandbox_api.list_sandboxes(request).sandboxes
    costs: dict[str, float] | None = None
    if seen.is_admin:
        try:
            totals = records.cost_records(request, group_by="sandbox")
        except ApiError:
            totals = None
        if isinstance(totals, CostTotalsOut):
            costs = {t.key: t.estimated_usd for t in totals.totals}
    now = datetime.now(UTC)
    rows = [{
        "sandbox": s, "age": age(s.created_at, now),
        "cost": None if costs is None else costs.get(f"{s.namespace}/{s.sandbox_id}", 0.0),
        "activity": "/ui/activity?" + urlencode({"sandbox": s.sandbox_id,
                                                 "namespace": s.namespace}),
        "costs": "/ui/costs?" + urlencode({"window": "30d", "groupBy": "sandbox",
                                            "namespace": s.namespace,
                                            "sandbox": s.sandbox_id}),
    } for s in listed]
    return page(request, "sandboxes.html", seen, rows=rows, show_cost=costs is not None)
