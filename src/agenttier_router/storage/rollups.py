"""Hourly and daily cost rollups: kept up to date incrementally, read for totals and series.

A month of 1,000 sandboxes sampled every minute is 43 million cost
snapshots; summing them for every report is too slow. :func:`roll_up` sums
them once per hour and sandbox (``cost_rollups_hourly``) and per UTC day and
sandbox (``cost_rollups_daily``, from the hourly rows)::

    report = roll_up(backend)            # from the watermark less the grace window
    totals = summarize(backend, CostFilter(since=a, until=b), "owner")

How the rollups stay right:

- The **watermark** (a row of ``agenttier_maintenance``) is the end of the
  last hour rolled up. Each run starts ``grace`` before it, so snapshots
  replayed late from a spool are counted, and ends at the last closed hour.
- Each bucket is recomputed (deleted and summed again) in **one transaction**
  that first locks the watermark row (``SELECT … FOR UPDATE``; SQLite's write
  lock), so two runs, from one process or two replicas, wait for each other
  and write the same rows; the primary key (bucket, namespace, sandbox) makes
  a duplicate impossible anyway.
- A snapshot that arrives for an hour already rolled up (replayed late from
  a spool, however late, or written by a replica whose clock is behind)
  **reopens** that hour: the write that stores it moves the watermark back to
  the hour's start (:func:`reopen`), in the same transaction. Reads take that
  hour from the raw rows at once, and the next run recomputes it.
- A bucket's owner and template are the largest its snapshots name (a
  sandbox has one of each); snapshots written by an older Router have none,
  and group under ``(unknown)``.

How totals are read (:func:`summarize`, :func:`series`): the window is cut
into whole days the daily rollups hold, whole hours the hourly rollups hold,
and the raw snapshots of the rest (the open edges, and anything past the
watermark), so the result equals a sum over the raw rows. A rollup purged by
retention is never trusted: its table's *floor* (the purge's cut-off) is
stored, and buckets before it are read from the next finer source instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, Table, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ._time import format_ts, parse_ts, utcnow
from .backend import GROUP_BYS, GroupBy
from .errors import InvalidQuery
from .filters import CostFilter, CostTotal
from .sql.rows import short_text
from .sql.schema import COST_ROLLUPS_DAILY, COST_ROLLUPS_HOURLY, COST_SNAPSHOTS, MAINTENANCE

if TYPE_CHECKING:
    from .sql.base import SQLBackend

__all__ = [
    "DAY",
    "DEFAULT_GRACE",
    "HOUR",
    "UNKNOWN",
    "WATERMARK",
    "RollupReport",
    "Series",
    "SeriesBucket",
    "SeriesPoint",
    "floor_day",
    "floor_hour",
    "maintenance_state",
    "reopen",
    "roll_up",
    "series",
    "summarize",
]

HOUR = timedelta(hours=1)
"""The hourly rollup's bucket."""

DAY = timedelta(days=1)
"""The daily rollup's bucket (UTC days)."""

DEFAULT_GRACE = timedelta(hours=6)
"""How far before the watermark each run starts again, for snapshots that arrive late."""

UNKNOWN = "(unknown)"
"""The key of costs whose owner or template is not known (rows from an older Router)."""

WATERMARK = "rollup_watermark"
"""The name under which :func:`maintenance_state` gives the rollup watermark."""
HOURLY_FLOOR = "floor:cost_rollups_hourly"
DAILY_FLOOR = "floor:cost_rollups_daily"

SeriesBucket = Literal["hour", "day"]
"""The width of a :func:`series` point."""



def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    """The start of the UTC day ``moment`` falls in."""
    return floor_hour(moment).replace(hour=0)


def _ceil(moment: datetime, floor: Any, step: timedelta) -> datetime:
    start: datetime = floor(moment)
    return start if start == moment else start + step


