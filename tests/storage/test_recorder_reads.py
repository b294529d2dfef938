"""Readers wait for what was recorded without pushing the writer (issue 9, design debt).

``Recorder.flush`` cuts the writer's backoff short, so a dashboard that
flushed before every read turned a few write attempts during an outage into
one per read. ``Recorder.wait_written`` only waits, and not at all while
writes fail. The outages are real ones, as in ``test_recorder_outages.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from test_recorder import FAST, metric, mixed, stored_ids, wait_for
from test_recorder_outages import Fault

from agenttier_router.storage import Recorder


@pytest.fixture
def fault(store_url: str, database: object, tmp_path: Path) -> Iterator[Fault]:
    f = Fault(getattr(database, "kind"), store_url, tmp_path)  # noqa: B009
    try:
        yield f
    finally:
        f.close()


def attempts(registry: CollectorRegistry) -> float:
    """Every write_batch call that ended: the completed ones and the failed ones."""
    done = registry.get_sample_value("agenttier_recorder_batch_write_seconds_count") or 0.0
    failed = sum(metric(registry, "backend_errors_total", kind=k)
                 for k in ("unavailable", "error", "timeout"))
    return done + failed


def test_wait_written_sees_what_was_recorded(fault: Fault, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(fault.backend(), config=replace(FAST, spool_dir=tmp_path / "spool"),
                        registry=registry)
    try:
        assert recorder.wait_written(5)  # nothing recorded: nothing to wait for
        records = mixed(30)
        for r in records:
            recorder.record(r)
        assert recorder.wait_written(30)
        assert stored_ids(fault.url) == Counter(r.event_id for r in records)
    finally:
        recorder.close(timeout=5)


def test_polling_reads_during_an_outage_add_no_write_attempts(
    fault: Fault, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    # After the first failure the next try is at least 30 s away, far beyond this test.
    config = replace(FAST, spool_dir=tmp_path / "spool", retry_initial=60.0, retry_max=120.0)
    recorder = Recorder(fault.backend(), config=config, registry=registry)
    try:
        fault.down()
        records = mixed(30)
        for r in records:
            recorder.record(r)
        assert wait_for(lambda: metric(registry, "backend_errors_total", kind="unavailable")
                        + metric(registry, "backend_errors_total", kind="error")
                        + metric(registry, "backend_errors_total", kind="timeout") >= 1,
                        timeout=60)
        assert wait_for(lambda: recorder.status().spooled == 30)
        before = attempts(registry)

        for _ in range(50):  # a dashboard polling the history
            assert recorder.wait_written(1.0) is False  # at once: writes are failing
        assert attempts(registry) == before

        # The check can fail: each flush cuts the backoff short and tries again.
        assert recorder.flush(0.2) is False
        assert wait_for(lambda: attempts(registry) > before, timeout=30)

        fault.up()
        assert recorder.flush(30)
        assert recorder.wait_written(5)
    finally:
        recorder.close(timeout=5)
    assert stored_ids(fault.url) == Counter(r.event_id for r in records)
