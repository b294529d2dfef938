"""Records to row tuples for writing, and rows back to records for reading.

The write side makes every value safe for all three databases: NUL characters
are removed (PostgreSQL rejects them), short columns are cut to 255 characters
and long ones to 64 KiB of UTF-8, each with a visible marker, so nothing is
ever rejected, and nothing is cut silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._time import format_ts, parse_ts
from ..records import AuditEvent, CostSnapshot, Record, SandboxEvent

__all__ = [
    "LONG_LIMIT_BYTES",
    "SHORT_LIMIT",
    "audit_from_row",
    "cost_from_row",
    "group_rows",
    "long_text",
    "sandbox_event_from_row",
    "short_text",
]

SHORT_LIMIT = 255
"""Characters an indexed text column holds."""

LONG_LIMIT_BYTES = 64 * 1024
"""Bytes of UTF-8 that ``details`` and ``message`` hold."""

_SHORT_MARK = "…"


def short_text(value: str) -> str:
    """Return ``value`` without NULs, cut to 255 characters with a trailing ``…``."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if len(value) > SHORT_LIMIT:
        value = value[: SHORT_LIMIT - len(_SHORT_MARK)] + _SHORT_MARK
    return value


def long_text(value: str) -> str:
    """Return ``value`` without NULs, cut to 64 KiB of UTF-8 with a marker naming its size."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    # A str of n code points is at most 4n bytes: skip encoding for short values.
    if len(value) * 4 <= LONG_LIMIT_BYTES:
        return value
    data = value.encode("utf-8")
    if len(data) <= LONG_LIMIT_BYTES:
        return value
    marker = f"…[cut: {len(data)} bytes in all]"
    keep = LONG_LIMIT_BYTES - len(marker.encode("utf-8"))
    return data[:keep].decode("utf-8", errors="ignore") + marker


def _audit_row(e: AuditEvent) -> tuple[Any, ...]:
    return (
        format_ts(e.time), short_text(e.event_id), short_text(e.actor), short_text(e.action),
        short_text(e.resource), short_text(e.sandbox_id), short_text(e.namespace), e.outcome,
        long_text(e.details),
    )


def _sandbox_row(e: SandboxEvent) -> tuple[Any, ...]:
    return (
        format_ts(e.time), short_text(e.event_id), short_text(e.sandbox_id),
        short_text(e.sandbox_name), short_text(e.namespace), short_text(e.phase),
        short_text(e.reason), long_text(e.message),
    )


def _cost_row(s: CostSnapshot) -> tuple[Any, ...]:
    # A snapshot rebuilt from a spool row written before owner and template
    # existed lacks them (or holds None): stored as NULL, that is, unknown.
    owner = getattr(s, "owner", None)
    template = getattr(s, "template", None)
    return (
        format_ts(s.time), short_text(s.event_id), short_text(s.sandbox_id),
        short_text(s.namespace), s.cpu_hours, s.mem_gb_hours, s.estimated_usd,
        short_text(owner) or None if owner else None,
        short_text(template) or None if template else None,
    )


_ROW_BUILDERS: dict[type, tuple[str, Any]] = {
    AuditEvent: ("audit_events", _audit_row),
    SandboxEvent: ("sandbox_events", _sandbox_row),
    CostSnapshot: ("cost_snapshots", _cost_row),
}


def group_rows(records: Sequence[Record]) -> dict[str, list[tuple[Any, ...]]]:
    """Split a mixed sequence into safe row tuples per table, keeping their order.

    Raises ``TypeError`` for anything that is not one of the three record types.
    """
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for record in records:
        try:
            table, build = _ROW_BUILDERS[type(record)]
        except KeyError:
            raise TypeError(
                f"write_batch takes AuditEvent, SandboxEvent or CostSnapshot, "
                f"not {type(record).__name__}"
            ) from None
        grouped.setdefault(table, []).append(build(record))
    return grouped


# Reading back. Rows are trusted (they passed the write path or came from the
# Go Router), so records are assembled without the constructor's checks: a Go
# row may lack fields a new record requires.


def _event_id(event_id: str | None, ts: str, row_id: int) -> str:
    if event_id:
        return event_id
    # A Go-era row has none: derive a stable one of the same shape, time first.
    us = int(parse_ts(ts).timestamp() * 1_000_000) & 0xFF_FFFF_FFFF_FFFF
    return f"{us:014x}{row_id:018x}"


def _assemble(cls: type, values: dict[str, Any]) -> Any:
    record: Any = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(record, name, value)
    return record


def audit_from_row(row: Any) -> AuditEvent:
    """Build an :class:`AuditEvent` from a row of ``audit_events``."""
    event: AuditEvent = _assemble(AuditEvent, {
        "actor": row.actor or "", "action": row.action or "", "resource": row.resource or "",
        "sandbox_id": row.sandbox_id or "", "namespace": row.namespace or "",
        "outcome": row.outcome or "success", "details": row.details or "",
        "time": parse_ts(row.ts), "event_id": _event_id(row.event_id, row.ts, row.id),
    })
    return event


def sandbox_event_from_row(row: Any) -> SandboxEvent:
    """Build a :class:`SandboxEvent` from a row of ``sandbox_events``."""
    event: SandboxEvent = _assemble(SandboxEvent, {
        "sandbox_id": row.sandbox_id or "", "phase": row.phase or "",
        "sandbox_name": row.sandbox_name or "", "namespace": row.namespace or "",
        "reason": row.reason or "", "message": row.message or "",
        "time": parse_ts(row.ts), "event_id": _event_id(row.event_id, row.ts, row.id),
    })
    return event


def cost_from_row(row: Any) -> CostSnapshot:
    """Build a :class:`CostSnapshot` from a row of ``cost_snapshots``."""
    snapshot: CostSnapshot = _assemble(CostSnapshot, {
        "sandbox_id": row.sandbox_id or "", "namespace": row.namespace or "",
        "owner": row.owner or "", "template": row.template or "",
        "cpu_hours": float(row.cpu_hours or 0.0), "mem_gb_hours": float(row.mem_gb_hours or 0.0),
        "estimated_usd": float(row.estimated_usd or 0.0),
        "time": parse_ts(row.ts), "event_id": _event_id(row.event_id, row.ts, row.id),
    })
    return snapshot

