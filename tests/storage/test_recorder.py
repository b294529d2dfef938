"""The recorder on every real backend: it never raises, writes everything once, drains, counts.

Faults here are real ones: a closed backend, a server port nobody listens
on, another SQLite connection holding the write lock, SIGTERM to a real
child process. Outages through a TCP proxy are in ``test_recorder_outages.py``.
"""

from __future__ import annotations

import logging
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

import agenttier_router.storage as storage
from agenttier_router.storage import (
    AuditEvent,
    CostSnapshot,
    Record,
    Recorder,
    RecorderConfig,
    SandboxEvent,
    SQLBackend,
    open_backend,
)
from agenttier_router.storage.recorder.ratelimit import RateLimitedLog
from agenttier_router.storage.sql.url import mask_secrets

FAST = RecorderConfig(flush_interval=0.02, retry_initial=0.01, retry_max=0.05, log_interval=3600)
"""Short intervals, so that tests run fast; never logs the same trouble twice."""
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def mixed(n: int, tag: str = "r") -> list[Record]:
    """``n`` records, cycling through the three types."""
    out: list[Record] = []
    for i in range(n):
        if i % 3 == 0:
            out.append(AuditEvent(actor="alice", action="exec", sandbox_id=f"{tag}-{i}"))
        elif i % 3 == 1:
            out.append(SandboxEvent(sandbox_id=f"{tag}-{i}", phase="Running"))
        else:
            out.append(CostSnapshot(sandbox_id=f"{tag}-{i}", cpu_hours=0.25))
    return out


def stored_ids(url: str) -> Counter[str]:
    """How many rows each event id has, over the three tables, read outside the recorder."""
    engine = create_engine(url)
    ids: Counter[str] = Counter()
    try:
        with engine.connect() as conn:
            for table in ("audit_events", "sandbox_events", "cost_snapshots"):
                ids.update(row[0] for row in conn.exec_driver_sql(f"SELECT event_id FROM {table}"))
    finally:
        engine.dispose()
    return ids


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A recorder metric's current value (0 when the label set has none)."""
    value = registry.get_sample_value(f"agenttier_recorder_{name}", labels)
    return 0.0 if value is None else value


def per_type(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        t: metric(registry, name, type=t)
        for t in ("audit_event", "sandbox_event", "cost_snapshot")
    }


def type_counts(records: Sequence[Record]) -> dict[str, float]:
    labels = {AuditEvent: "audit_event", SandboxEvent: "sandbox_event",
              CostSnapshot: "cost_snapshot"}
    counts = dict.fromkeys(labels.values(), 0.0)
    for r in records:
        counts[labels[type(r)]] += 1
    return counts


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``condition`` until it holds; a bound on waiting, never an assertion on time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    """Recorders a test opens; closed afterwards, whatever happened."""
    opened: list[Recorder] = []
    yield opened
    for r in opened:
        r.close(timeout=1)


def test_public_names_are_exported() -> None:
    for name in ("Recorder", "RecorderConfig", "drain_on_sigterm"):
        assert name in storage.__all__
        assert getattr(storage, name).__doc__


def test_flush_writes_every_record_exactly_once(
    backend: SQLBackend, store_url: str, registry: CollectorRegistry, recorders: list[Recorder]
) -> None:
    recorder = Recorder(backend, config=replace(FAST, batch_size=1000), registry=registry)
    recorders.append(recorder)
    records = mixed(2500)
    for r in records:
        recorder.record(r)

    assert recorder.flush(timeout=30)
    assert stored_ids(store_url) == Counter(r.event_id for r in records)
    assert per_type(registry, "records_enqueued_total") == type_counts(records)
    assert per_type(registry, "records_written_total") == type_counts(records)
    assert per_type(registry, "records_spooled_total") == type_counts([])
    assert metric(registry, "queue_depth") == 0
    assert metric(registry, "batch_write_seconds_count") >= 3  # 2500 records, batches of 1000
    assert recorder.close(timeout=5)


