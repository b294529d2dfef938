"""Retention: delete history older than each kind's retention, in small ordered batches.

Five kinds, each with its own setting (a duration such as ``365d``; ``0``
keeps it forever, which is every kind's default)::

    policy = RetentionPolicy.from_settings({"audit": "365d", "costs": "90d"})
    report = purge(backend, policy)
    for result in report.results:
        recorder.record(result.audit_event())   # actor "system", action "purge"

How a purge stays harmless:

- It deletes in batches (5,000 rows per transaction by default) in (ts, id)
  order: each batch first finds its last row with ``SELECT … ORDER BY ts, id
  LIMIT 1 OFFSET n-1``, then deletes up to it, a form all three databases
  accept (MySQL refuses ``LIMIT`` in an ``IN`` subquery, PostgreSQL
  ``DELETE … LIMIT``). No transaction holds its locks for long, so the
  recorder keeps writing meanwhile. ``pause`` (as pt-archiver's
  ``--sleep-coef``) waits after each batch for that many times as long as
  it took; it is off by default, because it did not help the recorder
  reliably (see BENCHMARKS.md, "Purge of 10M rows").
- Each batch commits on its own and the cut-off is recomputed on each run,
  so a purge interrupted by a crash simply continues on the next run. Each
  batch starts at the previous batch's edge, the first at the oldest row (so
  that PostgreSQL's planner, whose statistics still count the rows already
  deleted, keeps to the index); a row written late with a time before that
  is left to the next run.
- Raw cost snapshots are never deleted past the rollup watermark less the
  grace window (the rollups must be able to recompute those hours), nor at
  all before the rollups have first run; hourly rollups are kept for every
  day the daily rollup may still recompute. A rollup table's cut-off is
  stored first as its *floor*, so totals never trust a bucket being purged.
- One runner at a time, through a lease row in ``agenttier_maintenance``
  (an atomic ``UPDATE``, which works the same on the three databases). Two
  runners that ignore the lease are still safe: deleting a row twice
  deletes it once, and each reports only the rows it deleted.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time as clock
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from ._time import format_ts, utcnow
from .records import AuditEvent
from .rollups import (
    DAILY_FLOOR,
    DAY,
    DEFAULT_GRACE,
    HOUR,
    HOURLY_FLOOR,
    WATERMARK,
    floor_day,
    floor_hour,
    maintenance_state,
)
from .sql.schema import (
    AUDIT_EVENTS,
    COST_ROLLUPS_DAILY,
    COST_ROLLUPS_HOURLY,
    COST_SNAPSHOTS,
    MAINTENANCE,
    SANDBOX_EVENTS,
)

if TYPE_CHECKING:
    from .sql.base import SQLBackend

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_PAUSE",
    "ENV_VARS",
    "KINDS",
    "LEASE",
    "PurgeReport",
    "PurgeResult",
    "RetentionPolicy",
    "acquire_lease",
    "parse_retention",
    "purge",
    "release_lease",
]

DEFAULT_BATCH = 5000
"""Rows deleted per transaction."""

DEFAULT_PAUSE = 0.0
"""Seconds waited after each batch, per second the batch took (0: none)."""

LEASE = "lease:maintenance"
"""The ``agenttier_maintenance`` row whose holder may purge."""

KINDS: dict[str, tuple[Table, str]] = {
    "audit": (AUDIT_EVENTS, "audit_events"),
    "sandbox-events": (SANDBOX_EVENTS, "sandbox_events"),
    "costs": (COST_SNAPSHOTS, "cost_snapshots"),
    "rollups-hourly": (COST_ROLLUPS_HOURLY, "cost_rollups_hourly"),
    "rollups-daily": (COST_ROLLUPS_DAILY, "cost_rollups_daily"),
}
"""Each kind of history a retention applies to: its table, and the table's name."""

ENV_VARS = {kind: "AGENTTIER_RETENTION_" + kind.upper().replace("-", "_") for kind in KINDS}
"""The environment variable of each kind's retention (``AGENTTIER_RETENTION_AUDIT`` …)."""

