"""Retention: batched purges, the watermark guard, the lease, and the maintenance thread."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from realdb import IsolatedDatabase
from sqlalchemy import create_engine, text

from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    CostFilter,
    CostSnapshot,
    SQLBackend,
    open_backend,
)
from agenttier_router.storage.maintenance import Maintenance
from agenttier_router.storage.retention import (
    RetentionPolicy,
    acquire_lease,
    parse_retention,
    purge,
    release_lease,
)
from agenttier_router.storage.rollups import floor_hour, maintenance_state, roll_up, summarize

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def audit_rows(n: int, start: datetime, step: timedelta) -> list[AuditEvent]:
    # Pairs of events share a timestamp, so that (ts, id) order matters at batch edges.
    return [AuditEvent(actor=f"u{i}", action="create", time=start + step * (i // 2))
            for i in range(n)]


def count(database: IsolatedDatabase, sql: str) -> int:
    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def test_parse_retention() -> None:
    assert parse_retention("365d") == timedelta(days=365)
    assert parse_retention("12H") == timedelta(hours=12)
    assert parse_retention("2w") == timedelta(weeks=2)
    assert parse_retention("0") is None
    with pytest.raises(ValueError, match="negative"):
        parse_retention("-5d", "--retention-audit")
    for bad in ("", "abc", "5", "1y", "5d3h", "1.5d"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_retention(bad)
    with pytest.raises(ValueError, match="longer than the calendar"):
        parse_retention("99999999999d")


def test_a_retention_shorter_than_one_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="--retention-audit: 0:30:00 is shorter than one rollup"):
        RetentionPolicy.from_settings({"audit": "30m"})
    with pytest.raises(ValueError, match=r"rollups-daily.*1 day"):
        RetentionPolicy.from_settings({"rollups-daily": "23h"})
    with pytest.raises(ValueError, match="unknown retention kinds: logs"):
        RetentionPolicy.from_settings({"logs": "1d"})
    policy = RetentionPolicy.from_settings({"audit": "1h", "rollups-daily": "1d", "costs": "0"})
    assert policy.audit == timedelta(hours=1) and policy.costs is None
    assert RetentionPolicy().forever and not policy.forever


def test_purge_deletes_in_ordered_batches_and_keeps_newer_rows(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    rows = audit_rows(41, NOW - timedelta(days=30), timedelta(days=1))  # 21 days of pairs
    backend.write_batch(rows)
    cutoff = NOW - timedelta(days=15)
    older = [r for r in rows if r.time < cutoff]
    batches: list[tuple[str, int]] = []
    waits: list[float] = []
    report = purge(backend, RetentionPolicy(audit=timedelta(days=15)), now=NOW, batch=7,
                   progress=lambda table, n: batches.append((table, n)), pause=1.0,
                   wait=waits.append)
    assert report.skipped == ""
    [result] = report.results
    assert (result.table, result.cutoff, result.rows) == ("audit_events", cutoff, len(older))
    assert len(older) == 30
    assert batches == [("audit_events", n) for n in (7, 7, 7, 7, 2)]
    # A pause after every batch but the last, as long as the batch took (pause=1.0).
    # Without pause (the default is 0) it never waits: see the next test.
    assert len(waits) == 4 and all(w > 0 for w in waits)
    kept = backend.list_audit_events(AuditFilter(limit=1000)).items
    assert {e.event_id for e in kept} == {r.event_id for r in rows if r.time >= cutoff}
    event = result.audit_event()
    assert (event.actor, event.action, event.resource) == ("system", "purge", "audit_events")
    assert '"rows":' + str(len(older)) in event.details
    # Run again: nothing more to delete.
    assert purge(backend, RetentionPolicy(audit=timedelta(days=15)), now=NOW).results[0].rows == 0


def test_the_pause_between_batches_scales_and_can_be_off(backend: SQLBackend) -> None:
    backend.write_batch(audit_rows(20, NOW - timedelta(days=30), timedelta(days=1)))
    waits: list[float] = []
    report = purge(backend, RetentionPolicy(audit=timedelta(days=25)), now=NOW, batch=4,
                   wait=waits.append)
    assert report.results[0].rows == 10 and waits == []
    report = purge(backend, RetentionPolicy(audit=timedelta(days=15)), now=NOW, batch=4,
                   pause=2.5, wait=waits.append)
    assert report.results[0].rows == 10 and len(waits) == 2 and all(w > 0 for w in waits)
    for bad in (-1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="pause must be a number >= 0"):
            purge(backend, RetentionPolicy(audit=timedelta(days=1)), now=NOW, pause=bad)  # type: ignore[arg-type]


def test_each_batch_starts_at_the_last_edge_and_a_late_row_waits_for_the_next_run(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    start = NOW - timedelta(days=30)
    backend.write_batch(audit_rows(12, start, timedelta(days=1)))  # days -30 .. -25, in pairs
    late = AuditEvent(actor="late", action="create", time=start)  # replayed after batch one

    def write_late(table: str, rows: int) -> None:
        if rows and count(database, "SELECT COUNT(*) FROM audit_events WHERE actor = 'late'") == 0:
            backend.write_batch([late])

    first = purge(backend, RetentionPolicy(audit=timedelta(days=20)), now=NOW, batch=4,
                  progress=write_late)
    assert first.results[0].rows == 12
    left = backend.list_audit_events(AuditFilter(limit=10)).items
    assert [e.event_id for e in left] == [late.event_id]  # before the first batch's edge
    second = purge(backend, RetentionPolicy(audit=timedelta(days=20)), now=NOW, batch=4)
    assert second.results[0].rows == 1
    assert count(database, "SELECT COUNT(*) FROM audit_events") == 0


def test_closing_maintenance_ends_a_pause_between_batches(backend: SQLBackend,
                                                          database: IsolatedDatabase) -> None:
    now = datetime.now(UTC)
    backend.write_batch(audit_rows(10, now - timedelta(days=20), timedelta(days=1)))
    # A pause of a day per second a batch took: the purge waits until close() ends it.
    maintenance = Maintenance(backend, RetentionPolicy(audit=timedelta(days=2)), interval=3600,
                              batch=2, pause=86400.0)
    maintenance.start()
    deadline = time.monotonic() + 60
    while count(database, "SELECT COUNT(*) FROM audit_events") > 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    maintenance.close()
    assert maintenance.last is not None and maintenance.last.error == "stopped by close()"
    assert count(database, "SELECT COUNT(*) FROM audit_events") == 8  # one batch, then the pause


def test_dry_run_counts_and_deletes_nothing(backend: SQLBackend,
                                            database: IsolatedDatabase) -> None:
    backend.write_batch(audit_rows(10, NOW - timedelta(days=10), timedelta(days=1)))
    report = purge(backend, RetentionPolicy(audit=timedelta(days=7), sandbox_events=None),
                   now=NOW, dry_run=True)
    assert [(r.table, r.rows, r.dry_run) for r in report.results] == [("audit_events", 6, True)]
    assert count(database, "SELECT COUNT(*) FROM audit_events") == 10


def test_raw_costs_are_kept_until_the_rollups_hold_them(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    start = NOW - timedelta(days=3)
    snapshots = [CostSnapshot(sandbox_id="sb", namespace="ns", owner="al", estimated_usd=0.01,
                              cpu_hours=0.1, time=start + timedelta(minutes=30 * i))
                 for i in range(6 * 24)]  # three days, every 30 minutes
    backend.write_batch(snapshots)
    policy = RetentionPolicy(costs=timedelta(hours=1))
    [before] = purge(backend, policy, now=NOW).results
    assert before.rows == 0 and "not run yet" in before.note
    assert count(database, "SELECT COUNT(*) FROM cost_snapshots") == len(snapshots)

    mark = NOW - timedelta(days=1, minutes=30)  # the rollups have caught up to here only
    roll_up(backend, now=mark)
    [after] = purge(backend, policy, now=NOW, grace=timedelta(hours=6)).results
    safe = datetime(2026, 11, 19, 6, 0, tzinfo=UTC)  # floor_hour(watermark - 6h)
    assert after.cutoff == safe and "watermark" in after.note
    assert after.rows == sum(1 for s in snapshots if s.time < safe)
    assert count(database, "SELECT COUNT(*) FROM cost_snapshots") == sum(
        1 for s in snapshots if s.time >= safe)
    # The totals are still whole: the purged hours come from the rollups. (A
    # window edge inside a purged hour cannot be: only whole hours remain.)
    [total] = summarize(backend, CostFilter(since=floor_hour(start), until=NOW), "owner")
    assert total.samples == len(snapshots)
    assert total.estimated_usd == pytest.approx(0.01 * len(snapshots), rel=1e-9)


def test_purged_rollups_are_never_trusted(backend: SQLBackend) -> None:
    start = NOW - timedelta(days=4)
    snapshots = [CostSnapshot(sandbox_id="sb", namespace="ns", estimated_usd=0.5,
                              time=start + timedelta(minutes=20 * i)) for i in range(3 * 4 * 24)]
    backend.write_batch(snapshots)
    roll_up(backend, now=NOW)
    policy = RetentionPolicy(rollups_hourly=timedelta(days=1), rollups_daily=timedelta(days=2))
    results = {r.table: r for r in purge(backend, policy, now=NOW).results}
    assert results["cost_rollups_hourly"].rows > 0 and results["cost_rollups_daily"].rows > 0
    state = maintenance_state(backend)
    assert state["floor:cost_rollups_hourly"] == results["cost_rollups_hourly"].cutoff
    # The raw rows are all still there, so the totals must still be whole.
    for since in (start, start + timedelta(hours=7, minutes=13)):
        [total] = summarize(backend, CostFilter(since=since, until=NOW), "namespace")
        assert total.samples == sum(1 for s in snapshots if since <= s.time < NOW)


def test_an_interrupted_purge_resumes(backend: SQLBackend, database: IsolatedDatabase) -> None:
    rows = audit_rows(30, NOW - timedelta(days=30), timedelta(days=1))
    backend.write_batch(rows)

    def crash(table: str, n: int) -> None:
        raise KeyboardInterrupt("the process dies between two batches")

    policy = RetentionPolicy(audit=timedelta(days=20))
    with pytest.raises(KeyboardInterrupt):
        purge(backend, policy, now=NOW, batch=4, progress=crash)
    assert count(database, "SELECT COUNT(*) FROM audit_events") == 26  # one batch committed
    # The lease was released on the way out, so the next run goes ahead and finishes.
    report = purge(backend, policy, now=NOW, batch=4)
    older = sum(1 for r in rows if r.time < NOW - timedelta(days=20))
    assert report.results[0].rows == older - 4
    assert count(database, "SELECT COUNT(*) FROM audit_events") == 30 - older


def test_one_runner_at_a_time_through_the_lease(backend: SQLBackend) -> None:
    backend.write_batch(audit_rows(6, NOW - timedelta(days=10), timedelta(days=1)))
    policy = RetentionPolicy(audit=timedelta(days=1))
    assert acquire_lease(backend, "other-router", timedelta(minutes=5), NOW) == ""
    skipped = purge(backend, policy, now=NOW)
    assert (skipped.skipped, skipped.results) == ("other-router", ())
    # An expired lease is taken over.
    later = purge(backend, policy, now=NOW + timedelta(minutes=6))
    assert later.skipped == "" and later.results[0].rows == 6
    assert acquire_lease(backend, "third", timedelta(minutes=5), NOW) == ""
    release_lease(backend, "third")
    assert acquire_lease(backend, "fourth", timedelta(minutes=5), NOW) == ""


def test_two_runners_ignoring_the_lease_are_safe(store_url: str,
                                                 database: IsolatedDatabase) -> None:
    first, second = open_backend(store_url), open_backend(store_url)
    assert isinstance(first, SQLBackend) and isinstance(second, SQLBackend)
    try:
        rows = audit_rows(400, NOW - timedelta(days=40), timedelta(hours=4))
        first.write_batch(rows)
        older = sum(1 for r in rows if r.time < NOW - timedelta(days=10))
        deleted: list[int] = []
        errors: list[BaseException] = []

        def run(backend: SQLBackend) -> None:
            try:
                report = purge(backend, RetentionPolicy(audit=timedelta(days=10)), now=NOW,
                               batch=25, lease=None)
                deleted.append(report.results[0].rows)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(b,)) for b in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            # MySQL may pick one runner as a deadlock victim; that one stops, nothing is lost.
            assert all("eadlock" in str(e) for e in errors), errors
            purge(first, RetentionPolicy(audit=timedelta(days=10)), now=NOW, lease=None)
        else:
            assert sum(deleted) == older
        assert count(database, "SELECT COUNT(*) FROM audit_events") == len(rows) - older
    finally:
        first.close()
        second.close()


def test_maintenance_rolls_up_purges_and_audits(backend: SQLBackend,
                                                database: IsolatedDatabase) -> None:
    now = datetime.now(UTC)
    backend.write_batch(audit_rows(4, now - timedelta(days=9), timedelta(days=1)))
    backend.write_batch([CostSnapshot(sandbox_id="sb", estimated_usd=1.0,
                                      time=now - timedelta(hours=3))])
    events: list[AuditEvent] = []
    maintenance = Maintenance(backend, RetentionPolicy(audit=timedelta(days=2)), interval=3600,
                              audit=events.append)
    result = maintenance.run_once()
    assert result.error == "" and result.rollup is not None and result.rollup.hours == 3
    assert result.purge is not None and result.purge.results[0].rows == 4
    assert [(e.actor, e.action, e.resource) for e in events] == [
        ("system", "purge", "audit_events")]
    assert count(database, "SELECT COUNT(*) FROM cost_rollups_hourly") == 1

    threaded = Maintenance(backend, interval=3600)
    threaded.start()
    deadline = time.monotonic() + 60
    while threaded.last is None and time.monotonic() < deadline:
        time.sleep(0.05)
    threaded.close()
    threaded.close()
    assert threaded.last is not None and threaded.last.error == ""
    with pytest.raises(RuntimeError):
        threaded.start()
    with pytest.raises(ValueError, match="interval"):
        Maintenance(backend, interval=0)


def test_a_maintenance_round_that_fails_is_reported_not_raised(tmp_path: object) -> None:
    backend = open_backend("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert isinstance(backend, SQLBackend)
    try:
        result = Maintenance(backend, RetentionPolicy(audit=timedelta(days=1))).run_once()
        assert result.rollup is None and result.error
    finally:
        backend.close()
