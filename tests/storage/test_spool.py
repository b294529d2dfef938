"""The recorder's spool on its own: a durable, ordered, capped FIFO of records in a local file.

No database server is involved: the spool is a local SQLite file whatever the
store is, so these tests need no backend parametrisation.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agenttier_router.storage import AuditEvent, CostSnapshot, Record, SandboxEvent
from agenttier_router.storage.recorder.spool import SPOOL_FILE, Spool, decode, encode

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def audits(n: int, start: int = 0) -> list[AuditEvent]:
    """``n`` audit events of identical size, numbered from ``start``."""
    return [
        AuditEvent(actor="alice", action="exec", sandbox_id=f"sb-{i:06d}", time=T0)
        for i in range(start, start + n)
    ]


def test_every_record_type_round_trips_with_its_event_id_and_time(tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    records: list[Record] = [
        AuditEvent(
            actor="ålice", action="exec", resource="sandbox", sandbox_id="sb-1",
            namespace="team-a", outcome="denied", details={"cmd": "ls", "note": "✓"},
            time=datetime(2026, 11, 1, 14, 0, 0, 123456, tzinfo=plus_two),
        ),
        SandboxEvent(
            sandbox_id="sb-1", sandbox_name="box", namespace="team-a", phase="Running",
            reason="Started", message="line one\nline two", time=T0,
        ),
        CostSnapshot(
            sandbox_id="sb-1", namespace="team-a", cpu_hours=0.5, mem_gb_hours=1.25,
            estimated_usd=0.0211, time=T0,
        ),
    ]
    spool = Spool(tmp_path)
    spool.append(records)
    upto, back = spool.peek(10)
    spool.close()

    assert back == records  # every field, the event id, and the same instant
    assert [type(r) for r in back] == [AuditEvent, SandboxEvent, CostSnapshot]
    assert back[0].time.utcoffset() == timedelta(0)
    assert upto > 0


def test_fifo_order_counts_and_removal(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first, second = audits(5), audits(5, start=5)
    spool.append(first)
    spool.append(second)
    assert len(spool) == 10
    size = encode(first[0])[1]
    assert spool.bytes == 10 * size

    upto, head = spool.peek(4)
    assert head == first[:4]
    removed = spool.remove(upto)
    assert removed == Counter({AuditEvent: 4})
    assert (len(spool), spool.bytes) == (6, 6 * size)

    upto, rest = spool.peek(100)
    assert rest == first[4:] + second
    spool.remove(upto)
    assert (len(spool), spool.bytes) == (0, 0)
    assert spool.peek(10) == (0, [])
    spool.close()


def test_records_survive_reopening_and_one_owner_at_a_time(tmp_path: Path) -> None:
    records = audits(7)
    spool = Spool(tmp_path)
    spool.append(records)
    with pytest.raises(BlockingIOError, match="in use"):
        Spool(tmp_path)
    spool.close()
    spool.close()  # twice is harmless

    again = Spool(tmp_path)
    assert len(again) == 7
    assert again.peek(100)[1] == records
    again.close()


def test_cap_evicts_the_oldest_and_counts_them_by_type(tmp_path: Path) -> None:
    size = encode(audits(1)[0])[1]
    spool = Spool(tmp_path, max_bytes=10 * size)
    first = audits(8)
    assert spool.append(first) == Counter()

    newer: list[Record] = [
        *audits(3, start=8), SandboxEvent(sandbox_id="sb", phase="Running", time=T0)
    ]
    evicted = spool.append(newer)
    # 11 audit events and a (smaller) sandbox event: the two oldest must go.
    assert evicted == Counter({AuditEvent: 2})
    assert spool.bytes <= 10 * size
    assert spool.peek(100)[1] == [*first, *newer][2:]
    spool.close()


def test_pinned_records_are_not_evicted(tmp_path: Path) -> None:
    size = encode(audits(1)[0])[1]
    spool = Spool(tmp_path, max_bytes=4 * size)
    first = audits(4)
    spool.append(first)
    _, head = spool.peek(2)  # as if being replayed right now
    evicted = spool.append(audits(2, start=4))
    assert evicted == Counter({AuditEvent: 2})
    _, kept = spool.peek(100)
    assert kept[:2] == head  # the pinned two survived; the next two oldest went
    assert [r.sandbox_id for r in kept[2:]] == ["sb-000004", "sb-000005"]
    spool.close()


def test_a_batch_bigger_than_the_cap_keeps_its_newest(tmp_path: Path) -> None:
    size = encode(audits(1)[0])[1]
    spool = Spool(tmp_path, max_bytes=3 * size)
    batch = audits(10)
    evicted = spool.append(batch)
    assert evicted == Counter({AuditEvent: 7})
    assert spool.peek(100)[1] == batch[-3:]
    spool.close()


def test_a_full_spool_evicts_anonymous_denials_first(tmp_path: Path) -> None:
    # Issue 9: keyless requests flooding the history during an outage must not push
    # out the records of people who were let in (or denied, but known).
    def anonymous(i: int) -> AuditEvent:
        return AuditEvent(actor="anonymous", action="exec", outcome="denied",
                          sandbox_id=f"sb-{i:06d}", time=T0)

    def known(i: int) -> AuditEvent:
        outcome = "denied" if i % 2 else "success"  # a known caller's denial is kept too
        return AuditEvent(actor="alice", action="exec", outcome=outcome,
                          sandbox_id=f"sb-{i:06d}", time=T0)

    anonymous_ok = AuditEvent(actor="anonymous", action="healthz", time=T0)  # not a denial
    older = [r for i in range(6) for r in (known(i), anonymous(100 + i))]
    records = [anonymous_ok, *older]
    cap = sum(encode(r)[1] for r in records)
    spool = Spool(tmp_path, max_bytes=cap)
    assert spool.append(records) == Counter()

    newer = [known(i) for i in range(10, 13)]
    evicted = spool.append(newer)
    need = sum(encode(r)[1] for r in newer)
    per_denial = encode(anonymous(100))[1]
    gone = -(-need // per_denial)  # the fewest anonymous denials that make room
    assert evicted == Counter({AuditEvent: gone})
    _, kept = spool.peek(100)
    denials = [r for r in older if r.actor == "anonymous"]
    # The oldest anonymous denials went; every other record stayed, in order.
    assert kept == [r for r in records if r not in denials[:gone]] + newer

    # Once no anonymous denial is left, the oldest of the rest go, as before.
    before = kept
    spool.unpin()  # peek pinned them, as for a replay
    extra = [known(i) for i in range(20, 26)]
    spool.append(extra)
    _, kept = spool.peek(1000)
    assert [r for r in kept if r.actor == "anonymous" and r.outcome == "denied"] == []
    survivors = [r for r in before if r not in denials]
    assert len(survivors) + len(extra) > len(kept) > len(extra)  # some of the rest went
    assert kept == survivors[len(survivors) + len(extra) - len(kept):] + extra
    spool.close()


def test_private_file_modes(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    Spool(directory).close()
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(directory / SPOOL_FILE).st_mode) == 0o600


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / SPOOL_FILE).write_bytes(b"this is not an sqlite database, not even close" * 50)
    spool = Spool(tmp_path)
    assert len(spool) == 0
    spool.append(audits(1))
    spool.close()
    assert [p.name for p in tmp_path.glob(f"{SPOOL_FILE}.corrupt-*")]


def test_a_cost_snapshot_spooled_before_owner_and_template_reads_back_with_them_empty() -> None:
    old_row = ["sb-1", "team-a", 0.5, 1.0, 0.02, None, None]  # f6 and f7 were padding then
    back = decode(3, "065f35c4cdf0003e68ad817aa26cd1ad", "2026-11-01T12:00:00.000000Z", old_row)
    assert isinstance(back, CostSnapshot)
    assert (back.sandbox_id, back.owner, back.template, back.cpu_hours) == ("sb-1", "", "", 0.5)


def test_a_spooled_cost_snapshot_keeps_its_owner_and_template() -> None:
    snapshot = CostSnapshot(sandbox_id="sb-1", namespace="team-a", owner="alice",
                            template="python", cpu_hours=0.5, mem_gb_hours=1.0,
                            estimated_usd=0.02, event_id="e-1")
    kind, _size, event_id, ts, *values = encode(snapshot)
    assert decode(kind, event_id, ts, values) == snapshot
    # A row spooled before owner and template were spooled reads back with them empty.
    older = decode(kind, event_id, ts, [*values[:5], None, None])
    assert (older.owner, older.template) == ("", "")  # type: ignore[union-attr]