_MINIMUM = {"rollups-daily": DAY}
_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_retention(text: str, kind: str = "retention") -> timedelta | None:
    """Parse ``365d``, ``12h``, ``2w`` or ``90m`` (None for ``0``: keep forever).

    Raises ``ValueError`` naming ``kind`` for a negative or unparseable value.
    """
    value = text.strip().lower()
    if value in ("0", "0s", "0m", "0h", "0d", "0w"):
        return None
    if value.startswith("-"):
        raise ValueError(f"{kind}: a retention cannot be negative (got {text!r}); "
                         "use 0 to keep forever")
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"{kind}: {text!r} is not a duration such as 365d, 12h, 2w or 90m "
                         "(0 keeps forever)")
    try:
        return timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise ValueError(f"{kind}: {text!r} is longer than the calendar") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """How long each kind of history is kept; None keeps it forever (the default).

    A retention shorter than one rollup bucket (an hour; a day for the daily
    rollups) is refused with ``ValueError``: it would delete what the
    rollups still need.
    """

    audit: timedelta | None = None
    sandbox_events: timedelta | None = None
    costs: timedelta | None = None
    rollups_hourly: timedelta | None = None
    rollups_daily: timedelta | None = None

    def __post_init__(self) -> None:
        for kind, value in self.items():
            if value is None:
                continue
            if not isinstance(value, timedelta):
                raise TypeError(f"{kind} retention must be a timedelta or None, "
                                f"not {type(value).__name__}")
            minimum = _MINIMUM.get(kind, HOUR)
            if value < minimum:
                raise ValueError(f"--retention-{kind}: {value} is shorter than one rollup bucket "
                                 f"({minimum}); use at least that, or 0 to keep forever")

    @classmethod
    def from_settings(cls, settings: Mapping[str, str | None]) -> RetentionPolicy:
        """Build a policy from text settings by kind (``{"audit": "365d"}``); missing is forever.

        Raises ``ValueError`` for an unknown kind or a bad duration.
        """
        unknown = set(settings) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown retention kinds: {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(KINDS)}")
        values = {kind.replace("-", "_"): parse_retention(text, f"--retention-{kind}")
                  for kind, text in settings.items() if text is not None}
        return cls(**values)

    def items(self) -> list[tuple[str, timedelta | None]]:
        """Each kind (``audit``, ``sandbox-events`` …) with its retention."""
        return [(f.name.replace("_", "-"), getattr(self, f.name)) for f in fields(self)]

    @property
    def forever(self) -> bool:
        """True when every kind is kept forever: a purge has nothing to do."""
        return all(value is None for _, value in self.items())


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge did to one table: the cut-off (rows before it go) and the rows deleted.

    ``dry_run`` results count what would be deleted. ``note`` says why less
    was purged than the retention asks (the rollups have not caught up).
    """

    kind: str
    table: str
    cutoff: datetime
    rows: int
    dry_run: bool = False
    note: str = ""

    def audit_event(self) -> AuditEvent:
        """The audit event that records this purge: actor ``system``, action ``purge``."""
        return AuditEvent(
            actor="system", action="purge", resource=self.table,
            details={"table": self.table, "cutoff": format_ts(self.cutoff), "rows": self.rows,
                     **({"note": self.note} if self.note else {})},
        )


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """Every table's :class:`PurgeResult`; ``skipped`` names the lease holder when another ran."""

    results: tuple[PurgeResult, ...]
    skipped: str = ""


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(backend: SQLBackend, holder: str, ttl: timedelta,
                  now: datetime | None = None) -> str:
    """Take or renew the maintenance lease for ``ttl``; return "" on success, else its holder."""
    now = now if now is not None else utcnow()
    m = MAINTENANCE.c
    with backend.connection("maintenance lease") as conn, backend.begin_write(conn):
        taken = conn.execute(
            update(MAINTENANCE)
            .where(m.name == LEASE,
                   or_(m.holder.is_(None), m.holder == holder, m.expires < format_ts(now)))
            .values(holder=holder, expires=format_ts(now + ttl))
        ).rowcount
        if taken == 1:
            return ""
        current = conn.execute(select(m.holder).where(m.name == LEASE)).scalar()
        return str(current or "?")


def release_lease(backend: SQLBackend, holder: str) -> None:
    """Give the lease up, if ``holder`` holds it."""
    m = MAINTENANCE.c
    with backend.connection("maintenance lease") as conn, backend.begin_write(conn):
        conn.execute(update(MAINTENANCE).where(m.name == LEASE, m.holder == holder)
                     .values(holder=None, expires=None))


def _raise_floor(conn: Connection, name: str, to: datetime) -> None:
    value = format_ts(to)
    conn.execute(update(MAINTENANCE)
                 .where(MAINTENANCE.c.name == name,
                        or_(MAINTENANCE.c.value.is_(None), MAINTENANCE.c.value < value))
                 .values(value=value))


def _order(table: Table) -> list[Any]:
    if "id" in table.c:
        return [table.c.ts, table.c.id]
    return [table.c.bucket, table.c.namespace, table.c.sandbox_id]


