"""MySQL and MariaDB, through PyMySQL.

PyMySQL's ``executemany`` turns a batch into multi-row ``INSERT``s; ``ON
DUPLICATE KEY UPDATE event_id = event_id`` makes it idempotent without
``INSERT IGNORE``, which would also hide data errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine

from ..errors import BackendUnavailable
from .base import SQLBackend
from .schema import WRITE_COLUMNS

__all__ = ["MySQLBackend"]

_SCHEMA_LOCK = "agenttier_router.schema"


class MySQLBackend(SQLBackend):
    """A store in MySQL or MariaDB."""

    kind = "mysql"

    def _create_engine(self, url: URL, connect_timeout: float, statement_timeout: float) -> Engine:
        self._lock_wait = max(1, int(statement_timeout * 0.8))
        io_timeout = max(1, round(statement_timeout))
        return create_engine(
            url,
            connect_args={
                "connect_timeout": max(1, round(connect_timeout)),
                "read_timeout": io_timeout,
                "write_timeout": io_timeout,
                "charset": "utf8mb4",
            },
            pool_pre_ping=True,
            pool_recycle=3600,  # below MySQL's default wait_timeout, which drops idle links
            hide_parameters=True,
        )

    @contextmanager
    def _schema_lock(self, conn: Connection) -> Iterator[None]:
        got = conn.execute(
            text("SELECT GET_LOCK(:name, :wait)"), {"name": _SCHEMA_LOCK, "wait": self._lock_wait}
        ).scalar()
        conn.commit()
        if got != 1:
            raise BackendUnavailable(
                f"schema upgrade: another process held the schema lock for {self._lock_wait}s"
            )
        try:
            yield
        finally:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _SCHEMA_LOCK})
            conn.commit()

    def _insert(self, conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
        columns = WRITE_COLUMNS[table]
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            "ON DUPLICATE KEY UPDATE event_id = event_id",
            rows,
        )
