"""Real databases for tests: each test in a clean schema, on SQLite, PostgreSQL and MySQL.

Storage tests are parametrised over SQLite, PostgreSQL and MySQL/MariaDB.
The server URLs come from one environment variable::

    AGENTTIER_TEST_DATABASES="postgresql+psycopg://postgres@127.0.0.1:5432/test,mysql+pymysql://root@127.0.0.1:3306/test"

(those are the defaults). Each test gets its own PostgreSQL schema or MySQL
database, dropped afterwards. The fixtures that use this live in
``tests/conftest.py``; test modules import helpers from here, never from
``conftest`` (another folder's conftest.py would shadow that name). A server
that cannot be reached skips its tests with a loud reason on a laptop, and
fails them in CI (``CI=true``).
"""

from __future__ import annotations

import os
import uuid
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

DEFAULT_DATABASES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test,"
    "mysql+pymysql://root@127.0.0.1:3306/test"
)


def _server_urls() -> dict[str, str]:
    raw = os.environ.get("AGENTTIER_TEST_DATABASES", DEFAULT_DATABASES)
    urls = {}
    for url in filter(None, (u.strip() for u in raw.split(","))):
        kind = "postgresql" if url.startswith("postgres") else "mysql"
        urls[kind] = url
    return urls


SERVER_URLS = _server_urls()
KINDS = ["sqlite", *SERVER_URLS]


@cache
def _admin(kind: str) -> Engine | str:
    """An autocommit engine on the server, or the reason it cannot be reached."""
    url = make_url(SERVER_URLS[kind])
    url = url.set(drivername="postgresql+psycopg" if kind == "postgresql" else "mysql+pymysql")
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        engine.dispose()
        return f"{kind} at {url.render_as_string(hide_password=True)} is unreachable: {error}"
    return engine


def admin_engine(kind: str) -> Engine:
    """Return the server's admin engine, skipping (or, in CI, failing) when it is down."""
    engine = _admin(kind)
    if isinstance(engine, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires every backend: {engine}")
        pytest.skip(f"SKIPPED BACKEND: {engine}")
    return engine


class IsolatedDatabase:
    """A fresh, empty database for one test: a SQLite file, a PG schema or a MySQL database."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.name = f"t_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'store.db'}"
            return
        self.admin = admin_engine(kind)
        base = make_url(SERVER_URLS[kind])
        with self.admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f"CREATE SCHEMA {self.name}"))
                url = base.update_query_dict({"options": f"-csearch_path={self.name}"})
            else:
                conn.execute(text(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4"))
                url = base.set(database=self.name)
        self.url = url.render_as_string(hide_password=False)

    def drop(self) -> None:
        """Drop the schema or database."""
        if self.kind == "sqlite":
            return
        with self.admin.connect() as conn:
            if self.kind == "postgresql":
                conn.execute(text(f"DROP SCHEMA IF EXISTS {self.name} CASCADE"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {self.name}"))

    def execute(self, *statements: str) -> None:
        """Run raw SQL in this database, outside any backend (to set up Go-era data)."""
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()
