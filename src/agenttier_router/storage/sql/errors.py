"""Translation of driver and SQLAlchemy errors into the storage error tree.

Everything a backend does against the database runs inside
:func:`translate_errors`, so no driver exception reaches a caller, and no
message carries the password.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from ..errors import BackendUnavailable, StorageError

__all__ = ["translate_errors"]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


@contextmanager
def translate_errors(what: str, *, password: str | None = None) -> Iterator[None]:
    """Re-raise driver, SQLAlchemy and OS errors as :class:`StorageError` subclasses.

    Connection failures, timeouts, a locked SQLite file and a file that cannot
    be opened become :class:`BackendUnavailable` (worth retrying); any other
    database error becomes a plain :class:`StorageError`. ``what`` names the
    operation in the message; ``password`` is scrubbed from it.
    """

    def message(error: BaseException) -> str:
        text = f"{what}: {_first_line(error)}"
        return text.replace(password, "***") if password else text

    try:
        yield
    except StorageError:
        raise
    except sa_exc.DBAPIError as error:
        orig = error.orig if error.orig is not None else error
        transient = error.connection_invalidated or _transient(orig)
        raise (BackendUnavailable if transient else StorageError)(message(orig)) from error
    except (sa_exc.TimeoutError, sa_exc.DisconnectionError) as error:
        raise BackendUnavailable(message(error)) from error
    except sa_exc.SQLAlchemyError as error:
        raise StorageError(message(error)) from error
    except OSError as error:
        raise BackendUnavailable(message(error)) from error
    except Exception as error:
        # A driver's own error, from a fast path that uses the driver directly
        # (PostgreSQL's COPY); anything else is a bug and goes up unchanged.
        if not _is_dbapi_error(error):
            raise
        raise (BackendUnavailable if _transient(error) else StorageError)(message(error)) from error


def _is_dbapi_error(error: BaseException) -> bool:
    """Whether ``error`` is a DB-API driver's ``Error`` (every driver exports that base class)."""
    module = sys.modules.get(type(error).__module__.split(".")[0])
    base = getattr(module, "Error", None)
    return isinstance(base, type) and isinstance(error, base)


def _transient(error: BaseException) -> bool:
    """Whether a DB-API error is one that waiting may cure.

    DB-API 2 drivers (sqlite3, psycopg, PyMySQL) all export OperationalError
    (lost connection, timeout, locked file, server shutting down) and
    InterfaceError at their top level; subclasses such as psycopg's
    QueryCanceled count too.
    """
    module = sys.modules.get(type(error).__module__.split(".")[0])
    names = ("OperationalError", "InterfaceError")
    kinds = tuple(k for k in (getattr(module, n, None) for n in names) if isinstance(k, type))
    return bool(kinds) and isinstance(error, kinds)
