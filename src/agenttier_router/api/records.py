"""Reading history back: ``/audit/events`` and ``/records/*`` (admins only).

``/analytics/costs`` (in :mod:`.analytics`) adds the stored window totals to the SDK's shape.

``/audit/events`` answers in the SDK's ``AuditEvent`` shape, from the store,
newest first. A read sees every record enqueued before it began: it first
waits (up to a second) for the recorder to write what it holds. With storage
off it serves the control plane's recent transitions, as the Go Router
serves Kubernetes Events.

``/records/{audit,sandbox-events,costs}/export`` streams every matching row,
newest first, as CSV or JSON lines, reading keyset pages of 1,000 rows, so
memory stays flat however many rows match; ``/records/costs/series`` gives
costs per UTC hour or day from the rollups.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from agenttier_router.controlplane import EventHistory, Transition
from agenttier_router.service import Services
from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    CostFilter,
    CostSnapshot,
    GroupBy,
    NoopBackend,
    Page,
    SandboxEvent,
    SandboxEventFilter,
    SQLBackend,
    format_ts,
)
from agenttier_router.storage.filters import MAX_LIMIT
from agenttier_router.storage.rollups import series as cost_series

from .auth import Identity
from .context import authenticate, services, source
from .errors import ApiError
from .models import (
    STORAGE_OFF,
    AuditEventOut,
    AuditEventsOut,
    CostSeriesOut,
    CostSeriesPointOut,
    CostSeriesResponse,
    CostSnapshotOut,
    CostSnapshotsOut,
    CostTotalOut,
    CostTotalsOut,
    ErrorOut,
    SandboxEventOut,
    SandboxEventsOut,
)
from .queries import build_filter, caught_up, days_before, moment, storage_notice

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut},
    503: {"model": ErrorOut},
})

Text = Annotated[str | None, Query(min_length=1, max_length=255)]
Moment = Annotated[str | None, Query(
    max_length=64, description="RFC3339 with a zone, or a duration before now: 30m, 24h, 7d, 2w")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=512)]


def _admin(request: Request) -> tuple[Services, Identity]:
    state = services(request)
    identity = authenticate(state, request, scoped=True)  # a scoped key: 403, as any non-admin
    if identity is None or not identity.is_admin:
        # A refused read of the history is itself history (issue 9, item 18).
        reason = "no valid API key" if identity is None else "reading history is for admins"
        state.recording.audit(identity, "read", resource="history", outcome="denied",
                              details={"reason": reason, "path": request.url.path},
                              source=source(request))
        if identity is None:
            raise ApiError(401, "a valid X-API-Key header is required")
        raise ApiError(403, reason)
    return state, identity


def _details(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _audit_fields(event: AuditEvent) -> dict[str, Any]:
    """An audit event in the API's field names: the one mapping the listing and export share."""
    details = _details(event.details)
    email = details.get("email")
    return {
        "timestamp": format_ts(event.time), "eventType": event.action,
        "sandboxId": event.sandbox_id, "sandboxName": event.sandbox_id,
        "namespace": event.namespace, "userEmail": email if isinstance(email, str) else "",
        "details": details, "actor": event.actor, "resource": event.resource,
        "outcome": event.outcome, "eventId": event.event_id,
    }


def _sandbox_event_fields(e: SandboxEvent) -> dict[str, Any]:
    """A lifecycle transition in the API's field names."""
    return {"timestamp": format_ts(e.time), "sandboxId": e.sandbox_id,
            "sandboxName": e.sandbox_name, "namespace": e.namespace, "phase": e.phase,
            "reason": e.reason, "message": e.message, "eventId": e.event_id}


def _cost_fields(s: CostSnapshot) -> dict[str, Any]:
    """A cost snapshot in the API's field names."""
    return {"timestamp": format_ts(s.time), "sandboxId": s.sandbox_id,
            "namespace": s.namespace, "owner": s.owner, "template": s.template,
            "cpuHours": s.cpu_hours, "memGbHours": s.mem_gb_hours,
            "estimatedUsd": s.estimated_usd, "eventId": s.event_id}


def _audit_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(_audit_fields(event))


def _sandbox_event_out(e: SandboxEvent) -> SandboxEventOut:
    return SandboxEventOut.model_validate(_sandbox_event_fields(e))


def _cost_out(s: CostSnapshot) -> CostSnapshotOut:
    return CostSnapshotOut.model_validate(_cost_fields(s))


