"""Every error the storage layer raises.

The tree::

    StorageError
      + BackendUnavailable   the database cannot be reached now; try again later
      + SchemaError          the schema cannot be created, upgraded or used
      + InvalidQuery         a query the backend cannot answer (a malformed cursor)
      + InvalidURL           a storage URL that cannot be parsed or names no known driver
      + DriverNotInstalled   the URL's driver is not installed; the message names the extra

Driver and SQLAlchemy exceptions never leave the backends: they are translated
into this tree at the boundary (``storage.sql.engine.translate_errors``).
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "DriverNotInstalled",
    "InvalidQuery",
    "InvalidURL",
    "SchemaError",
    "StorageError",
]


class StorageError(Exception):
    """Base of every error raised by the storage layer."""


class BackendUnavailable(StorageError):
    """The database cannot be reached now; the same call may succeed later."""


class SchemaError(StorageError):
    """The database schema cannot be created, upgraded or used by this version."""


class InvalidQuery(StorageError, ValueError):
    """A query the backend cannot answer, such as one with a malformed cursor."""


class InvalidURL(StorageError, ValueError):
    """A storage URL that cannot be parsed, or whose scheme names no known driver."""


class DriverNotInstalled(StorageError, ImportError):
    """The driver for a storage URL is not installed; the message names the extra."""
