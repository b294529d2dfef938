"""``/ui/activity``: the audit log, filtered and paged, with each sandbox's lifecycle.

The filter state is the URL's query (``actor``, ``action``, ``outcome``,
``sandbox``, ``namespace``, ``from``, ``to``, or a quick ``window``), so a link
reproduces the view; ``cursor`` is the page, and ``back`` the cursors of the
newer pages already seen (how **Newer** returns). Rows come from
:func:`agenttier_router.api.records.audit_events`, the JSON endpoint's function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from agenttier_router.api import records
from agenttier_router.api.context import services
from agenttier_router.api.errors import ApiError
from agenttier_router.storage import format_ts

from .render import page
from .signin import viewer

__all__ = ["PAGE_SIZE", "WINDOWS", "retention_note", "router", "to_rfc3339"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
"""Rows per page."""

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
"""The quick windows, ending now."""

FILTERS = ("actor", "action", "outcome", "sandbox", "namespace", "from", "to")
_FIRST = "-"  # in ``back``: the first page, which has no cursor


def to_rfc3339(value: str) -> str:
    """A From/To field's value as RFC3339: ``2026-11-30T10:00`` (a picker's, UTC) gains ``:00Z``."""
    value = value.strip()
    if len(value) == 16 and value[10] == "T":  # datetime-local: minutes, no zone
        return value + ":00Z"
    if len(value) == 10:  # a date alone
        return value + "T00:00:00Z"
    return value


def _filters(query: Mapping[str, str]) -> dict[str, str]:
    """The non-empty filters of a page's query string."""
    return {name: query[name].strip() for name in FILTERS if query.get(name, "").strip()}


def _window(filters: dict[str, str], window: str | None) -> tuple[str | None, str | None]:
    """The since/until the view asks for: a quick window ending now, or From and To."""
    if window in WINDOWS:
        return format_ts(datetime.now(UTC) - WINDOWS[window]), None
    since, until = filters.get("from"), filters.get("to")
    return (to_rfc3339(since) if since else None, to_rfc3339(until) if until else None)


def _link(base: dict[str, str], **changes: str | None) -> str:
    merged = {**base, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v})


@router.get("/ui/activity")
def activity(request: Request) -> Response:
    """The activity page."""
    seen = viewer(request, admin=True)
    if isinstance(seen, Response):
        return seen
    query = request.query_params
    filters = _filters(query)
    window = query.get("window") if query.get("window") in WINDOWS else None
    cursor = query.get("cursor") or None
    back = [c for c in query.get("back", "").split() if c][:200]
    since, until = _window(filters, window)
    state = {**filters, **({"window": window} if window else {})}
    error, result = "", None
    outcome = filters.get("outcome")
    if outcome not in (None, "success", "denied", "error"):
        error = "Outcome must be success, denied or error."
    else:
        try:
            result = records.audit_events(
                request, actor=filters.get("actor"), action=filters.get("action"),
                outcome=outcome,  # type: ignore[arg-type]  # one of the three, checked above
                sandbox=filters.get("sandbox"), namespace=filters.get("namespace"),
                since=since, until=until, limit=PAGE_SIZE, cursor=cursor,
            )
        except ApiError as refused:
            error = refused.message
    events = result.events if result is not None else []
    older = newer = None
    if result is not None and result.next_cursor:
        older = _link(state, cursor=result.next_cursor, back=" ".join([*back, cursor or _FIRST]))
    if back:
        previous = back[-1]
        newer = _link(state, cursor=None if previous == _FIRST else previous,
                      back=" ".join(back[:-1]) or None)
    export = {k: v for k, v in {**{n: filters.get(n) for n in
                                   ("actor", "action", "outcome", "sandbox", "namespace")},
                                "since": since, "until": until}.items() if v}
    rows = [{"event": e, "details": json.dumps(e.details, indent=2, sort_keys=True,
                                               ensure_ascii=False),
             "timeline": "/ui/activity/timeline?" + urlencode(
                 {"sandbox": e.sandbox_id, "namespace": e.namespace})}
            for e in events]
    return page(
        request, "activity.html", seen, status=200 if not error else 400, rows=rows,
        filters=filters, window=window, windows=list(WINDOWS), error=error, older=older,
        newer=newer, at_end=result is not None and not result.next_cursor,
        windows_links={w: _link({k: v for k, v in filters.items()
                                 if k not in ("from", "to")}, window=w) for w in WINDOWS},
        export_csv="/api/v1/records/audit/export?" + urlencode({**export, "format": "csv"}),
        export_jsonl="/api/v1/records/audit/export?" + urlencode({**export, "format": "jsonl"}),
        storage=records_storage(request), retention=retention_note(request), oldest="",
    )


def records_storage(request: Request) -> str:
    """A line about where history comes from, for the banner."""
    built = request.app.state.services
    if not built.storage.enabled:
        return ("Storage is off: this shows only the control plane's recent transitions, "
                "and nothing is kept across restarts.")
    if built.storage.open_error:
        return f"Storage cannot be opened ({built.storage.open_error}); records are spooled."
    return f"History is read from {built.storage.url}."


def retention_note(request: Request) -> str:
    """The audit log's retention setting, and what retention has removed, from its last purge.

    A purge records an audit event (actor ``system``, action ``purge``, resource
    the table, its cut-off in the details), read here through the same reader.
    """
    kept = services(request).config.retention.audit
    setting = ("Retention setting: audit records are kept forever." if kept is None else
               f"Retention setting: audit records are kept for {_duration(kept)}.")
    purged = _last_purge(request)
    return f"{setting} {purged}".strip()


def _duration(kept: timedelta) -> str:
    days, seconds = kept.days, kept.seconds
    if seconds == 0:
        return f"{days} day{'s' * (days != 1)}"
    return f"{kept.total_seconds() / 3600:g} hours"


def _last_purge(request: Request) -> str:
    try:
        found = records.audit_events(request, actor="system", action="purge",
                                     resource="audit_events", limit=1)
    except ApiError:
        return ""
    if not found.events:
        return "No retention purge of the audit log is recorded: every record written is kept."
    last = found.events[0]
    cutoff = last.details.get("cutoff")
    rows = last.details.get("rows")
    if not isinstance(cutoff, str):
        return ""
    return (f"Retention: audit records before {cutoff[:19].replace('T', ' ')} UTC were purged "
            f"(the last purge, at {last.timestamp[:19].replace('T', ' ')} UTC, removed "
            f"{rows if isinstance(rows, int) else 'some'} rows); the oldest record kept is "
            "no older than that.")


@router.get("/ui/activity/timeline")
def timeline(request: Request, sandbox: str = "", namespace: str = "") -> Response:
    """A sandbox's lifecycle transitions, oldest first: a fragment a row expands into."""
    seen = viewer(request, admin=True)
    if isinstance(seen, Response):
        return seen
    if not sandbox:
        return page(request, "timeline.html", seen, events=[], error="")
    try:
        result = records.sandbox_events(request, sandbox=sandbox[:255],
                                        namespace=namespace[:255] or None, limit=200)
    except ApiError as refused:
        return page(request, "timeline.html", seen, events=[], error=refused.message)
    return page(request, "timeline.html", seen, events=list(reversed(result.events)), error="")
