"""The backend protocol, and the no-op backend that runs when storage is off.

Every backend (SQLite, PostgreSQL, MySQL, or :class:`NoopBackend`) offers the
same calls; the Router and the CLI see only this protocol. Backends raise only
the errors in :mod:`agenttier_router.storage.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from .errors import BackendUnavailable
from .filters import AuditFilter, CostFilter, CostTotal, Page, SandboxEventFilter
from .records import AuditEvent, CostSnapshot, Record, SandboxEvent

__all__ = ["GROUP_BYS", "Backend", "GroupBy", "NoopBackend", "UnavailableBackend"]

GroupBy = Literal["sandbox", "namespace", "owner", "template"]
"""What :meth:`Backend.summarize_costs` sums per."""

GROUP_BYS: tuple[GroupBy, ...] = ("sandbox", "namespace", "owner", "template")
"""Every :data:`GroupBy` value."""


@runtime_checkable
class Backend(Protocol):
    """Where records are written and read back.

    Writes are idempotent on ``event_id``. Listings come newest first, in pages.
    """

    def record_audit_event(self, event: AuditEvent) -> None:
        """Store one audit event."""

    def record_sandbox_event(self, event: SandboxEvent) -> None:
        """Store one sandbox lifecycle event."""

    def record_cost_snapshot(self, snapshot: CostSnapshot) -> None:
        """Store one cost snapshot."""

    def write_batch(self, records: Sequence[Record]) -> None:
        """Store a mixed sequence of records in one transaction: all of them, or none."""

    def list_audit_events(self, query: AuditFilter) -> Page[AuditEvent]:
        """Return one page of audit events matching ``query``, newest first."""

    def list_sandbox_events(self, query: SandboxEventFilter) -> Page[SandboxEvent]:
        """Return one page of sandbox events matching ``query``, newest first."""

    def list_cost_snapshots(self, query: CostFilter) -> Page[CostSnapshot]:
        """Return one page of cost snapshots matching ``query``, newest first."""

    def summarize_costs(self, query: CostFilter, group_by: GroupBy = "sandbox") -> list[CostTotal]:
        """Return the summed costs per sandbox, namespace, owner or template, dearest first."""

    def close(self) -> None:
        """Release connections. Calling it twice is harmless."""


class NoopBackend:
    """The backend that runs when storage is off: it stores nothing and lists nothing.

    Kubernetes stays the only source of truth, as the spec says.
    """

    def __repr__(self) -> str:
        return "NoopBackend()"

    def record_audit_event(self, event: AuditEvent) -> None:
        """Discard the event."""

    def record_sandbox_event(self, event: SandboxEvent) -> None:
        """Discard the event."""

    def record_cost_snapshot(self, snapshot: CostSnapshot) -> None:
        """Discard the snapshot."""

    def write_batch(self, records: Sequence[Record]) -> None:
        """Discard the records."""

    def list_audit_events(self, query: AuditFilter) -> Page[AuditEvent]:
        """Return an empty page."""
        return Page(())

    def list_sandbox_events(self, query: SandboxEventFilter) -> Page[SandboxEvent]:
        """Return an empty page."""
        return Page(())

    def list_cost_snapshots(self, query: CostFilter) -> Page[CostSnapshot]:
        """Return an empty page."""
        return Page(())

    def summarize_costs(self, query: CostFilter, group_by: GroupBy = "sandbox") -> list[CostTotal]:
        """Return no totals."""
        return []

    def close(self) -> None:
        """Nothing to release."""


class UnavailableBackend:
    """Stands in for a store that cannot be opened (a malformed URL, a missing driver).

    Every call raises :class:`BackendUnavailable` with ``reason``, so a
    recorder in front of it spools what it is given instead of losing it,
    and a later start with a corrected URL replays the spool.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"UnavailableBackend({self.reason!r})"

    def _fail(self) -> BackendUnavailable:
        return BackendUnavailable(self.reason)

    def record_audit_event(self, event: AuditEvent) -> None:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def record_sandbox_event(self, event: SandboxEvent) -> None:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def record_cost_snapshot(self, snapshot: CostSnapshot) -> None:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def write_batch(self, records: Sequence[Record]) -> None:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def list_audit_events(self, query: AuditFilter) -> Page[AuditEvent]:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def list_sandbox_events(self, query: SandboxEventFilter) -> Page[SandboxEvent]:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def list_cost_snapshots(self, query: CostFilter) -> Page[CostSnapshot]:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def summarize_costs(self, query: CostFilter, group_by: GroupBy = "sandbox") -> list[CostTotal]:
        """Raise :class:`BackendUnavailable`."""
        raise self._fail()

    def close(self) -> None:
        """Nothing to release."""
