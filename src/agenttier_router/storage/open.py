"""Opening a store from a URL or from the environment.

::

    backend = open_backend("sqlite:///agenttier.db")
    backend = open_backend("postgresql://router@db/agenttier")
    backend = backend_from_env(os.environ)   # STORAGE_DSN or STORAGE_SQLITE_PATH

The backend's module, and so its driver, is imported only when a URL asks
for it: the base install needs nothing beyond the standard library's sqlite3.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping

from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from .backend import Backend, NoopBackend
from .errors import DriverNotInstalled
from .sql.url import invalid_url, mask_secrets, parse_url

__all__ = ["backend_from_env", "open_backend", "url_from_env"]

log = logging.getLogger("agenttier_router.storage")

# kind -> (backend class, driver module, pip extra)
_BACKENDS = {
    "sqlite": ("agenttier_router.storage.sql.sqlite:SQLiteBackend", "sqlite3", None),
    "postgresql": ("agenttier_router.storage.sql.postgres:PostgresBackend", "psycopg", "postgres"),
    "mysql": ("agenttier_router.storage.sql.mysql:MySQLBackend", "pymysql", "mysql"),
}


def open_backend(
    url: str | None, *, connect_timeout: float = 5.0, statement_timeout: float = 30.0
) -> Backend:
    """Return the backend a storage URL names, without connecting.

    ``None`` or ``""`` gives :class:`NoopBackend`. Fails only for a malformed
    URL (:class:`InvalidURL`, one line naming the forms expected, a query
    value the driver refuses included) or a missing driver
    (:class:`DriverNotInstalled`, whose message names the pip extra); both
    are :class:`StorageError`, so a server can report storage as failing and
    serve on. A database that is down does not make
    it fail: the backend's calls raise :class:`BackendUnavailable` until the
    database answers, and the first call that reaches it creates or upgrades
    the schema.

    ``connect_timeout`` bounds each connection attempt (for SQLite, the wait
    for another writer's lock); ``statement_timeout`` bounds each statement on
    PostgreSQL and each socket read or write on MySQL.
    """
    if not url:
        return NoopBackend()
    kind, parsed = parse_url(url)
    target, driver, extra = _BACKENDS[kind]
    try:
        importlib.import_module(driver)
    except ImportError:
        raise DriverNotInstalled(
            f"{kind} storage needs the {driver} driver: pip install 'agenttier-router[{extra}]'"
        ) from None
    module, _, name = target.partition(":")
    backend_class = getattr(importlib.import_module(module), name)
    try:
        backend: Backend = backend_class(
            parsed, connect_timeout=connect_timeout, statement_timeout=statement_timeout
        )
    except (ArgumentError, ValueError, TypeError) as error:
        # The engine reads the query (?timeout=abc, ?connect_timeout=abc) as it is built.
        reason = mask_secrets(str(error).strip().splitlines()[0] if str(error).strip() else "")
        raise invalid_url(kind, parsed.drivername.partition("+")[0],
                          f"the driver refuses a query value ({reason or type(error).__name__})"
                          ) from None
    return backend


def url_from_env(environ: Mapping[str, str]) -> str | None:
    """Return the storage URL that ``STORAGE_DSN`` or ``STORAGE_SQLITE_PATH`` gives, or None.

    ``STORAGE_SQLITE_PATH`` is the Go Router's variable: a file path. When both
    are set, the DSN wins and a warning says so.
    """
    dsn = environ.get("STORAGE_DSN", "").strip()
    path = environ.get("STORAGE_SQLITE_PATH", "").strip()
    if dsn and path:
        log.warning("both STORAGE_DSN and STORAGE_SQLITE_PATH are set; using STORAGE_DSN")
    if dsn:
        return dsn
    if path:
        return URL.create("sqlite", database=path).render_as_string()
    return None


def backend_from_env(environ: Mapping[str, str]) -> Backend:
    """Open the backend the environment names (see :func:`url_from_env`); Noop when none."""
    return open_backend(url_from_env(environ))
