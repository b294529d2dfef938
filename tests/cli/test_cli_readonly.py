"""Reading commands never create or upgrade a schema; they say which command does (issue 9).

``records …`` used to create the tables of an empty database, and upgrade an
older one, as a side effect of reading it.
"""

from __future__ import annotations

from typing import Any

import pytest
from cli_helpers import run, touch_sqlite_file

from agenttier_router.storage import SQLBackend, open_backend

VERSION_TABLE = "agenttier_schema_version"  # storage/sql/schema.py's VERSION_TABLE

READERS = [
    ["records", "audit"],
    ["records", "sandbox-events", "--format", "json"],
    ["records", "costs", "--format", "csv"],
    ["records", "costs", "--group-by", "namespace"],
]


def _revision(url: str) -> str | None:
    backend = open_backend(url)
    assert isinstance(backend, SQLBackend)
    try:
        return backend.schema_status().current
    finally:
        backend.close()


def _tables(database: Any) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(database.url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c))
def test_an_empty_database_is_read_not_created(
    store_url: str, database: Any, command: list[str]
) -> None:
    touch_sqlite_file(store_url)

    result = run(*command, "--dsn", store_url)

    assert result.code == 1
    assert result.stdout == ""
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert "has no agenttier-router schema" in line
    assert "'agenttier-router db upgrade'" in line
    assert _tables(database) == set()  # nothing was created


def test_an_older_schema_is_read_not_upgraded(store_url: str, database: Any) -> None:
    assert run("db", "upgrade", "--dsn", store_url).code == 0
    database.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0001'")

    for command in READERS:
        result = run(*command, "--dsn", store_url)
        assert result.code == 1, command
        assert len(result.error_lines) == 1, result.stderr
        assert "revision 0001, behind" in result.stderr
        assert "'agenttier-router db upgrade'" in result.stderr
    check = run("db", "check", "--dsn", store_url)
    assert check.code == 1
    assert "behind" in check.stdout and "db upgrade" in check.stdout
    assert _revision(store_url) == "0001"  # neither reading nor checking upgraded it

    assert run("db", "upgrade", "--dsn", store_url).code == 0
    assert run("records", "audit", "--dsn", store_url).code == 0


def test_db_check_on_an_empty_database_creates_nothing(store_url: str, database: Any) -> None:
    touch_sqlite_file(store_url)
    assert run("db", "check", "--dsn", store_url).code == 1
    assert _tables(database) == set()
