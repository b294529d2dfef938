"""SQLite: the bundled backend, through the standard library's sqlite3.

WAL mode lets readers run beside the writer; a busy timeout makes writers
wait for each other instead of failing; a new database file is created with
mode 0600. ``sqlite://`` is an in-memory database shared by every thread of
the process (one connection, used under a lock).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from .base import SQLBackend
from .migrate import SchemaStatus
from .schema import INDEXES, WRITE_COLUMNS

__all__ = ["SQLiteBackend"]


class SQLiteBackend(SQLBackend):
    """A store in one SQLite file (or in memory), for single-replica Routers and evaluation."""

    kind = "sqlite"

    def _create_engine(self, url: URL, connect_timeout: float, statement_timeout: float) -> Engine:
        path = url.database or ""
        memory = path in ("", ":memory:")
        self._memory_guard = threading.RLock() if memory else None
        engine = create_engine(
            url,
            # Transactions are begun by the "begin" hook below, not by the driver.
            connect_args={"isolation_level": None, "check_same_thread": False,
                          "timeout": connect_timeout},
            poolclass=StaticPool if memory else None,
            hide_parameters=True,
        )

        if not memory:
            @event.listens_for(engine, "do_connect")
            def _create_private(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
                # Audit history is private: create the file 0600 before SQLite does.
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn: Any, record: Any) -> None:
            if not memory:
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=FULL")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("agenttier_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _connect(self, what: str) -> Iterator[Connection]:
        if self._memory_guard is None:
            with super()._connect(what) as conn:
                yield conn
        else:
            with self._memory_guard, super()._connect(what) as conn:
                yield conn

    def upgrade(self) -> SchemaStatus:
        """Create or upgrade the schema, then give the query planner its fixed statistics."""
        status = super().upgrade()
        with self._connect("planner statistics") as conn, self._begin_write(conn):
            _write_planner_statistics(conn)
        return status

    def _insert(self, conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
        columns = WRITE_COLUMNS[table]
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (event_id) DO NOTHING",
            rows,
        )


# Rows per distinct value, as SQLite's sqlite_stat1 records them, for the first
# column of each index: a sandbox has few records, a namespace or an outcome
# very many. Without statistics SQLite served "actor = ? AND outcome = ?" from
# the outcome index; a bounded ANALYZE samples too few rows to rank the indexes
# once a value has more than a few hundred rows, and a full one costs a second
# per million rows. SQLite's planner documentation suggests fixed statistics
# for exactly this: the plans stay the same whatever the data.
_ROWS = 1_000_000
_ROWS_PER_VALUE = {
    "ts": 1, "sandbox_id": 100, "actor": 1_000, "phase": 100_000, "namespace": 20_000,
    "action": 50_000, "resource": 300_000, "outcome": 300_000, "owner": 1_000,
    "template": 50_000,
}


def _write_planner_statistics(conn: Connection) -> None:
    rows = [
        (table, f"ix_{table}_{columns[0]}",
         " ".join([str(_ROWS), str(_ROWS_PER_VALUE[columns[0]])] + ["1"] * (len(columns) - 1)))
        for table, indexes in INDEXES.items()
        for columns in indexes
    ]
    rows += [(table, f"ux_{table}_event_id", f"{_ROWS} 1") for table in INDEXES]
    conn.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing
    conn.exec_driver_sql(
        f"DELETE FROM sqlite_stat1 WHERE tbl IN ({', '.join('?' * len(INDEXES))})",
        tuple(INDEXES),
    )
    conn.exec_driver_sql("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", rows)
    conn.exec_driver_sql("ANALYZE sqlite_schema")  # loads the rows just written
