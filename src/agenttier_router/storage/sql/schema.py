"""The tables, as SQLAlchemy Core tables for building queries.

The DDL that creates and upgrades them lives in the Alembic migrations
(``storage/migrations``); ``tests/storage/test_schema.py`` checks that the two agree.

Every column the Go Router wrote keeps its name, so existing BI queries keep
working; ``event_id`` (all tables), ``namespace`` and ``outcome`` (audit),
``owner`` and ``template`` (costs, nullable) are new. Beside them: the hourly
and daily cost rollups, and ``agenttier_maintenance`` (the rollup watermark,
the purge floors and the maintenance lease, one row each).
``ts`` is fixed-width RFC3339 UTC text, so text order is time order, and every
filter has an index on (column, ts, id) that serves it newest first.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, MetaData, Table, Text

__all__ = [
    "AUDIT_EVENTS",
    "COST_ROLLUPS_DAILY",
    "COST_ROLLUPS_HOURLY",
    "COST_SNAPSHOTS",
    "INDEXES",
    "LONG_TEXT",
    "MAINTENANCE",
    "MAINTENANCE_ROWS",
    "METADATA",
    "SANDBOX_EVENTS",
    "SHORT_TEXT",
    "VERSION_TABLE",
    "WRITE_COLUMNS",
]

VERSION_TABLE = "agenttier_schema_version"
"""The table in which Alembic keeps the schema revision."""

METADATA = MetaData()

AUDIT_EVENTS = Table(
    "audit_events",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("ts", Text, nullable=False),
    Column("actor", Text),
    Column("action", Text),
    Column("resource", Text),
    Column("sandbox_id", Text),
    Column("details", Text),
    Column("event_id", Text),
    Column("namespace", Text, nullable=False),
    Column("outcome", Text, nullable=False),
)

SANDBOX_EVENTS = Table(
    "sandbox_events",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("ts", Text, nullable=False),
    Column("sandbox_id", Text),
    Column("sandbox_name", Text),
    Column("namespace", Text),
    Column("phase", Text),
    Column("reason", Text),
    Column("message", Text),
    Column("event_id", Text),
)

COST_SNAPSHOTS = Table(
    "cost_snapshots",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("ts", Text, nullable=False),
    Column("sandbox_id", Text),
    Column("namespace", Text),
    Column("cpu_hours", Float),
    Column("mem_gb_hours", Float),
    Column("estimated_usd", Float),
    Column("event_id", Text),
    Column("owner", Text),
    Column("template", Text),
)


def _rollup(name: str) -> Table:
    return Table(
        name,
        METADATA,
        Column("bucket", Text, primary_key=True),
        Column("namespace", Text, primary_key=True),
        Column("sandbox_id", Text, primary_key=True),
        Column("owner", Text),
        Column("template", Text),
        Column("cpu_hours", Float, nullable=False),
        Column("mem_gb_hours", Float, nullable=False),
        Column("estimated_usd", Float, nullable=False),
        Column("samples", BigInteger, nullable=False),
    )


COST_ROLLUPS_HOURLY = _rollup("cost_rollups_hourly")
"""Cost snapshots summed per hour (``bucket``, its start) and sandbox."""

COST_ROLLUPS_DAILY = _rollup("cost_rollups_daily")
"""Cost snapshots summed per UTC day and sandbox, from the hourly rollups."""

MAINTENANCE = Table(
    "agenttier_maintenance",
    METADATA,
    Column("name", Text, primary_key=True),
    Column("value", Text),
    Column("holder", Text),
    Column("expires", Text),
)
"""Named maintenance state: ``value`` a timestamp; ``holder``/``expires`` for the lease row."""

MAINTENANCE_ROWS = (
    "rollup_watermark",
    "floor:cost_rollups_hourly",
    "floor:cost_rollups_daily",
    "lease:maintenance",
)
"""The rows of ``agenttier_maintenance``; the migration creates each one."""

WRITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "audit_events": (
        "ts", "event_id", "actor", "action", "resource", "sandbox_id", "namespace", "outcome",
        "details",
    ),
    "sandbox_events": (
        "ts", "event_id", "sandbox_id", "sandbox_name", "namespace", "phase", "reason", "message",
    ),
    "cost_snapshots": (
        "ts", "event_id", "sandbox_id", "namespace", "cpu_hours", "mem_gb_hours", "estimated_usd",
        "owner", "template",
    ),
}
"""The columns a write fills, in the order of the row tuples built by ``rows.py``."""

SHORT_TEXT = frozenset(
    {"event_id", "actor", "action", "resource", "sandbox_id", "namespace", "outcome", "phase",
     "sandbox_name", "reason", "owner", "template"}
)
"""Columns that hold at most 255 characters (VARCHAR(255) on MySQL, so they can be indexed)."""

LONG_TEXT = frozenset({"details", "message"})
"""Columns that hold at most 64 KiB of UTF-8."""

INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "audit_events": (
        ("ts", "id"),
        ("actor", "ts", "id"),
        ("sandbox_id", "ts", "id"),
        ("action", "ts", "id"),
        ("resource", "ts", "id"),
        ("namespace", "ts", "id"),
        ("outcome", "ts", "id"),
    ),
    "sandbox_events": (
        ("ts", "id"),
        ("sandbox_id", "ts", "id"),
        ("namespace", "ts", "id"),
        ("phase", "ts", "id"),
    ),
    "cost_snapshots": (
        ("ts", "id"),
        ("sandbox_id", "ts", "id"),
        ("namespace", "ts", "id"),
        ("owner", "ts", "id"),
        ("template", "ts", "id"),
    ),
}
"""One index per filter column, each ending in (ts, id) so it serves newest-first pages.

A unique index on ``event_id`` makes writes idempotent; it is created beside these.
"""
