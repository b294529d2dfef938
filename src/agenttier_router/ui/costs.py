"""``/ui/costs``: what sandboxes cost over a window, beside the window before it.

The window's chart, totals and table come from
:func:`agenttier_router.api.records.cost_series_endpoint` (``/records/costs/series``);
the previous window's totals, a sandbox's snapshots and its transitions from
the same module's other readers: the JSON endpoints' functions, never SQL. A
group drills down to its sandboxes (``groupBy=sandbox`` and the group as a
filter), a sandbox to its snapshots and transitions. The state is the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from agenttier_router.api import records
from agenttier_router.api.context import services
from agenttier_router.api.errors import ApiError
from agenttier_router.api.models import CostSnapshotsOut, CostTotalsOut
from agenttier_router.storage import format_ts, parse_ts

from .activity import WINDOWS, to_rfc3339
from .chart import stacked_bars
from .render import page
from .signin import viewer

__all__ = ["GROUPS", "Window", "buckets", "router"]

router = APIRouter(include_in_schema=False)

GROUPS = ("namespace", "owner", "template", "sandbox")
"""What the chart and table can be grouped by (the **Group by** control)."""
FILTERS = ("namespace", "owner", "template", "sandbox")
"""Drill-down filters a costs URL may carry."""
Bucket = Literal["hour", "day"]
_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True, slots=True)
class Window:
    """The time window a costs page shows, and the one of the same length before it."""

    since: datetime
    until: datetime

    @property
    def previous(self) -> Window:
        """The window of the same length that ends where this one starts."""
        return Window(self.since - (self.until - self.since), self.since)


def _window(name: str, start: str, end: str, now: datetime) -> Window:
    if name == "custom":
        if not start:
            raise ValueError("a custom window needs From")
        until = parse_ts(to_rfc3339(end)) if end else now
        since = parse_ts(to_rfc3339(start))
        if since >= until:
            raise ValueError("From must be before To")
        return Window(since, until)
    return Window(now - WINDOWS[name], now)


def buckets(window: Window, bucket: Bucket) -> list[str]:
    """The UTC bucket starts that cover ``window``, as the series formats them."""
    start = window.since.astimezone(UTC)
    start = (start.replace(minute=0, second=0, microsecond=0) if bucket == "hour"
             else start.replace(hour=0, minute=0, second=0, microsecond=0))
    out: list[str] = []
    while start < window.until and len(out) < 2000:
        out.append(format_ts(start))
        start += _STEP[bucket]
    return out


def _sums(totals: CostTotalsOut) -> dict[str, float]:
    return {"usd": sum(t.estimated_usd for t in totals.totals),
            "cpu": sum(t.cpu_hours for t in totals.totals),
            "mem": sum(t.mem_gb_hours for t in totals.totals)}


def _drill(state: Mapping[str, str], group: str, key: str) -> str:
    """The link from a table row: a group's sandboxes, or a sandbox's own page."""
    if group == "sandbox":
        namespace, _, name = key.partition("/")
        return "?" + urlencode({**state, "groupBy": "sandbox", "namespace": namespace,
                                "sandbox": name})
    return "?" + urlencode({**state, "groupBy": "sandbox", group: key})


def _read(request: Request, group: str, bucket: Bucket, window: Window,
          filters: dict[str, str]) -> dict[str, Any]:
    """Everything the page shows, through the JSON endpoints' functions."""
    since, until = format_ts(window.since), format_ts(window.until)
    chosen: Any = group  # one of GROUPS, checked by the caller
    series = records.cost_series_endpoint(
        request, bucket=bucket, group_by=chosen, since=since, until=until,
        sandbox=filters.get("sandbox"), namespace=filters.get("namespace"),
        owner=filters.get("owner"), template=filters.get("template"))
    before = records.cost_records(
        request, group_by=chosen, since=format_ts(window.previous.since), until=since,
        sandbox=filters.get("sandbox"), namespace=filters.get("namespace"),
        owner=filters.get("owner"), template=filters.get("template"))
    assert isinstance(before, CostTotalsOut)
    found: dict[str, Any] = {"series": series, "before": before, "snapshots": None,
                             "transitions": None}
    if "sandbox" in filters:
        snapshots = records.cost_records(
            request, sandbox=filters["sandbox"], namespace=filters.get("namespace"),
            since=since, until=until, limit=500)
        assert isinstance(snapshots, CostSnapshotsOut)
        found["snapshots"] = snapshots.snapshots
        found["transitions"] = records.sandbox_events(
            request, sandbox=filters["sandbox"], namespace=filters.get("namespace"),
            limit=500).events
    return found


@router.get("/ui/costs")
def costs_page(request: Request) -> Response:
    """The costs page."""
    seen = viewer(request, admin=True)
    if isinstance(seen, Response):
        return seen
    q = request.query_params
    name = q.get("window", "7d")
    name = name if name in (*WINDOWS, "custom") else "7d"
    group = q.get("groupBy", "namespace")
    group = group if group in GROUPS else "namespace"
    wanted = q.get("bucket", "")
    bucket: Bucket = "hour" if wanted == "hour" or (not wanted and name == "24h") else "day"
    filters = {k: q[k].strip()[:255] for k in FILTERS if q.get(k, "").strip()}
    state = {k: v for k, v in {"window": name, "from": q.get("from", ""),
                               "to": q.get("to", ""), "groupBy": group,
                               "bucket": wanted if wanted in _STEP else ""}.items() if v}
    context: dict[str, Any] = {
        "state": state, "window_name": name, "windows": list(WINDOWS), "group": group,
        "groups": GROUPS, "bucket": bucket, "filters": filters, "error": "", "window": None,
        "prices": services(request).config.prices, "rows": [], "chart": None, "legend": [],
        "snapshots": None, "transitions": None, "now": None, "prev": None, "export_csv": "",
        "all_costs": "?" + urlencode({k: v for k, v in state.items() if k != "groupBy"}),
        "window_links": {w: "?" + urlencode({**filters, "window": w, "groupBy": group})
                         for w in WINDOWS},
    }
    try:
        window = _window(name, q.get("from", ""), q.get("to", ""), datetime.now(UTC))
        found = _read(request, group, bucket, window, filters)
    except ValueError as error:
        return page(request, "costs.html", seen, status=400, **{**context, "error": str(error)})
    except ApiError as refused:
        return page(request, "costs.html", seen, status=400,
                    **{**context, "error": refused.message})
    series = found["series"]
    now = {"usd": series.total_usd, "cpu": sum(t.cpu_hours for t in series.totals),
           "mem": sum(t.mem_gb_hours for t in series.totals)}
    keep = {k: v for k, v in state.items() if k in ("window", "from", "to", "bucket")}
    rows = [{"total": t, "share": t.estimated_usd / now["usd"] if now["usd"] else 0.0,
             "drill": _drill(keep, group, t.key)} for t in series.totals]
    values = {line.key: {p.bucket: p.estimated_usd for p in line.points}
              for line in series.series}
    chart, legend = stacked_bars(buckets(window, bucket), values, hourly=bucket == "hour")
    export = {**filters, "since": format_ts(window.since), "until": format_ts(window.until),
              "format": "csv"}
    return page(request, "costs.html", seen, **{
        **context, "window": {"since": format_ts(window.since),
                              "until": format_ts(window.until),
                              "prev_since": format_ts(window.previous.since)},
        "now": now, "prev": _sums(found["before"]), "rows": rows,
        "chart": chart if series.series else None, "legend": legend,
        "snapshots": found["snapshots"], "transitions": found["transitions"],
        "export_csv": "/api/v1/records/costs/export?" + urlencode(export),
    })
