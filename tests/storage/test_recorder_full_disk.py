"""A full spool disk must not silence the history (issue 9, item 2).

The spool lives on a real 1 MiB file system the test mounts (tmpfs), and the
database goes down and comes back through the same faults as
``test_recorder_outages.py``. Mounting needs root (or CAP_SYS_ADMIN): without
it the tests skip and say so, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from test_recorder import FAST, metric, stored_ids, wait_for
from test_recorder_outages import Fault

from agenttier_router.storage import AuditEvent, Record, Recorder, SandboxEvent
from agenttier_router.storage.recorder.spool import Spool


def _mount_small_disk(directory: Path) -> str | None:
    """Mount a 1 MiB tmpfs on ``directory``; return why it could not be done, or None."""
    if shutil.which("mount") is None:
        return "no mount command"
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(directory)],
            check=True, capture_output=True, text=True, timeout=30,
        )
    except subprocess.CalledProcessError as error:
        return (error.stderr or error.stdout or str(error)).strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system, mounted for this test and unmounted after it."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    why = _mount_small_disk(mount)
    if why is not None:
        reason = (f"cannot mount a 1 MiB tmpfs for the spool ({why}); these tests need root "
                  "or CAP_SYS_ADMIN")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


@pytest.fixture
def fault(store_url: str, database: object, tmp_path: Path) -> Iterator[Fault]:
    f = Fault(getattr(database, "kind"), store_url, tmp_path)  # noqa: B009
    try:
        yield f
    finally:
        f.close()


def bulky(n: int, tag: str) -> list[Record]:
    """``n`` records of about 400 bytes each, so that a few thousand fill 1 MiB."""
    out: list[Record] = []
    for i in range(n):
        if i % 2:
            out.append(SandboxEvent(sandbox_id=f"{tag}-{i}", phase="Running", message="m" * 300))
        else:
            out.append(AuditEvent(actor="alice", action="exec", sandbox_id=f"{tag}-{i}",
                                  details={"command": "x" * 300}))
    return out


def dropped(registry: CollectorRegistry) -> float:
    return sum(
        metric(registry, "records_dropped_total", type=t, reason=r)
        for t in ("audit_event", "sandbox_event", "cost_snapshot", "other")
        for r in ("queue_full", "closed", "invalid", "spool_full", "spool_error", "shutdown")
    )


def test_full_spool_disk_loses_nothing_resends_nothing_and_recovers(
    fault: Fault, small_disk: Path
) -> None:
    registry = CollectorRegistry()
    config = replace(FAST, spool_dir=small_disk / "spool", queue_size=20_000, batch_size=500)
    recorder = Recorder(fault.backend(), config=config, registry=registry)
    try:
        fault.down()
        during = bulky(6000, "during")  # about 2.4 MB: more than the spool's disk holds
        for r in during:
            recorder.record(r)
        assert wait_for(lambda: recorder.status().degraded, timeout=60)
        status = recorder.status()
        assert status.state == "degraded"
        assert status.reason is not None and "spool" in status.reason
        assert metric(registry, "degraded") == 1
        assert "full" in status.reason  # SQLite's "database or disk is full"
        # Everything is somewhere: in the spool, or held in memory; nothing dropped.
        assert wait_for(lambda: recorder.status().queued + recorder.status().spooled == 6000)
        assert 0 < recorder.status().spooled < 6000
        assert dropped(registry) == 0

        fault.up()
        assert recorder.flush(timeout=120)
        # With the database back but the spool's disk still suspect, new records go straight in.
        after = bulky(2000, "after")
        for r in after:
            recorder.record(r)
        assert recorder.flush(timeout=60)
        assert stored_ids(fault.url) == Counter(r.event_id for r in during + after)  # each once
        assert dropped(registry) == 0
        spooled = sum(metric(registry, "records_spooled_total", type=t)
                      for t in ("audit_event", "sandbox_event"))
        replayed = sum(metric(registry, "records_replayed_total", type=t)
                       for t in ("audit_event", "sandbox_event"))
        assert replayed == spooled > 0  # each spooled record replayed once, not in a loop
        # Never re-sent in a loop: the completed writes are about the batches there were.
        writes = registry.get_sample_value("agenttier_recorder_batch_write_seconds_count") or 0
        assert writes <= 3 * (8000 // 500) + 20

        # Once the spool is empty its file is replaced, space returns, and the probe sees it.
        assert wait_for(lambda: not recorder.status().degraded, timeout=60)
        assert recorder.status().state == "ok"
        assert metric(registry, "degraded") == 0

        # The spool works again: another outage spools instead of holding in memory.
        fault.down()
        again = bulky(100, "again")
        for r in again:
            recorder.record(r)
        assert wait_for(lambda: recorder.status().spooled == 100, timeout=60)
        assert not recorder.status().degraded
        fault.up()
        assert recorder.flush(timeout=60)
        assert recorder.close(timeout=10)
    finally:
        recorder.close(timeout=1)
    assert stored_ids(fault.url) == Counter(r.event_id for r in during + after + again)
    # An empty spool gives its disk space back (replaced by a fresh file) by the time the
    # recorder has closed; while it runs, it usually has already (see the closing note).
    assert shutil.disk_usage(small_disk).used < 512 * 1024


def test_memory_stays_bounded_while_degraded_and_the_database_is_down(
    fault: Fault, small_disk: Path
) -> None:
    registry = CollectorRegistry()
    config = replace(FAST, spool_dir=small_disk / "spool", queue_size=3000, batch_size=500)
    recorder = Recorder(fault.backend(), config=config, registry=registry)
    try:
        fault.down()
        records = bulky(8000, "flood")
        for r in records:
            recorder.record(r)
        assert wait_for(lambda: recorder.status().degraded, timeout=60)
        # The spool holds what its disk takes, memory at most queue_size; the rest is
        # refused at the door and counted, never dropped from the spool or memory.
        status = recorder.status()
        assert status.queued <= 3000
        assert metric(registry, "records_dropped_total", type="audit_event",
                      reason="spool_error") == 0
        fault.up()
        assert recorder.flush(timeout=120)
    finally:
        recorder.close(timeout=5)
    kept = sum(stored_ids(fault.url).values())
    refused = sum(metric(registry, "records_dropped_total", type=t, reason="queue_full")
                  for t in ("audit_event", "sandbox_event"))
    assert kept + refused == 8000
    assert dropped(registry) == refused


def _fill(directory: Path) -> None:
    """Take every byte left on ``directory``'s file system."""
    try:
        with open(directory / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass  # full


def test_spool_removes_logically_when_the_disk_cannot_take_a_delete(small_disk: Path) -> None:
    spool = Spool(small_disk / "spool")
    try:
        records = bulky(600, "s")
        spool.append(records)
        _fill(small_disk)
        upto, first = spool.peek(200)
        assert first == records[:200]
        removed = spool.remove(upto)
        assert sum(removed.values()) == 200
        assert spool.count == 400
        # Gone for peek even though the file still holds them: never replayed twice.
        _, rest = spool.peek(1000)
        assert rest == records[200:]
        assert spool.untrimmed and spool.trim_error is not None
        upto, _ = spool.peek(1000)
        spool.remove(upto)
        # Nothing is left, so the file is replaced by an empty one, which needs no space.
        assert spool.count == 0 and not spool.untrimmed and spool.trim_error is None
        spool.probe()
        assert spool.peek(10) == (0, [])
    finally:
        spool.close()
