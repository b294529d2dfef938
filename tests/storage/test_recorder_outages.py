"""The recorder through real outages: nothing lost, nothing duplicated, never wedged.

The database servers are shared, so they are never stopped. Instead:

- PostgreSQL and MySQL are reached through a TCP proxy of the test's own
  (``tests/tcpproxy.py``). *Down* kills the proxy (connections refused, open
  ones cut); *hung* keeps accepting connections and answers nothing, and
  freezes the open ones.
- SQLite is *down* while another connection holds its write lock and the
  backend's busy timeout is short ("database is locked"), and *hung* while
  the lock is held and the busy timeout is long. Separately, its directory is
  renamed away and back. (An open SQLite connection keeps working through a
  rename, because it holds file descriptors, so the rename bites when the
  backend has to open the file.)
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url
from tcpproxy import TcpProxy
from test_recorder import FAST, metric, mixed, per_type, stored_ids, type_counts, wait_for

from agenttier_router.storage import (
    AuditEvent,
    Backend,
    Recorder,
    SQLBackend,
    open_backend,
)
from agenttier_router.storage.recorder.spool import encode


class Fault:
    """A way to break and mend the path from a backend to one real database."""

    def __init__(self, kind: str, url: str, tmp_path: Path) -> None:
        self.kind = kind
        self.url = url  # the real database, for checking what arrived
        self._backends: list[Backend] = []
        self._blocker: sqlite3.Connection | None = None
        self.proxy: TcpProxy | None = None
        setup = open_backend(url)
        assert isinstance(setup, SQLBackend)
        setup.upgrade()  # the schema exists, so stored_ids() works whatever happens
        setup.close()
        if kind == "sqlite":
            self.path = make_url(url).database or ""
            self.faulty_url = url
        else:
            real = make_url(url)
            self.proxy = TcpProxy(real.host or "127.0.0.1", real.port or 0)
            self.faulty_url = real.set(port=self.proxy.port).render_as_string(hide_password=False)

    def backend(self, *, hang: bool = False) -> Backend:
        """A backend whose path to the database this fault controls."""
        # SQLite: the busy timeout decides between "locked" at once and a long wait. "At once"
        # is well under the second after which the writer spools a stalled batch, so that a
        # down database fails its writes rather than stalling them (which would race with up()).
        connect_timeout = (30.0 if hang else 0.2) if self.kind == "sqlite" else 1.0
        backend = open_backend(self.faulty_url, connect_timeout=connect_timeout,
                               statement_timeout=30.0)
        self._backends.append(backend)
        return backend

    def down(self) -> None:
        if self.proxy is not None:
            self.proxy.kill()
        else:
            self._lock()

    def up(self) -> None:
        if self.proxy is not None:
            self.proxy.restart()
        else:
            self._unlock()

    def hang(self) -> None:
        if self.proxy is not None:
            self.proxy.hang()
        else:
            self._lock()

    def resume(self) -> None:
        if self.proxy is not None:
            self.proxy.resume()
        else:
            self._unlock()

    def _lock(self) -> None:
        self._blocker = sqlite3.connect(self.path, isolation_level=None)
        self._blocker.execute("BEGIN IMMEDIATE")

    def _unlock(self) -> None:
        if self._blocker is not None:
            self._blocker.execute("ROLLBACK")
            self._blocker.close()
            self._blocker = None

    def close(self) -> None:
        self._unlock()
        if self.proxy is not None:
            self.proxy.restart()  # let stuck calls finish before their backends close
        for backend in self._backends:
            backend.close()
        if self.proxy is not None:
            self.proxy.close()


@pytest.fixture
def fault(store_url: str, database: object, tmp_path: Path) -> Iterator[Fault]:
    """A fault on each backend in turn: a TCP proxy for the servers, a lock for SQLite."""
    f = Fault(getattr(database, "kind"), store_url, tmp_path)  # noqa: B009
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_outage_spools_then_replays_everything_once(
    fault: Fault, registry: CollectorRegistry, tmp_path: Path
) -> None:
    recorder = Recorder(
        fault.backend(), config=replace(FAST, spool_dir=tmp_path / "spool"),
        registry=registry,
    )
    try:
        before = mixed(300, tag="before")
        for r in before:
            recorder.record(r)
        assert recorder.flush(timeout=30)

        fault.down()
        during = mixed(700, tag="during")
        for r in during:
            recorder.record(r)
        for r in before[:50]:
            recorder.record(r)  # sent twice: must still be stored once
        assert not recorder.flush(timeout=0.3)
        assert wait_for(lambda: metric(registry, "spool_depth") == 750)
        assert stored_ids(fault.url) == Counter(r.event_id for r in before)  # nothing else yet

        fault.up()
        assert recorder.flush(timeout=30)
        assert recorder.close(timeout=10)
    finally:
        recorder.close(timeout=1)

    assert stored_ids(fault.url) == Counter(r.event_id for r in before + during)  # each once
    assert per_type(registry, "records_written_total") == type_counts(before)
    assert per_type(registry, "records_spooled_total") == type_counts(during + before[:50])
    assert per_type(registry, "records_replayed_total") == type_counts(during + before[:50])
    assert metric(registry, "spool_depth") == 0
    errors = sum(metric(registry, "backend_errors_total", kind=k)
                 for k in ("unavailable", "error", "timeout"))
    assert errors >= 1


def test_hung_database_times_out_and_spools_instead_of_wedging(
    fault: Fault, registry: CollectorRegistry, tmp_path: Path
) -> None:
    config = replace(FAST, spool_dir=tmp_path / "spool", write_timeout=0.3)
    recorder = Recorder(fault.backend(hang=True), config=config, registry=registry)
    try:
        before = mixed(200, tag="before")
        for r in before:
            recorder.record(r)
        assert recorder.flush(timeout=30)  # a pooled connection now exists

        fault.hang()
        during = mixed(500, tag="during")
        for r in during:
            recorder.record(r)
        # The writer gives up on the stuck call and keeps moving records to the spool.
        assert wait_for(lambda: metric(registry, "backend_errors_total", kind="timeout") >= 1)
        assert wait_for(lambda: metric(registry, "spool_depth") == 500)
        more = mixed(100, tag="more")
        for r in more:
            recorder.record(r)
        assert not recorder.flush(timeout=0.3)
        assert wait_for(lambda: metric(registry, "spool_depth") == 600)
        assert metric(registry, "queue_depth") == 0

        fault.resume()
        assert recorder.flush(timeout=60)
        assert recorder.close(timeout=10)
    finally:
        recorder.close(timeout=1)

    assert stored_ids(fault.url) == Counter(r.event_id for r in before + during + more)
    # Every spooled record was replayed; on a loaded machine a replay that outlived the
    # 0.3 s write timeout after committing is replayed again (and stored once, above).
    replayed = per_type(registry, "records_replayed_total")
    expected = type_counts(during + more)
    assert replayed.keys() == expected.keys()
    assert all(replayed[kind] >= count for kind, count in expected.items()), replayed


def test_a_stalled_write_makes_everything_durable_before_it_times_out(
    fault: Fault, registry: CollectorRegistry, tmp_path: Path
) -> None:
    # write_timeout is long, so the call is still outstanding throughout; after a
    # second the writer must have put the batch in flight and the queue in the spool,
    # where a SIGKILL cannot take them.
    config = replace(FAST, spool_dir=tmp_path / "spool", write_timeout=60)
    recorder = Recorder(fault.backend(hang=True), config=config, registry=registry)
    try:
        warm = AuditEvent(actor="alice", action="warm-up")
        recorder.record(warm)
        assert recorder.flush(timeout=30)

        fault.hang()
        stalled = mixed(300, tag="stalled")
        for r in stalled:
            recorder.record(r)
        assert wait_for(lambda: metric(registry, "spool_depth") == 300)
        more = mixed(100, tag="more")
        for r in more:
            recorder.record(r)
        assert wait_for(lambda: metric(registry, "spool_depth") == 400)
        assert metric(registry, "queue_depth") == 0
        assert metric(registry, "backend_errors_total", kind="timeout") == 0  # still waiting

        fault.resume()
        assert recorder.flush(timeout=60)
    finally:
        recorder.close(timeout=5)
    assert stored_ids(fault.url) == Counter(r.event_id for r in [warm, *stalled, *more])
    assert per_type(registry, "records_replayed_total") == type_counts(stalled + more)
    assert metric(registry, "spool_depth") == 0


def test_second_recorder_replays_what_the_first_left(
    fault: Fault, registry: CollectorRegistry, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    first = Recorder(fault.backend(), config=replace(FAST, spool_dir=spool_dir),
                     registry=registry)
    fault.down()
    records = mixed(400)
    for r in records:
        first.record(r)
    assert not first.close(timeout=0.3)
    assert metric(registry, "spool_depth") == 400
    assert sum(stored_ids(fault.url).values()) == 0

    fault.up()
    second_registry = CollectorRegistry()
    second = Recorder(fault.backend(), config=replace(FAST, spool_dir=spool_dir),
                      registry=second_registry)
    try:
        assert second.flush(timeout=30)
    finally:
        second.close(timeout=5)
    assert stored_ids(fault.url) == Counter(r.event_id for r in records)
    assert per_type(second_registry, "records_replayed_total") == type_counts(records)


def test_spool_cap_drops_the_oldest_and_counts_them(
    fault: Fault, registry: CollectorRegistry, tmp_path: Path
) -> None:
    records = [AuditEvent(actor="alice", action="exec", sandbox_id=f"sb-{i:05d}")
               for i in range(100)]
    size = encode(records[0])[1]  # every one is the same size
    config = replace(FAST, spool_dir=tmp_path / "spool", spool_max_bytes=20 * size)
    recorder = Recorder(fault.backend(), config=config, registry=registry)
    try:
        fault.down()
        for r in records:
            recorder.record(r)
        assert not recorder.flush(timeout=0.3)
        assert wait_for(lambda: metric(registry, "records_spooled_total", type="audit_event")
                        == 100)
        assert metric(registry, "spool_depth") == 20
        assert metric(registry, "spool_bytes") == 20 * size
        fault.up()
        assert recorder.flush(timeout=30)
    finally:
        recorder.close(timeout=1)

    assert metric(registry, "records_dropped_total", type="audit_event", reason="spool_full") == 80
    assert stored_ids(fault.url) == Counter(r.event_id for r in records[-20:])  # the newest


def test_sqlite_directory_renamed_away_and_back(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    home = tmp_path / "store"
    home.mkdir()
    url = f"sqlite:///{home / 'store.db'}"
    setup = open_backend(url)
    assert isinstance(setup, SQLBackend)
    setup.upgrade()
    setup.close()

    home.rename(tmp_path / "away")
    backend = open_backend(url, connect_timeout=1)
    recorder = Recorder(backend, config=replace(FAST, spool_dir=tmp_path / "spool"),
                        registry=registry)
    try:
        records = mixed(500)
        for r in records:
            recorder.record(r)
        assert not recorder.flush(timeout=0.3)
        assert wait_for(lambda: metric(registry, "spool_depth") == 500)
        assert metric(registry, "backend_errors_total", kind="unavailable") >= 1

        (tmp_path / "away").rename(home)
        assert recorder.flush(timeout=30)
        assert recorder.close(timeout=5)
    finally:
        recorder.close(timeout=1)
        backend.close()
    assert stored_ids(url) == Counter(r.event_id for r in records)
    assert per_type(registry, "records_replayed_total") == type_counts(records)