def test_close_drains_the_queue_and_later_records_are_dropped(
    backend: SQLBackend, store_url: str, registry: CollectorRegistry
) -> None:
    # Nothing would be sent before close(): batches of 10,000, a 60 s age.
    config = RecorderConfig(batch_size=10_000, flush_interval=60, log_interval=3600)
    recorder = Recorder(backend, config=config, registry=registry)
    records = mixed(300)
    for r in records:
        recorder.record(r)

    assert recorder.close(timeout=30)
    assert stored_ids(store_url) == Counter(r.event_id for r in records)
    recorder.record(AuditEvent(actor="late", action="exec"))
    assert metric(registry, "records_dropped_total", type="audit_event", reason="closed") == 1
    assert recorder.close() is True  # again: the first answer
    assert recorder.flush(1) is True


def test_record_never_raises_with_a_closed_backend_and_the_spool_survives_it(
    backend: SQLBackend, store_url: str, registry: CollectorRegistry, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    backend.close()
    recorder = Recorder(
        backend, config=replace(FAST, spool_dir=spool_dir), registry=registry
    )
    records = mixed(200)
    for r in records:
        recorder.record(r)
    recorder.record("not a record")  # type: ignore[arg-type]
    recorder.record(None)  # type: ignore[arg-type]

    assert not recorder.flush(timeout=0.3)
    assert wait_for(lambda: metric(registry, "spool_depth") == 200)
    assert per_type(registry, "records_spooled_total") == type_counts(records)
    assert metric(registry, "backend_errors_total", kind="error") >= 1
    assert metric(registry, "records_dropped_total", type="other", reason="invalid") == 2
    assert not recorder.close(timeout=0.2)

    # The next recorder, on a working backend and the same spool, replays it all.
    fresh = open_backend(store_url)
    second_registry = CollectorRegistry()
    second = Recorder(fresh, config=replace(FAST, spool_dir=spool_dir),
                      registry=second_registry)
    try:
        assert second.flush(timeout=30)
        assert stored_ids(store_url) == Counter(r.event_id for r in records)
        assert per_type(second_registry, "records_replayed_total") == type_counts(records)
        assert metric(second_registry, "spool_depth") == 0
        assert second.close(timeout=5)
    finally:
        fresh.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_unreachable_server_without_spool_holds_then_drops_at_close(
    scheme: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{scheme}://agent:s3cret-pw@127.0.0.1:{closed_port()}/test"
    backend = open_backend(url, connect_timeout=1)
    caplog.set_level(logging.INFO, logger="agenttier_router.storage")
    try:
        recorder = Recorder(backend, config=FAST, registry=registry)
        records = mixed(50)
        for r in records:
            recorder.record(r)  # must not raise
        assert not recorder.flush(timeout=0.3)
        assert not recorder.close(timeout=0.3)
    finally:
        backend.close()

    # No spool: the failed batch was held in memory, then dropped, counted, at close.
    assert metric(registry, "records_dropped_total", type="audit_event", reason="shutdown") == 17
    assert sum(per_type(registry, "records_spooled_total").values()) == 0
    assert metric(registry, "backend_errors_total", kind="unavailable") >= 1
    assert "s3cret-pw" not in caplog.text
    assert "agent:***@127.0.0.1" in caplog.text  # the masked URL names the target


def test_failures_are_logged_once_per_interval(
    backend: SQLBackend, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    backend.close()
    caplog.set_level(logging.WARNING, logger="agenttier_router.storage.recorder")
    # A generous write timeout: on a loaded machine one refused write must not
    # be taken for a hung one (which logs under another kind).
    config = RecorderConfig(retry_initial=0.001, retry_max=0.002, flush_interval=0.01,
                            log_interval=3600, write_timeout=120)
    recorder = Recorder(backend, config=config, registry=registry)
    recorder.record(AuditEvent(actor="alice", action="exec"))
    assert wait_for(lambda: metric(registry, "backend_errors_total", kind="error") >= 20)
    # Read the log before close(): a close that catches a retry in flight abandons it,
    # which it says in a line of its own.
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    recorder.close(timeout=0.1)

    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "the backend is closed" in failures[0].getMessage()


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    logger = logging.getLogger("test.ratelimit")
    limited = RateLimitedLog(logger, 10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.ratelimit")

    assert limited("down", logging.WARNING, "write failed: %s", "refused")
    for _ in range(5):
        assert not limited("down", logging.WARNING, "write failed: %s", "refused")
    assert limited("other", logging.WARNING, "another kind logs at once")
    now[0] += 10.0
    assert limited("down", logging.WARNING, "write failed: %s", "refused")

    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "write failed: refused",
        "another kind logs at once",
        "write failed: refused (5 more like this suppressed in the last 10s)",
    ]


def test_scrub_hides_passwords() -> None:
    masked = mask_secrets("postgresql://bob:p@ss@db:5432/x down")
    assert masked == "postgresql://bob:***@db:5432/x down"
    assert mask_secrets("host=db password=hunter2 user=x") == "host=db password=*** user=x"
    assert mask_secrets("mysql://root@db/x") == "mysql://root@db/x"


def test_full_queue_drops_and_counts_without_waiting(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    # A real stall: another connection holds SQLite's write lock, so the
    # writer's first batch waits on it (busy timeout 30 s) while the queue fills.
    url = f"sqlite:///{tmp_path / 'store.db'}"
    backend = open_backend(url, connect_timeout=30)
    assert isinstance(backend, SQLBackend)
    backend.upgrade()
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    config = replace(FAST, queue_size=10, batch_size=1, write_timeout=60)
    recorder = Recorder(backend, config=config, registry=registry)
    try:
        first = AuditEvent(actor="alice", action="first")
        recorder.record(first)
        assert wait_for(lambda: metric(registry, "queue_depth") == 0)  # taken, now blocked
        records = mixed(15, tag="q")
        for r in records:
            recorder.record(r)
        assert metric(registry, "queue_depth") == 10
        blocker.execute("ROLLBACK")
        assert recorder.flush(timeout=30)
    finally:
        blocker.close()
        recorder.close(timeout=5)
        backend.close()

    kept, dropped = records[:10], records[10:]
    assert stored_ids(url) == Counter(r.event_id for r in [first, *kept])
    for label, n in type_counts(dropped).items():
        assert metric(registry, "records_dropped_total", type=label, reason="queue_full") == n
    assert sum(per_type(registry, "records_enqueued_total").values()) == 11


def test_sigterm_drains_the_queue_then_terminates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    child = textwrap.dedent(f"""
        import time
        from agenttier_router.storage import (
            AuditEvent, Recorder, RecorderConfig, drain_on_sigterm, open_backend)
        backend = open_backend({url!r})
        backend.upgrade()
        # Nothing is sent before SIGTERM: big batches, a 60 s age.
        config = RecorderConfig(batch_size=100_000, flush_interval=60,
                                spool_dir={str(tmp_path / 'spool')!r})
        recorder = Recorder(backend, config=config, registry=None)
        drain_on_sigterm(recorder, timeout=20)
        for i in range(5000):
            recorder.record(AuditEvent(actor="child", action="exec", event_id=f"{{i:032x}}"))
        print("ready", flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            assert sum(stored_ids(url).values()) == 0  # all still queued in the child
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == -signal.SIGTERM  # the default action still happens
        finally:
            proc.kill()
    assert stored_ids(url) == Counter(f"{i:032x}" for i in range(5000))


def test_metrics_registry_one_open_recorder_at_a_time(
    backend: SQLBackend, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    first = Recorder(backend, config=FAST, registry=registry)
    with caplog.at_level(logging.WARNING, logger="agenttier_router.storage.recorder"):
        second = Recorder(backend, config=FAST, registry=registry)
    assert "metrics not registered" in caplog.text
    second.close(timeout=5)
    first.record(AuditEvent(actor="alice", action="exec"))
    assert first.close(timeout=5)
    assert metric(registry, "records_written_total", type="audit_event") == 1

    with Recorder(backend, config=FAST, registry=registry) as third:
        # The closed first recorder gave way; the new one counts from zero.
        assert metric(registry, "records_written_total", type="audit_event") == 0
        assert "open" in repr(third)


def test_config_is_checked_and_reads_well() -> None:
    assert "flush_interval=0.2" in repr(RecorderConfig())
    with pytest.raises(ValueError, match="batch_size"):
        RecorderConfig(batch_size=0)
    with pytest.raises(ValueError, match="flush_interval"):
        RecorderConfig(flush_interval=-1)
    with pytest.raises(ValueError, match="retry_max"):
        RecorderConfig(retry_initial=2, retry_max=1)