@dataclass(frozen=True, slots=True)
class RollupReport:
    """What one :func:`roll_up` run did."""

    watermark_before: datetime | None
    watermark: datetime | None
    hours: int
    days: int
    rows: int

    def __str__(self) -> str:
        before = format_ts(self.watermark_before) if self.watermark_before else "none"
        after = format_ts(self.watermark) if self.watermark else "none"
        return (f"recomputed {self.hours} hourly and {self.days} daily buckets "
                f"({self.rows} rollup rows); watermark {before} -> {after}")


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of a :class:`Series`."""

    bucket: datetime
    cpu_hours: float
    mem_gb_hours: float
    estimated_usd: float
    samples: int


@dataclass(frozen=True, slots=True)
class Series:
    """The points of one key (namespace, owner, template or ``namespace/name``), oldest first."""

    key: str
    points: tuple[SeriesPoint, ...]


# -- maintenance state ------------------------------------------------------------


def _state(conn: Connection) -> dict[str, datetime | None]:
    rows = conn.execute(select(MAINTENANCE.c.name, MAINTENANCE.c.value)).all()
    return {name: parse_ts(value) if value else None for name, value in rows}


def maintenance_state(backend: SQLBackend) -> dict[str, datetime | None]:
    """The rollup watermark and the rollups' purge floors, by name (None when unset)."""
    with backend.connection("maintenance state") as conn, conn.begin():
        return _state(conn)


def _lock_watermark(conn: Connection) -> None:
    """Serialise rollup transactions: lock the watermark row (SQLite's write lock does already)."""
    conn.execute(
        select(MAINTENANCE.c.value).where(MAINTENANCE.c.name == WATERMARK).with_for_update()
    ).all()


def _advance_watermark(conn: Connection, to: datetime) -> None:
    value = format_ts(to)
    conn.execute(
        update(MAINTENANCE)
        .where(MAINTENANCE.c.name == WATERMARK,
               or_(MAINTENANCE.c.value.is_(None), MAINTENANCE.c.value < value))
        .values(value=value)
    )


def reopen(conn: Connection, earliest: datetime) -> None:
    """Move the watermark back to the hour of ``earliest``, a snapshot just written, if past it.

    Called in the transaction that writes cost snapshots. A snapshot in an
    open hour changes nothing (one indexed UPDATE that matches no row).
    """
    value = format_ts(floor_hour(earliest))
    conn.execute(
        update(MAINTENANCE)
        .where(MAINTENANCE.c.name == WATERMARK, MAINTENANCE.c.value > value)
        .values(value=value)
    )


# -- rolling up -------------------------------------------------------------------


def _sums(table: Table, samples: Any) -> list[Any]:
    return [
        func.max(table.c.owner), func.max(table.c.template),
        func.coalesce(func.sum(table.c.cpu_hours), 0.0),
        func.coalesce(func.sum(table.c.mem_gb_hours), 0.0),
        func.coalesce(func.sum(table.c.estimated_usd), 0.0),
        samples,
    ]


def _recompute(conn: Connection, target: Table, source: Table, time: Any, samples: Any,
               start: datetime, width: timedelta) -> int:
    """Replace ``target``'s rows for the bucket at ``start`` by sums over ``source``."""
    ns = func.coalesce(source.c.namespace, "")
    sid = func.coalesce(source.c.sandbox_id, "")
    bucket = format_ts(start)
    rows = conn.execute(
        select(ns, sid, *_sums(source, samples))
        .where(time >= bucket, time < format_ts(start + width))
        .group_by(ns, sid)
    ).all()
    conn.execute(delete(target).where(target.c.bucket == bucket))
    if rows:
        conn.execute(insert(target), [
            {"bucket": bucket, "namespace": r[0], "sandbox_id": r[1], "owner": r[2],
             "template": r[3], "cpu_hours": float(r[4]), "mem_gb_hours": float(r[5]),
             "estimated_usd": float(r[6]), "samples": int(r[7])}
            for r in rows
        ])
    return len(rows)


