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

from ..errors import StorageError
from .base import SQLBackend
from .migrate import SchemaStatus
from .schema import WRITE_COLUMNS

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
        """Create or upgrade the schema, then refresh the query planner's statistics."""
        status = super().upgrade()
        self._analyze()
        return status

    def close(self) -> None:
        """Refresh the planner's statistics (as SQLite advises before closing), then close."""
        if not self._closed and self._schema_ready:
            with contextlib.suppress(StorageError):
                self._analyze()
        super().close()

    def _analyze(self) -> None:
        # Without statistics SQLite may serve "actor = ? AND outcome = ?" from
        # the outcome index, which matches most rows. A bounded ANALYZE reads
        # at most ~400 rows per index, so it costs milliseconds at any size.
        with self._connect("analyze") as conn, self._begin_write(conn):
            conn.exec_driver_sql("PRAGMA analysis_limit=400")
            conn.exec_driver_sql("ANALYZE")

    def _insert(self, conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
        columns = WRITE_COLUMNS[table]
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (event_id) DO NOTHING",
            rows,
        )
