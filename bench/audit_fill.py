"""Millions of audit events made with SQL, in a database of this benchmark's own; not a benchmark.

``bench/purge_ingest.py`` and ``bench/export_10m.py`` share it. Each backend
gets a store of its own: ``bench/.data/<name>.db`` on SQLite, the database
``bench10`` on the local PostgreSQL and MariaDB (``--db``), made empty by
:func:`fresh_store` and dropped by :func:`drop_store`.

:func:`fill` generates ``rows`` events in the database itself, a million per
``INSERT … SELECT`` (``generate_series`` on PostgreSQL; on SQLite and
MariaDB a recursive CTE of 1,000 rows joined with itself, so that the
recursion stays shallow). Event ``i`` is at ``start + i * step`` (10 a
second by default), by ``actor-(i % 1000)`` on ``sb-(i % 20000)`` in
``ns-(i % 50)``, with a small JSON ``details``, and its event id is ``i`` in
32 hex digits (no real id, whose first 14 digits are its time, starts with
26 zeros). The secondary indexes are dropped for the load and built again
after it, as ``bench/cost_report.py`` does, so that loading does not
dominate the run.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from _common import DATA_DIR
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agenttier_router.storage import SQLBackend, open_backend
from agenttier_router.storage.sql.schema import INDEXES

__all__ = ["MYSQL_SERVER", "PG_SERVER", "drop_store", "fill", "fresh_store", "old_rows",
           "store_url", "version"]

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MYSQL_SERVER = "mysql+pymysql://root@127.0.0.1:3306/test"
CHUNK = 1_000_000
_COLS = "ts, event_id, actor, action, resource, sandbox_id, namespace, outcome, details"
_DETAILS = "'{\"email\":\"a@example.com\",\"exitCode\":0}'"


def store_url(kind: str, name: str, db: str) -> str:
    """The storage URL :func:`fresh_store` gives, for a store that already exists."""
    if kind == "sqlite":
        return f"sqlite:///{DATA_DIR / f'{name}.db'}"
    server = PG_SERVER if kind == "postgresql" else MYSQL_SERVER
    return make_url(server).set(database=db).render_as_string(hide_password=False)


def old_rows(url: str) -> int:
    """How many generated events (event ids of 26 leading zeros) the store still holds."""
    engine = create_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        n = int(conn.execute(text("SELECT count(*) FROM audit_events WHERE event_id < :e"),
                             {"e": "0" * 26 + "g"}).scalar() or 0)
    engine.dispose()
    return n


def fresh_store(kind: str, name: str, db: str) -> str:
    """An empty store of ``kind`` with the schema made; return its storage URL."""
    if kind == "sqlite":
        DATA_DIR.mkdir(exist_ok=True)
        path = DATA_DIR / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.remove(f"{path}{suffix}")
        url = f"sqlite:///{path}"
    else:
        server = PG_SERVER if kind == "postgresql" else MYSQL_SERVER
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {db}"))
            conn.execute(text(f"CREATE DATABASE {db}" + (
                " CHARACTER SET utf8mb4" if kind == "mysql" else "")))
        admin.dispose()
        url = make_url(server).set(database=db).render_as_string(hide_password=False)
    backend = open_backend(url)
    assert isinstance(backend, SQLBackend)
    backend.upgrade()
    backend.close()
    return url


def drop_store(kind: str, url: str) -> None:
    """Remove the store :func:`fresh_store` made (the SQLite file, or the database)."""
    u = make_url(url)
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            if u.database and os.path.exists(f"{u.database}{suffix}"):
                os.remove(f"{u.database}{suffix}")
        return
    admin = create_engine(PG_SERVER if kind == "postgresql" else MYSQL_SERVER,
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {u.database}"))
    admin.dispose()


def _ts_step_us(step: timedelta) -> int:
    return step // timedelta(microseconds=1)


def _insert(kind: str, first: int, last: int, start: datetime, step: timedelta) -> str:
    """Events ``first`` to ``last`` (inclusive) as one INSERT … SELECT."""
    us = _ts_step_us(step)
    t0 = f"{start:%Y-%m-%d %H:%M:%S}"
    if kind == "postgresql":
        return (f"INSERT INTO audit_events ({_COLS}) SELECT "
                f"to_char(timestamp '{t0}' + i * interval '{us} microseconds', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), lpad(to_hex(i), 32, '0'), "
                "'actor-' || (i %% 1000), 'exec', 'sandbox', 'sb-' || (i %% 20000), "
                f"'ns-' || (i %% 50), 'success', {_DETAILS} "
                f"FROM generate_series({first}, {last}) i")
    n = "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < 999)"
    rows = (f"(SELECT {first} + a.k * 1000 + b.k AS i FROM n a, n b "
            f"WHERE {first} + a.k * 1000 + b.k <= {last}) r")
    if kind == "sqlite":
        epoch = f"(julianday('{t0}') - 2440587.5) * 86400000000"
        return (f"{n} INSERT INTO audit_events ({_COLS}) SELECT "
                f"strftime('%Y-%m-%dT%H:%M:%S', (CAST({epoch} AS INTEGER) + i * {us}) / 1000000, "
                f"'unixepoch') || '.' || printf('%06d', (CAST({epoch} AS INTEGER) + i * {us}) "
                "% 1000000) || 'Z', printf('%032x', i), 'actor-' || (i % 1000), 'exec', "
                "'sandbox', 'sb-' || (i % 20000), 'ns-' || (i % 50), 'success', "
                f"{_DETAILS} FROM {rows}")
    return (f"INSERT INTO audit_events ({_COLS}) {n} SELECT "
            f"DATE_FORMAT(TIMESTAMP '{t0}' + INTERVAL i * {us} MICROSECOND, "
            "'%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ'), LOWER(LPAD(HEX(i), 32, '0')), "
            "CONCAT('actor-', i %% 1000), 'exec', 'sandbox', CONCAT('sb-', i %% 20000), "
            f"CONCAT('ns-', i %% 50), 'success', {_DETAILS} FROM {rows}")


def fill(kind: str, url: str, rows: int, start: datetime,
         step: timedelta = timedelta(milliseconds=100)) -> float:
    """Add ``rows`` audit events from ``start`` every ``step``; return the seconds it took."""
    began = time.perf_counter()
    engine = create_engine(url)
    indexes = [(f"ix_audit_events_{cols[0]}", cols) for cols in INDEXES["audit_events"]]
    indexes.append(("ux_audit_events_event_id", ("event_id",)))
    with engine.begin() as conn:
        for name, _ in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name} ON audit_events" if kind == "mysql"
                                 else f"DROP INDEX {name}")
    for first in range(0, rows, CHUNK):
        with engine.begin() as conn:
            conn.exec_driver_sql(_insert(kind, first, min(rows, first + CHUNK) - 1, start, step))
        print(f"  {kind}: {min(rows, first + CHUNK):,}/{rows:,} rows", flush=True)
    with engine.begin() as conn:
        for name, cols in indexes:
            unique = "UNIQUE " if name.startswith("ux_") else ""
            conn.exec_driver_sql(f"CREATE {unique}INDEX {name} ON audit_events "
                                 f"({', '.join(cols)})")
        if kind == "postgresql":
            conn.exec_driver_sql("ANALYZE audit_events")
        elif kind == "mysql":
            conn.exec_driver_sql("ANALYZE TABLE audit_events")
    if kind == "sqlite":  # copy the load's WAL (GBs) back now, not in a measured commit
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if kind == "postgresql":  # the visibility map, so that index-only scans stay index-only
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM audit_events")
    engine.dispose()
    return time.perf_counter() - began


def version(url: str) -> str:
    """The database's name and version, for the report's machine line."""
    engine = create_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            out = "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
        else:
            out = str(conn.exec_driver_sql("SELECT version()").scalar()).split(" on ")[0]
            out = out if engine.dialect.name == "postgresql" else "MariaDB " + out.split("-")[0]
    engine.dispose()
    return out
