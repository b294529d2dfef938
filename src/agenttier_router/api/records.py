"""Reading history back: ``/audit/events`` and ``/records/*`` (admins only).

``/analytics/costs`` (in :mod:`.analytics`) adds the stored window totals to the SDK's shape.

``/audit/events`` answers in the SDK's ``AuditEvent`` shape, from the store,
newest first. A read sees every record enqueued before it began: it first
waits (up to a second) for the recorder to write what it holds. With storage
off it serves the control plane's recent transitions, as the Go Router
serves Kubernetes Events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from agenttier_router.controlplane import Transition
from agenttier_router.service import Services
from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    CostFilter,
    InvalidQuery,
    NoopBackend,
    SandboxEventFilter,
    format_ts,
    parse_ts,
)
from agenttier_router.storage.filters import duration_before

from .auth import Identity
from .context import authenticate, services
from .errors import ApiError
from .models import (
    AuditEventOut,
    AuditEventsOut,
    CostSnapshotOut,
    CostSnapshotsOut,
    CostTotalOut,
    CostTotalsOut,
    ErrorOut,
    SandboxEventOut,
    SandboxEventsOut,
)

__all__ = ["READ_WAIT", "router"]

READ_WAIT = 1.0
"""Seconds a read waits for the recorder to write what was enqueued before it."""

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut},
    422: {"model": ErrorOut}, 503: {"model": ErrorOut},
})

Text = Annotated[str | None, Query(min_length=1, max_length=255)]
Moment = Annotated[str | None, Query(
    max_length=64, description="RFC3339 with a zone, or a duration before now: 30m, 24h, 7d, 2w")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=512)]


def _admin(request: Request) -> tuple[Services, Identity]:
    state = services(request)
    identity = authenticate(state, request)
    if identity is None:
        raise ApiError(401, "a valid X-API-Key header is required")
    if not identity.is_admin:
        raise ApiError(403, "reading history is for admins")
    return state, identity


def _moment(value: str | None, name: str) -> datetime | None:
    """An RFC3339 time with a zone, or a time before now (``24h``, ``7d``), as the CLI reads."""
    if value is None:
        return None
    try:
        return duration_before(value, datetime.now(UTC)) or parse_ts(value)
    except (ValueError, OverflowError):  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise ApiError(422, f"invalid request: {name}: neither an RFC3339 time with a zone "
                            f"(2026-11-26T17:00:00Z) nor a duration before now (30m, 24h, 7d, "
                            f"2w): {value[:64]!r}") from None


def _days_before(moment: datetime, days: int) -> datetime:
    """``moment`` less ``days`` days, or the earliest time there is (an ``until`` in year 1)."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _build(kind: Any, **fields: Any) -> Any:
    """Build a storage filter; a value it refuses is a 422 that names the field.

    A malformed cursor is an :class:`InvalidQuery`, which the error handler
    answers with 400 (as a backend's InvalidQuery is), naming ``cursor``.
    """
    try:
        return kind(**{k: v for k, v in fields.items() if v is not None})
    except InvalidQuery:
        raise
    except ValueError as error:
        raise ApiError(422, f"invalid request: {error}") from None


def _caught_up(state: Services) -> None:
    state.recorder.wait_written(READ_WAIT)