def _matches(t: Transition, query: AuditFilter) -> bool:
    """Whether a transition, shown as an audit event, passes ``query``'s filters."""
    shown = ((query.actor, t.sandbox.owner), (query.sandbox_id, t.sandbox.name),
             (query.action, t.reason), (query.namespace, t.sandbox.namespace),
             (query.outcome, "success"), (query.resource, "sandbox"))
    if any(wanted is not None and wanted != value for wanted, value in shown):
        return False
    return ((query.since is None or t.time >= query.since)
            and (query.until is None or t.time < query.until))


_CLUSTER_EVENTS = 10_000  # at most this many of the cluster's Events are looked through


def _recent(state: Services, query: AuditFilter) -> AuditEventsOut:
    """Storage off: the platform's own events (a cluster's Events), or else the control
    plane's recent transitions, that match ``query``, newest first."""
    events = []
    plane = state.control_plane
    seen: Iterable[Transition]
    if isinstance(plane, EventHistory):
        seen = plane.events(namespace=query.namespace, name=query.sandbox_id,
                            since=query.since, until=query.until, limit=_CLUSTER_EVENTS)
    else:
        # A copy (atomic under the GIL): the control plane appends from other threads, and
        # iterating the deque itself while it is appended to raises RuntimeError (a 500).
        seen = reversed(state.recording.recent.copy())
    for t in seen:
        if not _matches(t, query):
            continue
        events.append(AuditEventOut(
            timestamp=format_ts(t.time), event_type=t.reason, sandbox_id=t.sandbox.name,
            sandbox_name=t.sandbox.name, namespace=t.sandbox.namespace,
            user_email=t.sandbox.owner_email, details={"phase": t.phase.value,
                                                        "message": t.message},
            actor=t.sandbox.owner, resource="sandbox", outcome="success", event_id="",
        ))
        if len(events) == query.limit:
            break
    return AuditEventsOut(events=events, notice=STORAGE_OFF)


