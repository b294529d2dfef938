"""Opening a store: URL schemes, drivers, the environment, passwords, a database that is down."""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path

import pytest
from realdb import SERVER_URLS, admin_engine
from sqlalchemy import text

from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    BackendUnavailable,
    DriverNotInstalled,
    InvalidURL,
    NoopBackend,
    SQLBackend,
    StorageError,
    backend_from_env,
    mask_url,
    open_backend,
    url_from_env,
)
from agenttier_router.storage.sql.mysql import MySQLBackend
from agenttier_router.storage.sql.postgres import PostgresBackend
from agenttier_router.storage.sql.sqlite import SQLiteBackend


@pytest.mark.parametrize("url", [None, ""])
def test_no_url_gives_noop(url: str | None) -> None:
    assert isinstance(open_backend(url), NoopBackend)


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("sqlite:///relative.db", SQLiteBackend),
        ("sqlite:////abs/path.db", SQLiteBackend),
        ("sqlite://", SQLiteBackend),
        ("postgresql://u@h/db", PostgresBackend),
        ("postgres://u@h/db", PostgresBackend),
        ("postgresql+psycopg://u@h/db", PostgresBackend),
        ("mysql://u@h/db", MySQLBackend),
        ("mariadb://u@h/db", MySQLBackend),
        ("mysql+pymysql://u@h/db", MySQLBackend),
    ],
)
def test_schemes_open_the_right_backend_without_connecting(url: str, cls: type) -> None:
    backend = open_backend(url)  # host "h" does not exist: opening must not connect
    assert type(backend) is cls
    backend.close()


def test_sqlite_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_backend("sqlite:///relative.db")
    relative.write_batch([AuditEvent(actor="a", action="b")])
    relative.close()
    assert (tmp_path / "relative.db").exists()
    absolute = open_backend(f"sqlite:///{tmp_path}/abs.db")  # sqlite:////… form
    absolute.write_batch([AuditEvent(actor="a", action="b")])
    absolute.close()
    assert (tmp_path / "abs.db").exists()


def test_in_memory_sqlite_is_one_database_for_every_thread() -> None:
    import threading

    backend = open_backend("sqlite://")
    threads = [
        threading.Thread(target=backend.write_batch, args=([AuditEvent(actor=str(i), action="x")],))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(backend.list_audit_events(AuditFilter()).items) == 8
    backend.close()


@pytest.mark.parametrize(
    "url",
    [
        "oracle://u:pw@h/db",
        "no scheme at all",
        "postgresql://u:pw@h:notaport/db",
        "postgresql://u:pw@h",
        "mysql://u:pw@h/",
    ],
)
def test_malformed_urls_fail_without_showing_the_password(url: str) -> None:
    with pytest.raises(InvalidURL) as raised:
        open_backend(url)
    assert "pw" not in str(raised.value)
    assert isinstance(raised.value, StorageError)


@pytest.mark.parametrize(("module", "url", "extra"), [
    ("psycopg", "postgresql://u@h/db", "agenttier-router[postgres]"),
    ("pymysql", "mysql://u@h/db", "agenttier-router[mysql]"),
])
def test_a_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, url: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail
    with pytest.raises(DriverNotInstalled) as raised:
        open_backend(url)
    assert f"pip install '{extra}'" in str(raised.value)


def test_passwords_are_masked_in_repr_and_url() -> None:
    backend = open_backend("postgresql://router:s3cret@db.example/agenttier")
    assert "s3cret" not in repr(backend)
    assert isinstance(backend, SQLBackend)
    assert backend.url == "postgresql+psycopg://router:***@db.example/agenttier"
    assert mask_url("mysql://root:hunter2@h/db") == "mysql://root:***@h/db"
    assert "hunter2" not in mask_url("mysql://root:hunter2@h:bad/db")
    backend.close()


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_unreachable_server_raises_backend_unavailable_without_the_password(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    backend = open_backend(f"{kind}://router:s3cret@127.0.0.1:1/db", connect_timeout=2)
    with pytest.raises(BackendUnavailable) as raised:
        backend.write_batch([AuditEvent(actor="a", action="b")])
    with pytest.raises(BackendUnavailable):
        backend.list_audit_events(AuditFilter())
    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in caplog.text
    backend.close()


def test_a_sqlite_directory_that_appears_later(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    backend = open_backend(f"sqlite:///{directory}/store.db")
    with pytest.raises(BackendUnavailable):
        backend.write_batch([AuditEvent(actor="a", action="b")])
    directory.mkdir()
    backend.write_batch([AuditEvent(actor="a", action="b")])
    assert len(backend.list_audit_events(AuditFilter()).items) == 1
    backend.close()


@pytest.mark.parametrize("kind", list(SERVER_URLS))
def test_a_database_that_appears_later_gets_its_schema(kind: str) -> None:
    """The server answers but the database is missing; once it exists, calls work."""
    admin = admin_engine(kind)
    name = f"late_{uuid.uuid4().hex[:10]}"
    from sqlalchemy.engine import make_url

    url = make_url(SERVER_URLS[kind]).set(database=name).render_as_string(hide_password=False)
    backend = open_backend(url)
    try:
        with pytest.raises(BackendUnavailable):
            backend.list_audit_events(AuditFilter())
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        backend.write_batch([AuditEvent(actor="a", action="b")])
        assert len(backend.list_audit_events(AuditFilter()).items) == 1
    finally:
        backend.close()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))


def test_url_from_env() -> None:
    assert url_from_env({}) is None
    assert url_from_env({"STORAGE_DSN": "postgresql://u@h/db"}) == "postgresql://u@h/db"
    assert url_from_env({"STORAGE_SQLITE_PATH": "/var/lib/agenttier/agenttier.db"}) == (
        "sqlite:////var/lib/agenttier/agenttier.db"
    )
    assert url_from_env({"STORAGE_SQLITE_PATH": "rel.db"}) == "sqlite:///rel.db"


def test_dsn_wins_over_sqlite_path_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"STORAGE_DSN": "sqlite://", "STORAGE_SQLITE_PATH": "/tmp/x.db"}
    with caplog.at_level(logging.WARNING):
        assert url_from_env(environ) == "sqlite://"
    assert "STORAGE_DSN" in caplog.text


def test_backend_from_env(tmp_path: Path) -> None:
    assert isinstance(backend_from_env({}), NoopBackend)
    backend = backend_from_env({"STORAGE_SQLITE_PATH": str(tmp_path / "env.db")})
    backend.write_batch([AuditEvent(actor="a", action="b")])
    backend.close()
    assert (tmp_path / "env.db").exists()
