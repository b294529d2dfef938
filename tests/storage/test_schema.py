"""The schema: creation, versioning, concurrent start-up, and upgrading Go-era databases."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from datetime import UTC, datetime

import pytest
from realdb import IsolatedDatabase
from sqlalchemy import create_engine, inspect, text

from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    CostFilter,
    SandboxEventFilter,
    SchemaError,
    SQLBackend,
    open_backend,
)
from agenttier_router.storage.sql.schema import (
    AUDIT_EVENTS,
    COST_ROLLUPS_DAILY,
    COST_ROLLUPS_HOURLY,
    COST_SNAPSHOTS,
    INDEXES,
    MAINTENANCE,
    SANDBOX_EVENTS,
    VERSION_TABLE,
)

# The Go Router's SQLite DDL, from its source; Postgres and MySQL differ in the
# id and REAL types only.
GO_DDL = [
    "CREATE TABLE IF NOT EXISTS sandbox_events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT "
    "NULL, sandbox_id TEXT, sandbox_name TEXT, namespace TEXT, phase TEXT, reason TEXT, "
    "message TEXT)",
    "CREATE TABLE IF NOT EXISTS audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT "
    "NULL, actor TEXT, action TEXT, resource TEXT, sandbox_id TEXT, details TEXT)",
    "CREATE TABLE IF NOT EXISTS cost_snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT "
    "NULL, sandbox_id TEXT, namespace TEXT, cpu_hours REAL, mem_gb_hours REAL, estimated_usd REAL)",
]


def go_ddl(kind: str) -> list[str]:
    if kind == "postgresql":
        return [s.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
                .replace(" REAL", " DOUBLE PRECISION") for s in GO_DDL]
    if kind == "mysql":
        return [s.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT AUTO_INCREMENT PRIMARY KEY")
                .replace(" REAL", " DOUBLE") for s in GO_DDL]
    return GO_DDL


def raw(database: IsolatedDatabase, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


def test_schema_matches_the_query_tables_and_has_every_index(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    status = backend.upgrade()
    assert status.up_to_date and status.current == backend.schema_status().current
    engine = create_engine(database.url)
    try:
        inspector = inspect(engine)
        for table in (AUDIT_EVENTS, SANDBOX_EVENTS, COST_SNAPSHOTS):
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == set(table.c.keys()), table.name
            indexes = {tuple(i["column_names"]): i for i in inspector.get_indexes(table.name)}
            for wanted in INDEXES[table.name]:
                assert wanted in indexes, (table.name, wanted)
            assert indexes[("event_id",)]["unique"]
        for table in (COST_ROLLUPS_HOURLY, COST_ROLLUPS_DAILY, MAINTENANCE):
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == set(table.c.keys()), table.name
            primary = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert primary == [c.name for c in table.primary_key.columns], table.name
        assert VERSION_TABLE in inspector.get_table_names()
    finally:
        engine.dispose()
    # Fixed-width timestamps: every stored ts is 27 characters.
    backend.write_batch([AuditEvent(actor="a", action="b", time=datetime(2026, 1, 1, tzinfo=UTC))])
    assert raw(database, "SELECT ts FROM audit_events") == [("2026-01-01T00:00:00.000000Z",)]


def test_upgrade_is_idempotent(store_url: str) -> None:
    for _ in range(3):
        backend = open_backend(store_url)
        assert isinstance(backend, SQLBackend)
        backend.write_batch([AuditEvent(actor="a", action="b")])
        assert backend.upgrade().up_to_date
        backend.close()
    backend = open_backend(store_url)
    assert len(backend.list_audit_events(AuditFilter()).items) == 3
    backend.close()


def _upgrade_in_child(url: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait(10)
    backend = open_backend(url)
    assert isinstance(backend, SQLBackend)
    backend.upgrade()
    backend.write_batch([AuditEvent(actor=f"pid{os.getpid()}", action="start")])
    backend.close()


def test_processes_starting_at_once_on_an_empty_database(store_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    children = [
        context.Process(target=_upgrade_in_child, args=(store_url, start)) for _ in range(4)
    ]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0, 0, 0, 0]
    backend = open_backend(store_url)
    assert isinstance(backend, SQLBackend)
    assert backend.schema_status().up_to_date
    assert len(backend.list_audit_events(AuditFilter()).items) == 4
    backend.close()


def test_a_newer_schema_is_refused_and_nothing_is_lost(
    backend: SQLBackend, database: IsolatedDatabase
) -> None:
    backend.write_batch([AuditEvent(actor="a", action="b")])
    head = backend.schema_status().head
    database.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'")
    newer = open_backend(database.url)
    with pytest.raises(SchemaError, match="newer than this agenttier-router"):
        newer.list_audit_events(AuditFilter())
    with pytest.raises(SchemaError):
        newer.write_batch([AuditEvent(actor="x", action="y")])
    newer.close()
    database.execute(f"UPDATE {VERSION_TABLE} SET version_num = '{head}'")
    older = open_backend(database.url)
    assert [e.actor for e in older.list_audit_events(AuditFilter()).items] == ["a"]
    older.close()


GO_TIMESTAMPS = [
    # RFC3339Nano trims trailing zeros, and time.Now() may carry an offset.
    ("2026-11-26T17:00:00Z", "2026-11-26T17:00:00.000000Z"),
    ("2026-11-26T17:00:00.1Z", "2026-11-26T17:00:00.100000Z"),
    ("2026-11-26T17:00:00.15Z", "2026-11-26T17:00:00.150000Z"),
    ("2026-11-26T17:00:00.123456789Z", "2026-11-26T17:00:00.123456Z"),
    ("2026-11-26T19:00:00.5+02:00", "2026-11-26T17:00:00.500000Z"),
]


def test_upgrading_a_go_era_database_keeps_every_row(database: IsolatedDatabase) -> None:
    statements = list(go_ddl(database.kind))
    for i, (go_ts, _) in enumerate(GO_TIMESTAMPS):
        statements.append(
            "INSERT INTO audit_events (ts, actor, action, resource, sandbox_id, details) "
            f"VALUES ('{go_ts}', 'alice', 'act{i}', 'sandbox', 'sb-{i % 2}', '{{\"i\": {i}}}')"
        )
    statements += [
        "INSERT INTO audit_events (ts, actor, action) VALUES ('2026-11-25T00:00:00Z', NULL, NULL)",
        f"INSERT INTO audit_events (ts, actor, action) VALUES ('2026-11-24T00:00:00Z', "
        f"'{'a' * 300}', 'long')",
        "INSERT INTO sandbox_events (ts, sandbox_id, sandbox_name, namespace, phase, reason, "
        "message) VALUES ('2026-11-26T17:00:01.5Z', 'sb-0', 'box', 'ns', 'Running', 'Started', "
        "'ok')",
        "INSERT INTO cost_snapshots (ts, sandbox_id, namespace, cpu_hours, mem_gb_hours, "
        "estimated_usd) VALUES ('2026-11-26T17:01:00Z', 'sb-0', 'ns', 0.5, 1, 0.02)",
        "INSERT INTO cost_snapshots (ts, sandbox_id) VALUES ('2026-11-26T17:02:00Z', 'sb-0')",
    ]
    database.execute(*statements)

    backend = open_backend(database.url)
    assert isinstance(backend, SQLBackend)
    assert backend.schema_status().current is None
    events = backend.list_audit_events(AuditFilter()).items
    assert len(events) == 7
    # Newest first, in true time order, which Go's text could not give.
    assert [e.action for e in events[:5]] == ["act4", "act2", "act3", "act1", "act0"]
    assert {e.outcome for e in events} == {"success"}
    assert {e.namespace for e in events} == {""}
    legacy = events[5]
    assert (legacy.actor, legacy.action) == ("", "")
    long_actor = events[6].actor
    assert long_actor.startswith("aaa")
    if database.kind == "mysql":  # narrowed to VARCHAR(255), cut with a marker
        assert len(long_actor) == 255 and long_actor.endswith("…")
    else:
        assert long_actor == "a" * 300
    # Generated ids are stable across reads and distinct.
    again = backend.list_audit_events(AuditFilter()).items
    assert [e.event_id for e in again] == [e.event_id for e in events]
    assert len({e.event_id for e in events}) == 7
    stored = sorted(r[0] for r in raw(database, "SELECT ts FROM audit_events"))  # type: ignore[type-var]
    assert set(stored) >= {new for _, new in GO_TIMESTAMPS}
    assert all(len(str(ts)) == 27 for ts in stored)
    # Filters work on old rows, and new rows go in beside them.
    assert len(backend.list_audit_events(AuditFilter(sandbox_id="sb-1")).items) == 2
    backend.write_batch([AuditEvent(actor="bob", action="create", namespace="ns")])
    assert backend.list_audit_events(AuditFilter(limit=1)).items[0].actor == "bob"
    assert backend.list_sandbox_events(SandboxEventFilter()).items[0].reason == "Started"
    totals = backend.summarize_costs(CostFilter())
    # A sandbox is its namespace and name: the row without a namespace is apart.
    assert [(t.key, t.samples, t.estimated_usd) for t in totals] == [
        ("ns/sb-0", 1, 0.02), ("/sb-0", 1, 0.0)]
    assert backend.schema_status().up_to_date
    backend.close()


def test_a_go_row_with_a_broken_timestamp_stops_the_upgrade_and_is_kept(
    database: IsolatedDatabase,
) -> None:
    database.execute(
        *go_ddl(database.kind),
        "INSERT INTO audit_events (ts, actor, action) VALUES ('yesterday', 'a', 'b')",
    )
    backend = open_backend(database.url)
    with pytest.raises(SchemaError, match=r"row id=1 .*yesterday"):
        backend.list_audit_events(AuditFilter())
    backend.close()
    assert raw(database, "SELECT ts, actor FROM audit_events") == [("yesterday", "a")]


def test_new_sqlite_file_is_private_and_in_wal_mode(tmp_path: object) -> None:
    path = f"{tmp_path}/private.db"
    backend = open_backend(f"sqlite:///{path}")
    backend.write_batch([AuditEvent(actor="a", action="b")])
    backend.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("where", "index"),
    [
        ("actor = 'user1' AND outcome = 'success'", "ix_audit_events_actor"),
        ("actor = 'user1' AND action = 'exec'", "ix_audit_events_actor"),
        ("namespace = 'ns' AND sandbox_id = 'sb-1'", "ix_audit_events_sandbox_id"),
        ("ts >= '2026-01-01T00:00:00.000000Z'", "ix_audit_events_ts"),
    ],
)
def test_sqlite_plans_combined_filters_on_the_selective_index(
    tmp_path: object, where: str, index: str
) -> None:
    # Values with more rows each than a bounded ANALYZE samples (it ranked
    # every index alike at this size, and picked the outcome one).
    path = f"{tmp_path}/plan.db"
    backend = open_backend(f"sqlite:///{path}")
    backend.write_batch([
        AuditEvent(actor=f"user{i % 4}", action="exec", namespace="ns", sandbox_id=f"sb-{i % 3}")
        for i in range(4000)
    ])
    backend.close()
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT * FROM audit_events WHERE {where} "
            "ORDER BY ts DESC, id DESC LIMIT 101"
        ).fetchall()
    assert index in str(plan)