@router.get("/audit/events", response_model=AuditEventsOut)
def audit_events(
    request: Request,
    actor: Text = None,
    sandbox: Text = None,
    action: Text = None,
    resource: Text = None,
    namespace: Text = None,
    outcome: Annotated[Literal["success", "denied", "error"] | None, Query()] = None,
    since: Moment = None,
    until: Moment = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AuditEventsOut:
    """The audit log, newest first, from the store (admins only)."""
    state, _ = _admin(request)
    query = build_filter(AuditFilter, actor=actor, sandbox_id=sandbox, action=action,
                   resource=resource, namespace=namespace, outcome=outcome,
                   since=moment(since, "since"), until=moment(until, "until"), limit=limit,
                   cursor=cursor)
    if isinstance(state.backend, NoopBackend):
        return _recent(state, query)
    caught_up(state)
    page = state.backend.list_audit_events(query)
    return AuditEventsOut(events=[_audit_out(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/records/sandbox-events", response_model=SandboxEventsOut)
def sandbox_events(
    request: Request,
    sandbox: Text = None,
    namespace: Text = None,
    phase: Text = None,
    since: Moment = None,
    until: Moment = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> SandboxEventsOut:
    """Lifecycle transitions, newest first (admins only)."""
    state, _ = _admin(request)
    query = build_filter(SandboxEventFilter, sandbox_id=sandbox, namespace=namespace, phase=phase,
                   since=moment(since, "since"), until=moment(until, "until"), limit=limit,
                   cursor=cursor)
    caught_up(state)
    page = state.backend.list_sandbox_events(query)
    return SandboxEventsOut(next_cursor=page.next_cursor, notice=storage_notice(state),
                            events=[_sandbox_event_out(e) for e in page.items])


def _totals(state: Services, query: CostFilter, group_by: GroupBy,
            since: datetime | None, until: datetime | None) -> CostTotalsOut:
    caught_up(state)
    totals = state.backend.summarize_costs(query, group_by)
    return CostTotalsOut(
        group_by=group_by, since=format_ts(since) if since else None,
        until=format_ts(until) if until else None,
        totals=[CostTotalOut(key=t.key, cpu_hours=t.cpu_hours, mem_gb_hours=t.mem_gb_hours,
                             estimated_usd=t.estimated_usd, samples=t.samples) for t in totals],
        total_usd=sum(t.estimated_usd for t in totals), notice=storage_notice(state),
    )


@router.get("/records/costs", response_model=CostSnapshotsOut | CostTotalsOut)
def cost_records(
    request: Request,
    sandbox: Text = None,
    namespace: Text = None,
    owner: Text = None,
    template: Text = None,
    since: Moment = None,
    until: Moment = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    group_by: Annotated[GroupBy | None, Query(alias="groupBy")] = None,
) -> CostSnapshotsOut | CostTotalsOut:
    """Cost snapshots newest first; with ``groupBy``, totals over the window (admins only)."""
    state, _ = _admin(request)
    start, end = moment(since, "since"), moment(until, "until")
    if group_by is not None:
        if cursor is not None:
            raise ApiError(400, "invalid request: cursor: totals are not paged")
        query = build_filter(CostFilter, sandbox_id=sandbox, namespace=namespace, owner=owner,
                       template=template, since=start, until=end)
        return _totals(state, query, group_by, start, end)
    query = build_filter(CostFilter, sandbox_id=sandbox, namespace=namespace, owner=owner,
                   template=template, since=start, until=end, limit=limit, cursor=cursor)
    caught_up(state)
    page = state.backend.list_cost_snapshots(query)
    return CostSnapshotsOut(next_cursor=page.next_cursor, notice=storage_notice(state),
                            snapshots=[_cost_out(s) for s in page.items])


# -- exports ------------------------------------------------------------------------

T = TypeVar("T")
Q = TypeVar("Q", AuditFilter, SandboxEventFilter, CostFilter)
Format = Literal["csv", "jsonl"]
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def _export_query(kind: Callable[..., Q], params: dict[str, str | None], fmt: str | None,
                  since: str | None, until: str | None) -> tuple[Format, Q]:
    """Check an export's format and filter by hand, so that a bad one is a 400 naming it."""
    if fmt not in ("csv", "jsonl"):
        raise ApiError(400, f"invalid request: format: must be csv or jsonl (got {fmt!r})")
    for name, value in params.items():
        if value is not None and not 1 <= len(value) <= 255:
            shown = "sandbox" if name == "sandbox_id" else name  # the query parameter's name
            raise ApiError(400, f"invalid request: {shown}: must be 1 to 255 characters")
    query = build_filter(kind, since=moment(since, "since"), until=moment(until, "until"),
                   limit=MAX_LIMIT, **params)
    return fmt, query  # type: ignore[return-value]


def _all_rows(fetch: Callable[[Q], Page[T]], query: Q, first: Page[T]) -> Iterator[T]:
    """Every row, page after keyset page: one page of rows in memory at a time."""
    page = first
    while True:
        yield from page.items
        if page.next_cursor is None:
            return
        query = dataclasses.replace(query, cursor=page.next_cursor)
        page = fetch(query)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _encode(rows: Iterator[dict[str, Any]], model: type[BaseModel], fmt: Format,
            per_chunk: int = MAX_LIMIT) -> Iterator[bytes]:
    """CSV with a header row of the API's field names, or one JSON object per line."""
    names = [field.alias or name for name, field in model.model_fields.items()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(names)
    for count, row in enumerate(rows, 1):
        if fmt == "csv":
            writer.writerow([_cell(row[name]) for name in names])
        else:
            buffer.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False))
            buffer.write("\n")
        if count % per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _export(
    request: Request,
    what: str,
    fmt: Format,
    query: Q,
    fetch: Callable[[Q], Page[T]],
    shape: Callable[[T], dict[str, Any]],
    model: type[BaseModel],
) -> StreamingResponse:
    """Record the export, read its first page (so a store that is down is a 503), then stream."""
    state, identity = _admin(request)
    filters = {name: format_ts(value) if isinstance(value, datetime) else value
               for name, value in dataclasses.asdict(query).items()
               if value is not None and name not in ("limit", "cursor")}
    state.recording.audit(identity, "export", resource=what,
                          details={"format": fmt, "filter": filters})
    caught_up(state)
    first = fetch(query)
    rows = (shape(item) for item in _all_rows(fetch, query, first))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _encode(rows, model, fmt), media_type=_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{what}-{stamp}.{fmt}"'},
    )


Raw = Annotated[str | None, Query()]
"""An export's filter value: checked by hand, so that a bad one is a 400."""


@router.get("/records/audit/export", response_class=StreamingResponse)
def export_audit(
    request: Request,
    format: Raw = None,
    actor: Raw = None,
    sandbox: Raw = None,
    action: Raw = None,
    resource: Raw = None,
    namespace: Raw = None,
    outcome: Raw = None,
    since: Raw = None,
    until: Raw = None,
) -> StreamingResponse:
    """Every audit event matching the filters, newest first, as CSV or JSON lines (admins only)."""
    _admin(request)
    if outcome is not None and outcome not in ("success", "denied", "error"):
        raise ApiError(400, "invalid request: outcome: must be success, denied or error")
    fmt, query = _export_query(AuditFilter, {
        "actor": actor, "sandbox_id": sandbox, "action": action, "resource": resource,
        "namespace": namespace, "outcome": outcome}, format, since, until)
    backend = services(request).backend
    return _export(request, "audit", fmt, query, backend.list_audit_events, _audit_fields,
                   AuditEventOut)


@router.get("/records/sandbox-events/export", response_class=StreamingResponse)
def export_sandbox_events(
    request: Request,
    format: Raw = None,
    sandbox: Raw = None,
    namespace: Raw = None,
    phase: Raw = None,
    since: Raw = None,
    until: Raw = None,
) -> StreamingResponse:
    """Every lifecycle transition matching the filters, newest first (admins only)."""
    _admin(request)
    fmt, query = _export_query(SandboxEventFilter, {
        "sandbox_id": sandbox, "namespace": namespace, "phase": phase}, format, since, until)
    backend = services(request).backend
    return _export(request, "sandbox-events", fmt, query, backend.list_sandbox_events,
                   _sandbox_event_fields, SandboxEventOut)


@router.get("/records/costs/export", response_class=StreamingResponse)
def export_costs(
    request: Request,
    format: Raw = None,
    sandbox: Raw = None,
    namespace: Raw = None,
    owner: Raw = None,
    template: Raw = None,
    since: Raw = None,
    until: Raw = None,
) -> StreamingResponse:
    """Every cost snapshot matching the filters, newest first (admins only)."""
    _admin(request)
    fmt, query = _export_query(CostFilter, {
        "sandbox_id": sandbox, "namespace": namespace, "owner": owner, "template": template},
        format, since, until)
    backend = services(request).backend
    return _export(request, "costs", fmt, query, backend.list_cost_snapshots, _cost_fields,
                   CostSnapshotOut)


# -- cost series --------------------------------------------------------------------


@router.get("/records/costs/series", response_model=CostSeriesResponse)
def cost_series_endpoint(
    request: Request,
    bucket: Annotated[Literal["hour", "day"], Query()] = "day",
    group_by: Annotated[GroupBy, Query(alias="groupBy")] = "namespace",
    since: Moment = None,
    until: Moment = None,
    sandbox: Text = None,
    namespace: Text = None,
    owner: Text = None,
    template: Text = None,
) -> CostSeriesResponse:
    """Costs per UTC hour or day and per group (default: the last 30 days; admins only)."""
    state, _ = _admin(request)
    end = moment(until, "until")
    start = moment(since, "since") or days_before(end or datetime.now(UTC), 30)
    query = build_filter(CostFilter, sandbox_id=sandbox, namespace=namespace, owner=owner,
                   template=template, since=start, until=end)
    caught_up(state)
    backend = state.backend
    if isinstance(backend, SQLBackend):
        lines, totals = cost_series(backend, query, bucket, group_by)
    elif isinstance(backend, NoopBackend):
        lines, totals = [], []
    else:  # a store that could not be opened: every call says why
        backend.summarize_costs(query, group_by)
        lines, totals = [], []
    return CostSeriesResponse(
        bucket=bucket, group_by=group_by, since=format_ts(start),
        until=format_ts(end) if end else None,
        series=[CostSeriesOut(key=line.key, points=[
            CostSeriesPointOut(bucket=format_ts(p.bucket), cpu_hours=p.cpu_hours,
                               mem_gb_hours=p.mem_gb_hours, estimated_usd=p.estimated_usd,
                               samples=p.samples) for p in line.points])
            for line in lines],
        totals=[CostTotalOut(key=t.key, cpu_hours=t.cpu_hours, mem_gb_hours=t.mem_gb_hours,
                             estimated_usd=t.estimated_usd, samples=t.samples) for t in totals],
        total_usd=sum(t.estimated_usd for t in totals),
    )
