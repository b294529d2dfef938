"""PostgreSQL, through psycopg 3.

A batch goes in as one ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO
NOTHING``: one statement and one round trip per table, whatever the batch
size, and still idempotent on ``event_id`` (which COPY alone cannot be).
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


def _unnest_insert(table: str) -> str:
    columns = WRITE_COLUMNS[table]
    arrays = ", ".join(
        "%s::float8[]" if c in _FLOAT_COLUMNS else "%s::text[]" for c in columns
    )
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


_INSERTS = {table: _unnest_insert(table) for table in WRITE_COLUMNS}


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
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        conn.exec_driver_sql(_INSERTS[table], columns)
