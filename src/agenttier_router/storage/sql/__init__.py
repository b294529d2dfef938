"""The SQL backends: SQLite (bundled), PostgreSQL and MySQL, on SQLAlchemy Core.

Each database has its own module, imported only when a URL asks for it, so
the base install needs nothing beyond the standard library's sqlite3.
"""

from __future__ import annotations

from .base import SQLBackend
from .migrate import SchemaStatus

__all__ = ["SQLBackend", "SchemaStatus"]
