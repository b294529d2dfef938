"""``GET /analytics/usage`` and ``GET /analytics/costs``: the fleet, in the SDK's shapes (admins).

Our own numbers, not the Go Router's flat guesses:

- each Running sandbox's compute is priced from its template's requests
  (vCPUs and GiB) at the Router's price table, the one the cost sampler uses;
- storage is priced per GB-month (:data:`STORAGE_PER_GIB_MONTH`) for every
  sandbox that still has its volume (any phase but Deleting), and an hourly
  figure is that divided by the :data:`HOURS_PER_MONTH` hours of a month;
- ``total_estimated_monthly`` is the hourly total times the same hours.

``/analytics/costs`` also carries what the stored cost snapshots add up to
over a window (default: the last 30 days), under fields the SDK ignores.
Both reads are recorded (``analytics.usage``, ``analytics.costs``).

``avg_startup_ms`` is measured from each sandbox's creation to its first
transition into Running among the transitions this process has seen (the
last :data:`~agenttier_router.service.recording.RECENT_TRANSITIONS`).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from agenttier_router.controlplane import Phase, Sandbox
from agenttier_router.service import Services
from agenttier_router.storage import CostFilter, GroupBy, StorageError, format_ts

from .acting import audited_caller, recorded_call
from .models import CostTotalOut, ErrorOut
from .models_sdk import CostEstimateOut, TemplateCostOut, UsageOut
from .queries import build_filter, caught_up, days_before, moment, storage_notice

__all__ = ["DEFAULT_STORAGE_GIB", "HOURS_PER_MONTH", "STORAGE_PER_GIB_MONTH", "router"]

router = APIRouter(prefix="/api/v1", responses={
    401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 400: {"model": ErrorOut},
})

STORAGE_PER_GIB_MONTH = 0.10
"""USD per GiB of sandbox volume per month."""
DEFAULT_STORAGE_GIB = 10.0
"""The volume a sandbox gets when its create request names no size (the SDK sends none)."""
HOURS_PER_MONTH = 30 * 24
"""Hours in the month the SDK's ``total_estimated_monthly`` extrapolates to."""

Moment = Annotated[str | None, Query(max_length=64, description="RFC3339 with a zone")]


def _startups(svc: Services, sandboxes: list[Sandbox]) -> list[float]:
    """Milliseconds from creation to first Running, for the sandboxes whose start was seen."""
    first: dict[tuple[str, str, str], datetime] = {}
    for t in svc.recording.recent.copy():
        if t.phase is Phase.RUNNING:
            key = (t.sandbox.namespace, t.sandbox.name, t.sandbox.uid)
            first.setdefault(key, t.time)
    found = []
    for s in sandboxes:
        started = first.get((s.namespace, s.name, s.uid))
        if started is not None:
            found.append(max(0.0, (started - s.created_at).total_seconds() * 1000))
    return found


@router.get("/analytics/usage", response_model=UsageOut)
def usage(request: Request) -> UsageOut:
    """How many sandboxes, by phase and by template, and how fast they start."""
    svc, identity = audited_caller(request, "analytics.usage", "analytics", admin=True)

    def count() -> UsageOut:
        sandboxes = svc.control_plane.list()
        startups = _startups(svc, sandboxes)
        return UsageOut(
            total_sandboxes=len(sandboxes),
            status_breakdown=dict(Counter(s.phase.value or "creating" for s in sandboxes)),
            template_breakdown=dict(Counter(s.template.name or "unknown" for s in sandboxes)),
            avg_startup_ms=round(sum(startups) / len(startups)) if startups else 0,
            startup_sample_count=len(startups),
        )

    return recorded_call(svc, identity, "analytics.usage", "analytics", count)


def _estimate(svc: Services, sandboxes: list[Sandbox]) -> CostEstimateOut:
    """The SDK's cost estimate for ``sandboxes`` at the Router's prices (no window yet)."""
    prices = svc.sampler.prices
    compute: dict[str, float] = {}
    counts = Counter(s.template.name or "unknown" for s in sandboxes)
    running = stopped = 0
    storage_gib = 0.0
    for s in sandboxes:
        if s.phase is Phase.RUNNING:
            running += 1
            rate = (s.template.cpu * prices.cpu_per_vcpu_hour
                    + s.template.memory_gib * prices.memory_per_gib_hour)
            name = s.template.name or "unknown"
            compute[name] = compute.get(name, 0.0) + rate
        elif s.phase is Phase.STOPPED:
            stopped += 1
        if s.phase is not Phase.DELETING:
            storage_gib += DEFAULT_STORAGE_GIB
    hourly_compute = sum(compute.values())
    hourly_storage = storage_gib * STORAGE_PER_GIB_MONTH / HOURS_PER_MONTH
    return CostEstimateOut(
        running_sandboxes=running, stopped_sandboxes=stopped,
        total_hourly_compute=hourly_compute, total_hourly_storage=hourly_storage,
        total_estimated_monthly=(hourly_compute + hourly_storage) * HOURS_PER_MONTH,
        per_template=[TemplateCostOut(template=name, hourly_cost=compute[name],
                                      count=counts[name]) for name in sorted(compute)],
        prices={"cpuPerVcpuHour": prices.cpu_per_vcpu_hour,
                "memoryPerGibHour": prices.memory_per_gib_hour,
                "storagePerGibMonth": STORAGE_PER_GIB_MONTH},
    )


@router.get("/analytics/costs", response_model=CostEstimateOut, response_model_by_alias=True)
def costs(
    request: Request,
    since: Moment = None,
    until: Moment = None,
    namespace: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    group_by: Annotated[GroupBy, Query(alias="groupBy")] = "sandbox",
) -> CostEstimateOut:
    """What the fleet costs per hour now, and what the stored snapshots add up to."""
    svc, identity = audited_caller(request, "analytics.costs", "analytics", admin=True)
    end = moment(until, "until")
    start = moment(since, "since") or days_before(end or datetime.now(UTC), 30)
    query = build_filter(CostFilter, namespace=namespace, since=start, until=end)

    def compute() -> CostEstimateOut:
        out = _estimate(svc, svc.control_plane.list())
        out.group_by, out.since = group_by, format_ts(start)
        out.until = format_ts(end) if end else None
        caught_up(svc)
        try:
            totals = svc.backend.summarize_costs(query, group_by)
        except StorageError:
            totals = []  # the live estimate still answers; the window is empty
        out.totals = [CostTotalOut(key=t.key, cpu_hours=t.cpu_hours,
                                   mem_gb_hours=t.mem_gb_hours, estimated_usd=t.estimated_usd,
                                   samples=t.samples) for t in totals]
        out.total_usd = sum(t.estimated_usd for t in totals)
        out.notice = storage_notice(svc)
        return out

    return recorded_call(svc, identity, "analytics.costs", "analytics", compute,
                         details={"groupBy": group_by})
