"""The backend contract, on every real backend: write, filter, order, page, sum."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    CostFilter,
    CostSnapshot,
    CostTotal,
    NoopBackend,
    Page,
    SandboxEvent,
    SandboxEventFilter,
    SQLBackend,
    StorageError,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def all_audit(backend: SQLBackend, **fields: object) -> list[AuditEvent]:
    """Every audit event matching ``fields``, following cursors to the end."""
    items: list[AuditEvent] = []
    cursor = None
    while True:
        page = backend.list_audit_events(AuditFilter(**fields, cursor=cursor))  # type: ignore[arg-type]
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def test_round_trip_of_every_record_type(backend: SQLBackend) -> None:
    audit = AuditEvent(
        actor="alice", action="exec", resource="sandbox", sandbox_id="sb-1", namespace="team-a",
        outcome="denied", details={"command": "ls -la", "exitCode": 0, "note": "ünïcødé ✓"},
        time=at(0.000001),
    )
    event = SandboxEvent(
        sandbox_id="sb-1", sandbox_name="my-box", namespace="team-a", phase="Running",
        reason="Started", message="container started", time=at(1),
    )
    cost = CostSnapshot(
        sandbox_id="sb-1", namespace="team-a", cpu_hours=0.5, mem_gb_hours=1.25,
        estimated_usd=0.0211, time=at(2),
    )
    backend.write_batch([audit, event, cost])

    assert backend.list_audit_events(AuditFilter()).items == (audit,)
    assert backend.list_sandbox_events(SandboxEventFilter()).items == (event,)
    assert backend.list_cost_snapshots(CostFilter()).items == (cost,)
    assert json.loads(backend.list_audit_events(AuditFilter()).items[0].details)["note"] == (
        "ünïcødé ✓"
    )


def test_record_methods_write_one_each(backend: SQLBackend) -> None:
    backend.record_audit_event(AuditEvent(actor="a", action="create"))
    backend.record_sandbox_event(SandboxEvent(sandbox_id="s", phase="Creating"))
    backend.record_cost_snapshot(CostSnapshot(sandbox_id="s", cpu_hours=1))
    assert len(backend.list_audit_events(AuditFilter()).items) == 1
    assert len(backend.list_sandbox_events(SandboxEventFilter()).items) == 1
    assert len(backend.list_cost_snapshots(CostFilter()).items) == 1


def test_writes_are_idempotent_on_event_id(backend: SQLBackend) -> None:
    batch = [AuditEvent(actor="a", action="create", time=at(i)) for i in range(50)]
    batch += [SandboxEvent(sandbox_id="s", phase="Running", time=at(1))]
    batch += [CostSnapshot(sandbox_id="s", cpu_hours=1, time=at(2))]
    backend.write_batch(batch)
    backend.write_batch(batch)
    backend.write_batch(batch[:10] + batch[:10])  # duplicates inside one batch too
    assert len(all_audit(backend)) == 50
    assert len(backend.list_sandbox_events(SandboxEventFilter()).items) == 1
    assert backend.summarize_costs(CostFilter())[0].samples == 1


def test_a_batch_with_a_bad_item_writes_nothing(backend: SQLBackend) -> None:
    with pytest.raises(TypeError, match="write_batch takes"):
        backend.write_batch([AuditEvent(actor="a", action="b"), "not a record"])  # type: ignore[list-item]
    assert backend.list_audit_events(AuditFilter()).items == ()


def test_newest_first_with_sub_second_precision(backend: SQLBackend) -> None:
    # Go's RFC3339Nano sorted these wrongly as text: …00.15Z < …00.1Z < …00Z.
    times = [T0, T0 + timedelta(milliseconds=100), T0 + timedelta(milliseconds=150),
             T0 + timedelta(microseconds=1), T0 + timedelta(seconds=1)]
    backend.write_batch([AuditEvent(actor="a", action=str(i), time=t) for i, t in enumerate(times)])
    got = [e.time for e in backend.list_audit_events(AuditFilter()).items]
    assert got == sorted(times, reverse=True)


def test_ties_are_broken_stably(backend: SQLBackend) -> None:
    batch = [AuditEvent(actor="a", action=f"a{i}", time=T0) for i in range(30)]
    backend.write_batch(batch)
    first = [e.action for e in all_audit(backend)]
    paged = [e.action for e in all_audit(backend, limit=7)]
    assert first == paged == [f"a{i}" for i in reversed(range(30))]


def test_every_audit_filter(backend: SQLBackend) -> None:
    rows = [
        AuditEvent(actor="alice", action="create", sandbox_id="sb-1", namespace="ns-a",
                   time=at(1)),
        AuditEvent(actor="alice", action="exec", sandbox_id="sb-1", namespace="ns-a", time=at(2),
                   outcome="error"),
        AuditEvent(actor="bob", action="exec", sandbox_id="sb-2", namespace="ns-b", time=at(3),
                   outcome="denied"),
        AuditEvent(actor="bob", action="share", resource="share", sandbox_id="sb-2",
                   namespace="ns-b", time=at(4)),
        AuditEvent(actor="Alice", action="create", sandbox_id="sb-3", namespace="ns-a",
                   time=at(5)),
    ]
    backend.write_batch(rows)

    def actions(**fields: object) -> list[str]:
        return [f"{e.actor}:{e.action}" for e in all_audit(backend, **fields)]

    assert actions(actor="alice") == ["alice:exec", "alice:create"]  # exact, case-sensitive
    assert actions(sandbox_id="sb-2") == ["bob:share", "bob:exec"]
    assert actions(action="exec") == ["bob:exec", "alice:exec"]
    assert actions(resource="share") == ["bob:share"]
    assert actions(namespace="ns-a") == ["Alice:create", "alice:exec", "alice:create"]
    assert actions(outcome="denied") == ["bob:exec"]
    assert actions(outcome="success") == ["Alice:create", "bob:share", "alice:create"]
    assert actions(actor="bob", action="exec", sandbox_id="sb-2") == ["bob:exec"]
    assert actions(actor="nobody") == []


def test_sandbox_event_and_cost_filters(backend: SQLBackend) -> None:
    backend.write_batch([
        SandboxEvent(sandbox_id="sb-1", namespace="a", phase="Creating", time=at(1)),
        SandboxEvent(sandbox_id="sb-1", namespace="a", phase="Running", time=at(2)),
        SandboxEvent(sandbox_id="sb-2", namespace="b", phase="Running", time=at(3)),
        CostSnapshot(sandbox_id="sb-1", namespace="a", estimated_usd=1, time=at(1)),
        CostSnapshot(sandbox_id="sb-2", namespace="b", estimated_usd=2, time=at(2)),
    ])

    def phases(**fields: object) -> list[str]:
        page = backend.list_sandbox_events(SandboxEventFilter(**fields))  # type: ignore[arg-type]
        return [f"{e.sandbox_id}:{e.phase}" for e in page.items]

    assert phases(sandbox_id="sb-1") == ["sb-1:Running", "sb-1:Creating"]
    assert phases(phase="Running") == ["sb-2:Running", "sb-1:Running"]
    assert phases(namespace="b") == ["sb-2:Running"]

    def costs(**fields: object) -> list[str]:
        page = backend.list_cost_snapshots(CostFilter(**fields))  # type: ignore[arg-type]
        return [s.sandbox_id for s in page.items]

    assert costs() == ["sb-2", "sb-1"]
    assert costs(sandbox_id="sb-1") == ["sb-1"]
    assert costs(namespace="b") == ["sb-2"]


def test_window_since_inclusive_until_exclusive(backend: SQLBackend) -> None:
    backend.write_batch([AuditEvent(actor="a", action=str(i), time=at(i)) for i in range(10)])
    got = [e.action for e in all_audit(backend, since=at(3), until=at(7))]
    assert got == ["6", "5", "4", "3"]
    one_us = timedelta(microseconds=1)
    got = [e.action for e in all_audit(backend, since=at(3) + one_us, until=at(4) + one_us)]
    assert got == ["4"]
    assert all_audit(backend, since=at(10)) == []
    # Bounds in another zone mean the same instants.
    plus2 = timezone(timedelta(hours=2))
    window = {"since": at(3).astimezone(plus2), "until": at(7).astimezone(plus2)}
    assert len(all_audit(backend, **window)) == 4


def test_pagination_across_many_pages(backend: SQLBackend) -> None:
    events = [AuditEvent(actor="a", action=str(i), time=at(i // 3)) for i in range(95)]
    backend.write_batch(events)
    pages: list[Page[AuditEvent]] = []
    cursor = None
    while True:
        page = backend.list_audit_events(AuditFilter(limit=10, cursor=cursor))
        pages.append(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p.items) for p in pages] == [10] * 9 + [5]
    seen = [e.event_id for p in pages for e in p.items]
    assert sorted(seen) == sorted(e.event_id for e in events)
    assert len(set(seen)) == 95


def test_exact_multiple_of_limit_ends_with_no_cursor(backend: SQLBackend) -> None:
    backend.write_batch([AuditEvent(actor="a", action=str(i), time=at(i)) for i in range(20)])
    first = backend.list_audit_events(AuditFilter(limit=10))
    second = backend.list_audit_events(AuditFilter(limit=10, cursor=first.next_cursor))
    assert first.next_cursor is not None and second.next_cursor is None
    assert len(second.items) == 10


def test_paging_is_stable_while_rows_arrive(backend: SQLBackend) -> None:
    backend.write_batch([AuditEvent(actor="a", action=f"old{i}", time=at(i)) for i in range(40)])
    seen: list[str] = []
    cursor = None
    page_no = 0
    while True:
        page = backend.list_audit_events(AuditFilter(actor="a", limit=6, cursor=cursor))
        seen.extend(e.action for e in page.items)
        page_no += 1
        # New rows land at the head, and at the very same instant as the last row read.
        backend.write_batch([
            AuditEvent(actor="a", action=f"new{page_no}", time=at(100 + page_no)),
            AuditEvent(actor="a", action=f"tie{page_no}", time=page.items[-1].time),
        ])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    old = [s for s in seen if s.startswith("old")]
    assert sorted(old) == sorted(f"old{i}" for i in range(40))
    assert len(old) == len(set(old))


def test_summarize_costs_by_sandbox_and_namespace(backend: SQLBackend) -> None:
    backend.write_batch([
        CostSnapshot(sandbox_id="sb-1", namespace="a", cpu_hours=0.5, mem_gb_hours=1,
                     estimated_usd=0.1, time=at(1)),
        CostSnapshot(sandbox_id="sb-1", namespace="a", cpu_hours=0.25, mem_gb_hours=0.5,
                     estimated_usd=0.05, time=at(2)),
        CostSnapshot(sandbox_id="sb-2", namespace="a", cpu_hours=2, mem_gb_hours=4,
                     estimated_usd=0.4, time=at(3)),
        CostSnapshot(sandbox_id="sb-3", namespace="b", cpu_hours=1, mem_gb_hours=0,
                     estimated_usd=0.2, time=at(4)),
    ])
    by_sandbox = backend.summarize_costs(CostFilter())
    assert [t.key for t in by_sandbox] == ["a/sb-2", "b/sb-3", "a/sb-1"]
    sb1 = by_sandbox[2]
    assert sb1.samples == 2
    assert sb1.cpu_hours == pytest.approx(0.75)
    assert sb1.mem_gb_hours == pytest.approx(1.5)
    assert sb1.estimated_usd == pytest.approx(0.15)
    assert all(isinstance(v, float) for t in by_sandbox
               for v in (t.cpu_hours, t.mem_gb_hours, t.estimated_usd))

    by_namespace = backend.summarize_costs(CostFilter(), group_by="namespace")
    assert [(t.key, t.samples) for t in by_namespace] == [("a", 3), ("b", 1)]
    assert by_namespace[0].estimated_usd == pytest.approx(0.55)

    windowed = backend.summarize_costs(CostFilter(since=at(2), until=at(4)))
    assert [(t.key, t.samples) for t in windowed] == [("a/sb-2", 1), ("a/sb-1", 1)]
    assert backend.summarize_costs(CostFilter(namespace="b")) == [
        CostTotal("b/sb-3", 1.0, 0.0, 0.2, 1)
    ]
    with pytest.raises(ValueError, match="group_by"):
        backend.summarize_costs(CostFilter(), group_by="actor")  # type: ignore[arg-type]


def test_nul_characters_are_removed(backend: SQLBackend) -> None:
    backend.write_batch([
        AuditEvent(actor="al\x00ice", action="exec", details="a\x00b"),
        SandboxEvent(sandbox_id="sb\x00", phase="Run\x00ning", message="m\x00"),
    ])
    event = backend.list_audit_events(AuditFilter(actor="al\x00ice")).items[0]
    assert (event.actor, event.details) == ("alice", "ab")
    sandbox_event = backend.list_sandbox_events(SandboxEventFilter()).items[0]
    assert (sandbox_event.sandbox_id, sandbox_event.phase, sandbox_event.message) == (
        "sb", "Running", "m"
    )


def test_long_values_are_cut_with_a_marker(backend: SQLBackend) -> None:
    long_actor = "é" * 300
    huge = "x" * (1024 * 1024)
    backend.write_batch([
        AuditEvent(actor=long_actor, action="exec", details=huge),
        SandboxEvent(sandbox_id="s", phase="Failed", message="ü" * 70_000),
    ])
    event = backend.list_audit_events(AuditFilter(actor=long_actor)).items[0]
    assert len(event.actor) == 255 and event.actor.endswith("…")
    assert len(event.details.encode()) <= 64 * 1024
    assert event.details.startswith("xxxx")
    assert event.details.endswith("[cut: 1048576 bytes in all]")
    message = backend.list_sandbox_events(SandboxEventFilter()).items[0].message
    assert len(message.encode()) <= 64 * 1024 and message.endswith("bytes in all]")


def test_closed_backend_refuses_calls_and_closes_twice(backend: SQLBackend) -> None:
    backend.write_batch([AuditEvent(actor="a", action="b")])
    backend.close()
    backend.close()
    with pytest.raises(StorageError, match="closed"):
        backend.list_audit_events(AuditFilter())


def test_noop_backend_stores_nothing() -> None:
    noop = NoopBackend()
    noop.write_batch([AuditEvent(actor="a", action="b")])
    noop.record_audit_event(AuditEvent(actor="a", action="b"))
    noop.record_sandbox_event(SandboxEvent(sandbox_id="s", phase="P"))
    noop.record_cost_snapshot(CostSnapshot(sandbox_id="s"))
    assert noop.list_audit_events(AuditFilter()) == Page(())
    assert noop.list_sandbox_events(SandboxEventFilter()) == Page(())
    assert noop.list_cost_snapshots(CostFilter()) == Page(())
    assert noop.summarize_costs(CostFilter()) == []
    noop.close()
    noop.close()


def test_paging_within_a_window(backend: SQLBackend) -> None:
    backend.write_batch([AuditEvent(actor="a", action=str(i), time=at(i)) for i in range(60)])
    got = [e.action for e in all_audit(backend, since=at(10), until=at(50), limit=7)]
    assert got == [str(i) for i in reversed(range(10, 50))]

