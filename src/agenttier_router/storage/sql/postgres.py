"""PostgreSQL, through psycopg 3.

A batch is COPYed into a temporary staging table, then moved with one
``INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING``: COPY's speed, with
the idempotence on ``event_id`` that COPY alone cannot give. Measured against
the alternatives in BENCHMARKS.md (the first version, an ``unnest(arrays)`` insert,
reached about two thirds of its rate).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine

from .base import SQLBackend
from .schema import WRITE_COLUMNS

__all__ = ["PostgresBackend"]

_SCHEMA_LOCK_KEY = 0x6167_656E_7474_6965  # "agenttie": one advisory lock for schema changes
_FLOAT_COLUMNS = frozenset({"cpu_hours", "mem_gb_hours", "estimated_usd"})


def _stage_ddl(table: str) -> str:
    columns = ", ".join(
        f"{c} {'float8' if c in _FLOAT_COLUMNS else 'text'}" for c in WRITE_COLUMNS[table]
    )
    # ON COMMIT DELETE ROWS: the stage is empty at the start of every batch.
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_{table} ({columns}) ON COMMIT DELETE ROWS"


def _merge(table: str) -> str:
    columns = ", ".join(WRITE_COLUMNS[table])
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM stage_{table} "
        "ON CONFLICT (event_id) DO NOTHING"
    )


_STAGE_DDL = {table: _stage_ddl(table) for table in WRITE_COLUMNS}
_COPY = {table: f"COPY stage_{table} ({', '.join(WRITE_COLUMNS[table])}) FROM STDIN"
         for table in WRITE_COLUMNS}
_MERGE = {table: _merge(table) for table in WRITE_COLUMNS}


class PostgresBackend(SQLBackend):
    """A store in PostgreSQL; the backend for a Router with several replicas."""

    kind = "postgresql"

    def _create_engine(self, url: URL, connect_timeout: float, statement_timeout: float) -> Engine:
        connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        if "options" not in url.query:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True,
                             hide_parameters=True)

    @contextmanager
    def _schema_lock(self, conn: Connection) -> Iterator[None]:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            conn.commit()

    def _insert(self, conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
        # Every batch, not once per connection: a CREATE in a batch that
        # failed is rolled back with it, so remembering it would be wrong.
        conn.exec_driver_sql(_STAGE_DDL[table])
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            with cursor.copy(_COPY[table]) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(_MERGE[table])