def _delete_batches(backend: SQLBackend, conn: Connection, table: Table, cutoff: datetime,
                    batch: int, progress: Callable[[int], None],
                    pause: Callable[[float], None]) -> int:
    order = _order(table)
    time = order[0]
    edge_of = select(*order).where(time < format_ts(cutoff)).order_by(*order)
    edge_of = edge_of.offset(batch - 1).limit(1)
    total = 0
    # Every batch has a lower bound, which keeps it to its own few rows: the oldest row's
    # time, then the last batch's edge. Without one, PostgreSQL judged "ts < edge" by
    # statistics taken before the purge (millions of rows) and scanned the whole table
    # for a batch (BENCHMARKS.md, "Purge of 10M rows"); the edge's scan would also step
    # over every row deleted so far.
    with conn.begin():
        floor: Any = conn.execute(select(time).where(time < format_ts(cutoff))
                                  .order_by(*order).limit(1)).scalar()
    if floor is None:
        return 0
    while True:
        began = clock.monotonic()
        with backend.begin_write(conn):
            where = [time < format_ts(cutoff), time >= floor]
            edge = conn.execute(edge_of.where(where[1])).first()
            if edge is not None:
                if "id" in table.c:
                    where.append(or_(time < edge[0], and_(time == edge[0], table.c.id <= edge[1])))
                else:  # a rollup: up to the edge's bucket (at most one bucket past the batch)
                    where.append(time <= edge[0])
            deleted = conn.execute(delete(table).where(*where)).rowcount
        total += deleted
        progress(deleted)
        if edge is None:
            return total
        floor = edge[0]
        pause(clock.monotonic() - began)


def _cutoffs(policy: RetentionPolicy, now: datetime, state: Mapping[str, datetime | None],
             grace: timedelta) -> list[tuple[str, datetime, str]]:
    mark = state.get(WATERMARK)
    out = []
    for kind, keep in policy.items():
        if keep is None:
            continue
        try:
            cutoff, note = now - keep, ""
        except OverflowError:
            continue  # a retention longer than the calendar keeps everything
        if kind == "costs":
            if mark is None:
                out.append((kind, cutoff, "kept: the rollups have not run yet"))
                continue
            safe = floor_hour(mark - grace)
            if safe < cutoff:
                cutoff, note = safe, f"limited to the rollup watermark less {grace}"
        elif kind == "rollups-hourly" and mark is not None:
            safe = floor_day(mark - grace)
            if safe < cutoff:
                cutoff, note = safe, "limited to the days the daily rollup may still recompute"
        out.append((kind, cutoff, note))
    return out


def purge(
    backend: SQLBackend,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    grace: timedelta = DEFAULT_GRACE,
    lease: timedelta | None = timedelta(minutes=10),
    progress: Callable[[str, int], None] | None = None,
    pause: float = DEFAULT_PAUSE,
    wait: Callable[[float], object] = clock.sleep,
) -> PurgeReport:
    """Delete every row older than its kind's retention; return what was (or would be) deleted.

    ``lease=None`` skips the lease (two such runners are still safe).
    ``progress(table, rows)`` is called after each committed batch. ``grace``
    must match the rollups' (see :func:`~.rollups.roll_up`). Between two
    batches the purge calls ``wait(pause * seconds the batch took)`` (``pause=0``
    never waits); the maintenance thread passes its stop event's ``wait``, so
    that closing it does not wait out a pause.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive number of rows (got {batch!r})")
    if isinstance(pause, bool) or not isinstance(pause, int | float) or not (
        math.isfinite(pause) and pause >= 0
    ):
        raise ValueError(f"pause must be a number >= 0 (got {pause!r})")
    now = now if now is not None else utcnow()
    holder = _holder()
    if lease is not None and not dry_run:
        other = acquire_lease(backend, holder, lease, now)
        if other:
            return PurgeReport((), skipped=other)
    try:
        state = maintenance_state(backend)
        results = []
        for kind, cutoff, note in _cutoffs(policy, now, state, grace):
            table, name = KINDS[kind]
            time = _order(table)[0]
            if dry_run or note.startswith("kept"):
                rows = 0
                if dry_run and not note.startswith("kept"):
                    with backend.connection("purge count") as conn, conn.begin():
                        rows = int(conn.execute(select(func.count()).select_from(table)
                                                .where(time < format_ts(cutoff))).scalar() or 0)
                results.append(PurgeResult(kind, name, cutoff, rows, dry_run, note))
                continue
            with backend.connection(f"purge {name}") as conn:
                floor = {"rollups-hourly": HOURLY_FLOOR, "rollups-daily": DAILY_FLOOR}.get(kind)
                if floor is not None:
                    with backend.begin_write(conn):
                        _raise_floor(conn, floor, cutoff)

                def step(rows: int, name: str = name) -> None:
                    if progress is not None:
                        progress(name, rows)
                    if lease is not None:
                        acquire_lease(backend, holder, lease)

                def rest(took: float) -> None:
                    if pause > 0:
                        wait(pause * took)

                rows = _delete_batches(backend, conn, table, cutoff, batch, step, rest)
            results.append(PurgeResult(kind, name, cutoff, rows, False, note))
        return PurgeReport(tuple(results))
    finally:
        if lease is not None and not dry_run:
            release_lease(backend, holder)
