"""Schema creation and upgrades, through Alembic, under a lock.

``upgrade`` is what every backend runs before its first call and what
``agenttier-router db upgrade`` runs explicitly. It is idempotent and safe when
several processes start at once on an empty database: each takes the
backend's schema lock (a PostgreSQL advisory lock, a MySQL named lock, or
SQLite's write lock) and the first one in does the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection

from ..errors import SchemaError
from .schema import VERSION_TABLE

__all__ = ["SchemaStatus", "current_revision", "head_revision", "upgrade"]

log = logging.getLogger("agenttier_router.storage")

_SCRIPT_LOCATION = "agenttier_router.storage:migrations"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database's schema stands: its revision (None when empty) and this code's head."""

    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        """True when the database is at this code's head revision."""
        return self.current == self.head


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """Return the newest schema revision this code knows."""
    head = _script().get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database is at, or None when it has none stored.

    Raises :class:`SchemaError` when the database is newer than this code.
    """
    current = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    if current is not None:
        try:
            _script().get_revision(current)
        except CommandError:
            raise SchemaError(
                f"the database schema is at revision {current!r}, newer than this "
                f"agenttier-router knows (head {head_revision()!r}); upgrade agenttier-router"
            ) from None
    return current


def upgrade(connection: Connection) -> SchemaStatus:
    """Create or upgrade the schema on ``connection`` to the head revision.

    The caller holds the schema lock and has begun the transaction. A database
    with no stored revision but with the Go Router's tables is upgraded in place.
    """
    current = current_revision(connection)
    head = head_revision()
    if current != head:
        log.info("storage schema: upgrading from %s to %s", current or "nothing", head)
        command.upgrade(_config(connection), "head")
    return SchemaStatus(current=head, head=head)
