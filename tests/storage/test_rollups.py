"""Costs by owner and template, and the hourly and daily rollups, on every real backend."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from realdb import IsolatedDatabase
from sqlalchemy import create_engine, text

from agenttier_router.storage import (
    CostFilter,
    CostSnapshot,
    InvalidQuery,
    SQLBackend,
    open_backend,
)
from agenttier_router.storage.rollups import (
    UNKNOWN,
    maintenance_state,
    roll_up,
    series,
    summarize,
)
from agenttier_router.storage.sql import migrate

T0 = datetime(2026, 11, 1, 22, 0, tzinfo=UTC)  # two hours before a UTC midnight


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fleet(hours: int = 52, every: int = 10, seed: int = 7) -> list[CostSnapshot]:
    """Snapshots of five sandboxes every ``every`` minutes; one in two namespaces, one ownerless."""
    rng = random.Random(seed)
    sandboxes = [
        ("team-a", "samename", "alice", "python"),
        ("team-b", "samename", "bob", "python"),
        ("team-a", "big", "alice", "gpu"),
        ("team-c", "solo", "carol", "node"),
        ("team-c", "legacy", "", ""),
    ]
    out = []
    for minute in range(0, hours * 60, every):
        for ns, name, owner, template in sandboxes:
            cpu = rng.uniform(0.001, 0.1)
            out.append(CostSnapshot(
                sandbox_id=name, namespace=ns, owner=owner, template=template, cpu_hours=cpu,
                mem_gb_hours=cpu * 2, estimated_usd=cpu * rng.uniform(0.02, 0.05),
                time=at(minute + rng.uniform(0, every - 0.01)),
            ))
    return out


def key_of(s: CostSnapshot, group_by: str) -> str:
    if group_by == "sandbox":
        return f"{s.namespace}/{s.sandbox_id}"
    value: str = getattr(s, group_by)
    return value or (UNKNOWN if group_by in ("owner", "template") else "")


def raw_totals(snapshots: list[CostSnapshot], group_by: str, since: datetime | None,
               until: datetime | None, keep: Callable[[CostSnapshot], bool] = lambda s: True
               ) -> dict[str, tuple[float, float, float, int]]:
    groups: dict[str, list[CostSnapshot]] = {}
    for s in snapshots:
        if (since is None or s.time >= since) and (until is None or s.time < until) and keep(s):
            groups.setdefault(key_of(s, group_by), []).append(s)
    return {k: (math.fsum(s.cpu_hours for s in v), math.fsum(s.mem_gb_hours for s in v),
                math.fsum(s.estimated_usd for s in v), len(v)) for k, v in groups.items()}


def assert_equal_totals(backend: SQLBackend, snapshots: list[CostSnapshot], group_by: str,
                        since: datetime | None, until: datetime | None, **filters: str) -> None:
    got = {t.key: (t.cpu_hours, t.mem_gb_hours, t.estimated_usd, t.samples)
           for t in summarize(backend, CostFilter(since=since, until=until, **filters), group_by)}  # type: ignore[arg-type]
    want = raw_totals(snapshots, group_by, since, until,
                      lambda s: all(getattr(s, k) == v for k, v in filters.items()))
    assert got.keys() == want.keys()
    for key, (cpu, mem, usd, n) in want.items():
        assert got[key][3] == n, key
        assert got[key][:3] == pytest.approx((cpu, mem, usd), rel=1e-9, abs=0), key


def count(database: IsolatedDatabase, sql: str) -> int:
    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def test_owner_and_template_are_stored_filtered_and_grouped(backend: SQLBackend) -> None:
    backend.write_batch([
        CostSnapshot(sandbox_id="samename", namespace="team-a", owner="alice", template="py",
                     cpu_hours=1, estimated_usd=0.1, time=at(1)),
        CostSnapshot(sandbox_id="samename", namespace="team-b", owner="bob", template="py",
                     cpu_hours=2, estimated_usd=0.2, time=at(2)),
        CostSnapshot(sandbox_id="old", namespace="team-b", cpu_hours=4, estimated_usd=0.4,
                     time=at(3)),
    ])
    page = backend.list_cost_snapshots(CostFilter(owner="bob"))
    assert [(s.sandbox_id, s.namespace, s.owner, s.template) for s in page.items] == [
        ("samename", "team-b", "bob", "py")]
    assert [s.owner for s in backend.list_cost_snapshots(CostFilter()).items] == ["", "bob",
                                                                                  "alice"]
    assert len(backend.list_cost_snapshots(CostFilter(template="py")).items) == 2
    # One name in two namespaces is two sandboxes (issue 9, item 12).
    by_sandbox = backend.summarize_costs(CostFilter(), "sandbox")
    assert [(t.key, t.samples) for t in by_sandbox] == [
        ("team-b/old", 1), ("team-b/samename", 1), ("team-a/samename", 1)]
    by_owner = backend.summarize_costs(CostFilter(), "owner")
    assert [(t.key, t.estimated_usd) for t in by_owner] == [
        (UNKNOWN, pytest.approx(0.4)), ("bob", pytest.approx(0.2)), ("alice", pytest.approx(0.1))]
    by_template = backend.summarize_costs(CostFilter(namespace="team-b"), "template")
    assert [t.key for t in by_template] == [UNKNOWN, "py"]
    with pytest.raises(InvalidQuery):
        backend.summarize_costs(CostFilter(cursor=backend.list_cost_snapshots(
            CostFilter(limit=1)).next_cursor))


def test_upgrade_from_0002_keeps_cost_rows_and_groups_them_under_unknown(
    database: IsolatedDatabase,
) -> None:
    engine = create_engine(database.url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrate._config(conn), "0002")
            conn.execute(text(
                "INSERT INTO cost_snapshots (ts, event_id, sandbox_id, namespace, cpu_hours, "
                "mem_gb_hours, estimated_usd) VALUES "
                "('2026-11-01T22:10:00.000000Z', 'e1', 'sb-1', 'ns', 0.5, 1, 0.02), "
                "('2026-11-01T23:10:00.000000Z', 'e2', 'sb-1', 'ns', 0.5, 1, 0.03)"))
    finally:
        engine.dispose()
    backend = open_backend(database.url)
    assert isinstance(backend, SQLBackend)
    try:
        assert backend.upgrade().current == "0003"
        # The old rows are all there, and a BI query on the old columns still runs.
        assert count(database, "SELECT COUNT(*) FROM cost_snapshots WHERE owner IS NULL "
                               "AND template IS NULL") == 2
        assert count(database, "SELECT COUNT(*) FROM cost_snapshots WHERE sandbox_id = 'sb-1' "
                               "AND namespace = 'ns' AND cpu_hours > 0") == 2
        backend.write_batch([CostSnapshot(sandbox_id="sb-2", namespace="ns", owner="alice",
                                          template="py", estimated_usd=0.5,
                                          time=at(130))])
        report = roll_up(backend, now=at(240))
        assert report.hours == 4 and report.watermark == at(240)
        totals = backend.summarize_costs(CostFilter(), "owner")
        assert [(t.key, t.samples) for t in totals] == [("alice", 1), (UNKNOWN, 2)]
        assert totals[1].estimated_usd == pytest.approx(0.05)
    finally:
        backend.close()


def test_totals_from_rollups_equal_the_raw_sum_mid_hour_windows(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    snapshots = fleet()
    backend.write_batch(snapshots)
    report = roll_up(backend, now=at(52 * 60 + 5))
    # 22:00 on day 1 to 02:00 on day 4: 52 hours, and days 1 (two hours), 2 and 3.
    assert (report.hours, report.days) == (52, 3)
    assert count(database, "SELECT COUNT(*) FROM cost_rollups_hourly") == 52 * 5
    assert count(database, "SELECT COUNT(*) FROM cost_rollups_daily") == 3 * 5
    windows = [
        (at(17.5), at(50 * 60 + 33.25)),   # mid-hour to mid-hour, across two midnights
        (at(125), at(26 * 60 + 59)),       # a whole day and mid-hour edges
        (at(61), at(119)),                 # inside one hour: raw only
        (None, at(30 * 60 + 1)),
        (at(3 * 60 + 30), None),           # open end: past the watermark too
        (None, None),
    ]
    for since, until in windows:
        for group_by in ("sandbox", "namespace", "owner", "template"):
            assert_equal_totals(backend, snapshots, group_by, since, until)
    assert_equal_totals(backend, snapshots, "owner", at(17.5), at(50 * 60 + 33.25),
                        namespace="team-a")
    assert_equal_totals(backend, snapshots, "sandbox", at(17.5), None, owner="bob")


def test_totals_read_the_rollups_not_the_raw_rows(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    snapshots = fleet(hours=30)
    backend.write_batch(snapshots)
    roll_up(backend, now=at(30 * 60))
    since, until = at(30), at(29 * 60 + 30)
    before = summarize(backend, CostFilter(since=since, until=until), "namespace")
    # Raw rows count at the edges: one more at the start changes the total.
    backend.write_batch([CostSnapshot(sandbox_id="x", namespace="team-a", estimated_usd=1.0,
                                      time=at(45))])
    roll_up(backend, now=at(30 * 60))  # the late row reopened its hour: roll it up again
    after = summarize(backend, CostFilter(since=since, until=until), "namespace")
    assert ({t.key: t.samples for t in after}["team-a"]
            == {t.key: t.samples for t in before}["team-a"] + 1)
    # Remove the raw rows of the whole hours between the edges: the totals
    # cannot change if they come from the rollups.
    database.execute("DELETE FROM cost_snapshots WHERE ts >= '2026-11-01T23:00:00.000000Z' "
                     "AND ts < '2026-11-03T03:00:00.000000Z'")
    kept = summarize(backend, CostFilter(since=since, until=until), "namespace")
    assert [(t.key, t.samples) for t in kept] == [(t.key, t.samples) for t in after]
    for got, want in zip(kept, after, strict=True):  # MySQL may sum in another order
        assert math.isclose(got.estimated_usd, want.estimated_usd, rel_tol=1e-9)
        assert math.isclose(got.cpu_hours, want.cpu_hours, rel_tol=1e-9)


def test_roll_up_is_idempotent_and_counts_late_rows_within_the_grace(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    snapshots = fleet(hours=5)
    backend.write_batch(snapshots)
    first = roll_up(backend, now=at(5 * 60))
    rows = "SELECT COUNT(*) FROM cost_rollups_hourly"
    assert first.hours == 5 and count(database, rows) == 25
    again = roll_up(backend, now=at(5 * 60), grace=timedelta(hours=2))
    assert again.hours == 2 and again.watermark == first.watermark
    assert count(database, rows) == 25
    # A snapshot replayed late, into an hour already rolled up, inside the grace.
    late = CostSnapshot(sandbox_id="late", namespace="team-z", owner="zoe", estimated_usd=2.0,
                        time=at(3 * 60 + 10))
    backend.write_batch([late])
    roll_up(backend, now=at(5 * 60 + 30), grace=timedelta(hours=3))
    assert_equal_totals(backend, [*snapshots, late], "owner", at(1), at(5 * 60))
    assert maintenance_state(backend)["rollup_watermark"] == at(5 * 60)


def test_a_snapshot_later_than_the_grace_reopens_its_hour(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    """However late a snapshot comes (a spool replayed after a day), totals count it."""
    snapshots = fleet(hours=30)
    backend.write_batch(snapshots)
    roll_up(backend, now=at(30 * 60))
    assert maintenance_state(backend)["rollup_watermark"] == at(30 * 60)
    late = CostSnapshot(sandbox_id="late", namespace="team-z", owner="zoe", estimated_usd=2.5,
                        cpu_hours=0.25, time=at(2 * 60 + 30))  # 27.5 hours behind
    backend.write_batch([late])
    # The write moved the watermark back to the late hour: reads take it raw at once.
    assert maintenance_state(backend)["rollup_watermark"] == at(2 * 60)
    assert_equal_totals(backend, [*snapshots, late], "owner", at(1), at(30 * 60))
    # A run with the default grace recomputes from there; the rollups hold the row.
    report = roll_up(backend, now=at(30 * 60 + 5))
    assert report.watermark == at(30 * 60) and report.hours == 28 + 6
    zoe = "SELECT COUNT(*) FROM cost_rollups_hourly WHERE owner = 'zoe'"
    assert count(database, zoe) == 1
    assert_equal_totals(backend, [*snapshots, late], "owner", at(1), at(30 * 60))
    # A snapshot in an hour not yet rolled up moves nothing.
    backend.write_batch([CostSnapshot(sandbox_id="now", namespace="team-z",
                                      time=at(30 * 60 + 1))])
    assert maintenance_state(backend)["rollup_watermark"] == at(30 * 60)


def test_a_rollup_of_an_empty_store_sets_no_watermark_so_older_rows_count_later(
    backend: SQLBackend,
) -> None:
    """A Router started on an empty store rolls up before any history is imported."""
    later = at(17 * 60)  # the five hours of history end more than the grace before it
    empty = roll_up(backend, now=later)
    assert empty.hours == 0 and empty.watermark is None
    assert maintenance_state(backend).get("rollup_watermark") is None
    snapshots = fleet(hours=5)
    backend.write_batch(snapshots)
    report = roll_up(backend, now=later)
    assert report.hours == 17 and report.watermark == later
    assert_equal_totals(backend, snapshots, "namespace", at(1), at(5 * 60))


def test_two_rollups_at_once_write_the_same_rows(store_url: str, database: IsolatedDatabase
                                                 ) -> None:
    snapshots = fleet(hours=26)
    first = open_backend(store_url)
    second = open_backend(store_url)
    assert isinstance(first, SQLBackend) and isinstance(second, SQLBackend)
    try:
        first.write_batch(snapshots)
        errors: list[BaseException] = []

        def run(backend: SQLBackend) -> None:
            try:
                roll_up(backend, now=at(26 * 60))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(b,)) for b in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert count(database, "SELECT COUNT(*) FROM cost_rollups_hourly") == 26 * 5
        assert count(database, "SELECT COUNT(*) FROM cost_rollups_daily") == 2 * 5
        assert_equal_totals(first, snapshots, "sandbox", at(7), at(25 * 60 + 7))
    finally:
        first.close()
        second.close()


def test_series_by_hour_and_day(backend: SQLBackend) -> None:
    snapshots = fleet(hours=28)
    backend.write_batch(snapshots)
    roll_up(backend, now=at(28 * 60))
    since, until = at(30), at(27 * 60 + 30)
    for bucket, width in (("hour", timedelta(hours=1)), ("day", timedelta(days=1))):
        got, totals = series(backend, CostFilter(since=since, until=until), bucket, "owner")  # type: ignore[arg-type]
        assert [s.key for s in got] == [t.key for t in totals]
        for line in got:
            assert [p.bucket for p in line.points] == sorted(p.bucket for p in line.points)
            for point in line.points:
                lo, hi = max(point.bucket, since), min(point.bucket + width, until)
                want = raw_totals(snapshots, "owner", lo, hi)[line.key]
                assert point.samples == want[3]
                assert point.estimated_usd == pytest.approx(want[2], rel=1e-9, abs=0)
        want_totals = raw_totals(snapshots, "owner", since, until)
        assert {t.key: t.samples for t in totals} == {k: v[3] for k, v in want_totals.items()}
    day, _ = series(backend, CostFilter(since=since, until=until), "day", "sandbox")
    assert [p.bucket for p in day[0].points] == [datetime(2026, 11, d, tzinfo=UTC)
                                                 for d in (1, 2, 3)]
    with pytest.raises(ValueError, match="bucket"):
        series(backend, CostFilter(), "week", "owner")  # type: ignore[arg-type]


def test_a_snapshot_rebuilt_without_owner_and_template_is_stored_as_unknown(
    backend: SQLBackend,
) -> None:
    # What the spool gives back for a snapshot written before owner and template existed.
    old = object.__new__(CostSnapshot)
    for name, value in (("sandbox_id", "sb"), ("namespace", "ns"), ("cpu_hours", 1.0),
                        ("mem_gb_hours", 0.0), ("estimated_usd", 0.5), ("time", at(1)),
                        ("event_id", "e-old")):
        object.__setattr__(old, name, value)
    assert (old.owner, old.template) == ("", "")
    backend.write_batch([old])
    [total] = backend.summarize_costs(CostFilter(), "template")
    assert (total.key, total.samples) == (UNKNOWN, 1)
    with pytest.raises(AttributeError, match="nope"):
        old.nope  # noqa: B018