def roll_up(backend: SQLBackend, *, now: datetime | None = None,
            grace: timedelta = DEFAULT_GRACE) -> RollupReport:
    """Bring the rollups up to date: every closed hour from the watermark less ``grace``.

    Each hour, then each complete day touched, is recomputed in its own
    transaction, which also moves the watermark; a run that stops half way
    (a crash, a lost connection) leaves whole buckets, and the next run
    continues. The first run starts at the oldest snapshot; with none yet, it
    sets no watermark.
    """
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative (got {grace})")
    end = floor_hour(now if now is not None else utcnow())
    raw = COST_SNAPSHOTS
    hourly = COST_ROLLUPS_HOURLY
    with backend.connection("cost rollup") as conn:
        with conn.begin():
            before = _state(conn).get(WATERMARK)
            oldest = conn.execute(select(func.min(raw.c.ts))).scalar() if before is None else None
        if before is not None:
            start = floor_hour(min(before, end) - grace)
        elif oldest is not None:
            start = floor_hour(parse_ts(oldest))
        else:
            start = end
        hours = rows = days = 0
        hour = start
        while hour < end:
            with backend.begin_write(conn):
                _lock_watermark(conn)
                rows += _recompute(conn, hourly, raw, raw.c.ts, func.count(), hour, HOUR)
                _advance_watermark(conn, hour + HOUR)
            hour += HOUR
            hours += 1
        day = floor_day(start)
        while day + DAY <= end:
            with backend.begin_write(conn):
                _lock_watermark(conn)
                rows += _recompute(conn, COST_ROLLUPS_DAILY, hourly, hourly.c.bucket,
                                   func.coalesce(func.sum(hourly.c.samples), 0), day, DAY)
            day += DAY
            days += 1
        if hours == 0 and (before is not None or oldest is not None):
            # No snapshot at all yet: no watermark either, so that the first rows, however
            # old (a Router started on an empty store, then history imported), are rolled up.
            with backend.begin_write(conn):
                _lock_watermark(conn)
                _advance_watermark(conn, end)
        with conn.begin():
            after = _state(conn).get(WATERMARK)
    return RollupReport(before, after, hours, days, rows)


# -- reading ----------------------------------------------------------------------

_Segment = tuple[Table, datetime, datetime | None]


def _segments(since: datetime, until: datetime | None, state: dict[str, datetime | None],
              use_daily: bool) -> list[_Segment]:
    """Cut [since, until) into rollup buckets that can be trusted and raw stretches."""
    mark = state.get(WATERMARK)
    hourly_floor = state.get(HOURLY_FLOOR)
    daily_floor = state.get(DAILY_FLOOR)
    out: list[_Segment] = []

    def raw(lo: datetime, hi: datetime | None) -> None:
        if hi is None or lo < hi:
            out.append((COST_SNAPSHOTS, lo, hi))

    def hours(lo: datetime, hi: datetime | None) -> None:
        if mark is None:
            raw(lo, hi)
            return
        first = _ceil(max(lo, hourly_floor or lo), floor_hour, HOUR)
        last = floor_hour(mark if hi is None else min(hi, mark))
        if first >= last:
            raw(lo, hi)
            return
        raw(lo, first)
        out.append((COST_ROLLUPS_HOURLY, first, last))
        raw(last, hi)

    if use_daily and mark is not None:
        first = _ceil(max(since, daily_floor or since), floor_day, DAY)
        last = floor_day(mark if until is None else min(until, mark))
        if first < last:
            if since < first:
                hours(since, first)
            out.append((COST_ROLLUPS_DAILY, first, last))
            if until is None or last < until:
                hours(last, until)
            return out
    hours(since, until)
    return out


def _earliest(conn: Connection) -> datetime | None:
    firsts = [
        conn.execute(select(func.min(COST_SNAPSHOTS.c.ts))).scalar(),
        conn.execute(select(func.min(COST_ROLLUPS_HOURLY.c.bucket))).scalar(),
        conn.execute(select(func.min(COST_ROLLUPS_DAILY.c.bucket))).scalar(),
    ]
    found = [parse_ts(f) for f in firsts if f]
    return min(found) if found else None


def _keys(table: Table, group_by: GroupBy) -> list[ColumnElement[Any]]:
    if group_by == "sandbox":
        return [func.coalesce(table.c.namespace, ""), func.coalesce(table.c.sandbox_id, "")]
    column = {"namespace": "namespace", "owner": "owner", "template": "template"}[group_by]
    return [func.coalesce(table.c[column], "")]


def _key(group_by: GroupBy, parts: Sequence[str]) -> str:
    if group_by == "sandbox":
        return f"{parts[0]}/{parts[1]}"
    if group_by in ("owner", "template") and not parts[0]:
        return UNKNOWN
    return parts[0]


_Sums = dict[tuple[str, str], list[Any]]