def _details(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _audit_out(event: AuditEvent) -> AuditEventOut:
    details = _details(event.details)
    email = details.get("email")
    return AuditEventOut(
        timestamp=format_ts(event.time), event_type=event.action, sandbox_id=event.sandbox_id,
        sandbox_name=event.sandbox_id, namespace=event.namespace,
        user_email=email if isinstance(email, str) else "", details=details, actor=event.actor,
        resource=event.resource, outcome=event.outcome, event_id=event.event_id,
    )


def _matches(t: Transition, query: AuditFilter) -> bool:
    """Whether a transition, shown as an audit event, passes ``query``'s filters."""
    shown = ((query.actor, t.sandbox.owner), (query.sandbox_id, t.sandbox.name),
             (query.action, t.reason), (query.namespace, t.sandbox.namespace),
             (query.outcome, "success"), (query.resource, "sandbox"))
    if any(wanted is not None and wanted != value for wanted, value in shown):
        return False
    return ((query.since is None or t.time >= query.since)
            and (query.until is None or t.time < query.until))


def _recent(state: Services, query: AuditFilter) -> AuditEventsOut:
    """Storage off: the control plane's recent transitions that match ``query``, newest first."""
    events = []
    # A copy (atomic under the GIL): the control plane appends from other threads, and
    # iterating the deque itself while it is appended to raises RuntimeError (a 500).
    for t in reversed(state.recording.recent.copy()):
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
    return AuditEventsOut(events=events)


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
    query = _build(AuditFilter, actor=actor, sandbox_id=sandbox, action=action,
                   resource=resource, namespace=namespace, outcome=outcome,
                   since=_moment(since, "since"), until=_moment(until, "until"), limit=limit,
                   cursor=cursor)
    if isinstance(state.backend, NoopBackend):
        return _recent(state, query)
    _caught_up(state)
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
    query = _build(SandboxEventFilter, sandbox_id=sandbox, namespace=namespace, phase=phase,
                   since=_moment(since, "since"), until=_moment(until, "until"), limit=limit,
                   cursor=cursor)
    _caught_up(state)
    page = state.backend.list_sandbox_events(query)
    return SandboxEventsOut(next_cursor=page.next_cursor, events=[
        SandboxEventOut(timestamp=format_ts(e.time), sandbox_id=e.sandbox_id,
                        sandbox_name=e.sandbox_name, namespace=e.namespace, phase=e.phase,
                        reason=e.reason, message=e.message, event_id=e.event_id)
        for e in page.items
    ])


def _totals(state: Services, query: CostFilter, group_by: Literal["sandbox", "namespace"],
            since: datetime | None, until: datetime | None) -> CostTotalsOut:
    _caught_up(state)
    totals = state.backend.summarize_costs(query, group_by)
    return CostTotalsOut(
        group_by=group_by, since=format_ts(since) if since else None,
        until=format_ts(until) if until else None,
        totals=[CostTotalOut(key=t.key, cpu_hours=t.cpu_hours, mem_gb_hours=t.mem_gb_hours,
                             estimated_usd=t.estimated_usd, samples=t.samples) for t in totals],
        total_usd=sum(t.estimated_usd for t in totals),
    )


@router.get("/records/costs", response_model=CostSnapshotsOut | CostTotalsOut)
def cost_records(
    request: Request,
    sandbox: Text = None,
    namespace: Text = None,
    since: Moment = None,
    until: Moment = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    group_by: Annotated[Literal["sandbox", "namespace"] | None, Query(alias="groupBy")] = None,
) -> CostSnapshotsOut | CostTotalsOut:
    """Cost snapshots newest first; with ``groupBy``, totals over the window (admins only)."""
    state, _ = _admin(request)
    start, end = _moment(since, "since"), _moment(until, "until")
    if group_by is not None:
        if cursor is not None:
            raise ApiError(422, "invalid request: cursor: totals are not paged")
        query = _build(CostFilter, sandbox_id=sandbox, namespace=namespace, since=start,
                       until=end)
        return _totals(state, query, group_by, start, end)
    query = _build(CostFilter, sandbox_id=sandbox, namespace=namespace, since=start, until=end,
                   limit=limit, cursor=cursor)
    _caught_up(state)
    page = state.backend.list_cost_snapshots(query)
    return CostSnapshotsOut(next_cursor=page.next_cursor, snapshots=[
        CostSnapshotOut(timestamp=format_ts(s.time), sandbox_id=s.sandbox_id,
                        namespace=s.namespace, cpu_hours=s.cpu_hours,
                        mem_gb_hours=s.mem_gb_hours, estimated_usd=s.estimated_usd,
                        event_id=s.event_id)
        for s in page.items
    ])
