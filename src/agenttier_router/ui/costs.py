"""``/ui/costs``: what sandboxes cost over a window, beside the window before it.

Totals and the table come from :func:`agenttier_router.api.records.cost_records`
(``groupBy``), a sandbox's snapshots and transitions from the same module's
readers: the JSON endpoints' functions. A group drills down to its sandboxes,
a sandbox to its snapshots and transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from agenttier_router.api import records
from agenttier_router.api.context import services
from agenttier_router.api.errors import ApiError
from agenttier_router.api.models import CostSnapshotsOut, CostTotalsOut
from agenttier_router.storage import format_ts, parse_ts

from .activity import WINDOWS, to_rfc3339
from .render import page
from .signin import viewer

__all__ = ["GROUPS", "Window", "router"]

router = APIRouter(include_in_schema=False)

GROUPS = ("namespace", "sandbox")
"""What the table can be grouped by."""


@dataclass(frozen=True, slots=True)
class Window:
    """The time window a costs page shows, and the one of the same length before it."""

    since: datetime
    until: datetime

    @property
    def previous(self) -> Window:
        """The window of the same length that ends where this one starts."""
        return Window(self.since - (self.until - self.since), self.since)


def _window(window: str, start: str, end: str, now: datetime) -> Window:
    if window == "custom" and start:
        until = parse_ts(to_rfc3339(end)) if end else now
        since = parse_ts(to_rfc3339(start))
        if since >= until:
            raise ValueError("From must be before To")
        return Window(since, until)
    return Window(now - WINDOWS.get(window, WINDOWS["7d"]), now)


def _sum(totals: CostTotalsOut) -> dict[str, float]:
    return {"usd": sum(t.estimated_usd for t in totals.totals),
            "cpu": sum(t.cpu_hours for t in totals.totals),
            "mem": sum(t.mem_gb_hours for t in totals.totals)}


@router.get("/ui/costs")
def costs_page(request: Request) -> Response:
    """The costs page."""
    seen = viewer(request, admin=True)
    if isinstance(seen, Response):
        return seen
    q = request.query_params
    window_name = q.get("window", "7d")
    if window_name not in (*WINDOWS, "custom"):
        window_name = "7d"
    group = q.get("groupBy", "namespace")
    group = group if group in GROUPS else "namespace"
    namespace, sandbox = q.get("namespace") or None, q.get("sandbox") or None
    state = {k: v for k, v in {"window": window_name, "from": q.get("from", ""),
                               "to": q.get("to", ""), "groupBy": group}.items() if v}
    try:
        window = _window(window_name, q.get("from", ""), q.get("to", ""), datetime.now(UTC))
    except ValueError as error:
        return page(request, "costs.html", seen, status=400, error=str(error), **_empty(state))
    since, until = format_ts(window.since), format_ts(window.until)
    prev = window.previous
    try:
        if sandbox:
            group = "sandbox"
        current = records.cost_records(request, group_by=group, namespace=namespace,  # type: ignore[arg-type]
                                       sandbox=sandbox, since=since, until=until)
        before = records.cost_records(request, group_by=group, namespace=namespace,  # type: ignore[arg-type]
                                      sandbox=sandbox, since=format_ts(prev.since),
                                      until=format_ts(prev.until))
        assert isinstance(current, CostTotalsOut) and isinstance(before, CostTotalsOut)
        snapshots: CostSnapshotsOut | None = None
        transitions = None
        if sandbox:
            found = records.cost_records(request, sandbox=sandbox, namespace=namespace,
                                         since=since, until=until, limit=500)
            assert isinstance(found, CostSnapshotsOut)
            snapshots = found
            transitions = records.sandbox_events(request, sandbox=sandbox,
                                                 namespace=namespace, limit=500).events
    except ApiError as refused:
        return page(request, "costs.html", seen, status=400, error=refused.message,
                    **_empty(state))
    now_sum, prev_sum = _sum(current), _sum(before)
    rows = []
    for t in current.totals:
        if group == "namespace":
            drill = {**state, "groupBy": "sandbox", "namespace": t.key}
        else:
            drill = {**state, "sandbox": t.key, **({"namespace": namespace} if namespace else {})}
        rows.append({"total": t, "share": t.estimated_usd / now_sum["usd"] if now_sum["usd"]
                     else 0.0, "drill": "?" + urlencode(drill)})
    prices = services(request).config.prices
    return page(
        request, "costs.html", seen, error="", state=state, window_name=window_name,
        windows=list(WINDOWS), group=group, groups=GROUPS, namespace=namespace,
        sandbox=sandbox, since=since, until=until, now=now_sum, prev=prev_sum,
        prev_since=format_ts(prev.since), rows=rows, prices=prices, snapshots=snapshots,
        transitions=transitions, chart=None,
        back="?" + urlencode(state),
        window_links={w: "?" + urlencode({"window": w, "groupBy": group,
                                          **({"namespace": namespace} if namespace else {})})
                      for w in WINDOWS},
    )


def _empty(state: dict[str, str]) -> dict[str, object]:
    zero = {"usd": 0.0, "cpu": 0.0, "mem": 0.0}
    return {"state": state, "window_name": state.get("window", "7d"), "windows": list(WINDOWS),
            "group": state.get("groupBy", "namespace"), "groups": GROUPS, "namespace": None,
            "sandbox": None, "since": "", "until": "", "now": zero, "prev": zero,
            "prev_since": "", "rows": [], "prices": None, "snapshots": None,
            "transitions": None, "chart": None, "back": "?", "window_links": {}}