def _collect(conn: Connection, query: CostFilter, group_by: GroupBy,
             prefix: int | None, use_daily: bool) -> _Sums:
    """Sums per (bucket prefix, key) over the filter, from the rollups and the raw edges."""
    if group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)} (got {group_by!r})")
    if query.cursor is not None:
        raise InvalidQuery("cost totals are not paged; drop the cursor")
    state = _state(conn)
    since = query.since if query.since is not None else _earliest(conn)
    sums: _Sums = {}
    if since is None or (query.until is not None and since >= query.until):
        return sums
    filters = {name: short_text(value) for name in ("sandbox_id", "namespace", "owner", "template")
               if (value := getattr(query, name)) is not None}
    for table, lo, hi in _segments(since, query.until, state, use_daily):
        is_raw = table is COST_SNAPSHOTS
        time = table.c.ts if is_raw else table.c.bucket
        samples = func.count() if is_raw else func.coalesce(func.sum(table.c.samples), 0)
        keys = _keys(table, group_by)
        group: list[ColumnElement[Any]] = list(keys)
        if prefix is not None:
            group.insert(0, func.substr(time, 1, prefix))
        terms: list[ColumnElement[bool]] = [table.c[n] == v for n, v in filters.items()]
        terms.append(time >= format_ts(lo))
        if hi is not None:
            terms.append(time < format_ts(hi))
        stmt = (
            select(*group, func.coalesce(func.sum(table.c.cpu_hours), 0.0),
                   func.coalesce(func.sum(table.c.mem_gb_hours), 0.0),
                   func.coalesce(func.sum(table.c.estimated_usd), 0.0), samples)
            .where(*terms)
            .group_by(*group)
        )
        for row in conn.execute(stmt):
            values = list(row)
            bucket = str(values.pop(0)) if prefix is not None else ""
            key = _key(group_by, [str(v) for v in values[: len(keys)]])
            cpu, mem, usd, n = values[len(keys):]
            acc = sums.setdefault((bucket, key), [0.0, 0.0, 0.0, 0])
            acc[0] += float(cpu)
            acc[1] += float(mem)
            acc[2] += float(usd)
            acc[3] += int(n)
    return sums


def _totals(items: Iterable[tuple[str, list[Any]]]) -> list[CostTotal]:
    merged: dict[str, list[Any]] = {}
    for key, (cpu, mem, usd, n) in items:
        acc = merged.setdefault(key, [0.0, 0.0, 0.0, 0])
        acc[0] += cpu
        acc[1] += mem
        acc[2] += usd
        acc[3] += n
    totals = [CostTotal(key, cpu, mem, usd, n) for key, (cpu, mem, usd, n) in merged.items()]
    totals.sort(key=lambda t: (-t.estimated_usd, t.key))
    return totals


def summarize(backend: SQLBackend, query: CostFilter, group_by: GroupBy = "sandbox"
              ) -> list[CostTotal]:
    """Summed costs per group over the filter's window, the most expensive first, then by key.

    Equal to the sum over the raw snapshots (to rounding) for every window,
    including one that starts and ends mid-hour. Raises ``ValueError`` for an
    unknown ``group_by`` and :class:`InvalidQuery` for a filter with a cursor.
    """
    if group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)} (got {group_by!r})")
    with backend.connection("cost totals") as conn, conn.begin():
        sums = _collect(conn, query, group_by, None, use_daily=True)
    return _totals((key, acc) for (_, key), acc in sums.items())


def series(backend: SQLBackend, query: CostFilter, bucket: SeriesBucket = "day",
           group_by: GroupBy = "namespace") -> tuple[list[Series], list[CostTotal]]:
    """Costs per UTC hour or day and group over the filter's window, and each group's totals.

    The series come in the totals' order (the most expensive first); each
    one's points oldest first, with a point only for buckets that have costs.
    """
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be 'hour' or 'day' (got {bucket!r})")
    if group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)} (got {group_by!r})")
    prefix, suffix = (13, ":00:00Z") if bucket == "hour" else (10, "T00:00:00Z")
    with backend.connection("cost series") as conn, conn.begin():
        sums = _collect(conn, query, group_by, prefix, use_daily=bucket == "day")
    totals = _totals((key, acc) for (_, key), acc in sums.items())
    points: dict[str, list[SeriesPoint]] = {}
    for (start, key), (cpu, mem, usd, n) in sorted(sums.items()):
        points.setdefault(key, []).append(
            SeriesPoint(parse_ts(start + suffix), cpu, mem, usd, n))
    return [Series(t.key, tuple(points[t.key])) for t in totals], totals
