"""Upgrade the Go schema in place: fixed-width timestamps, event ids, indexes.

- ``ts`` values written as Go's ``RFC3339Nano`` (trailing zeros trimmed, any
  offset) are rewritten as fixed-width UTC with microseconds, so text order is
  time order. Every row is kept.
- New columns: ``event_id`` everywhere (unique, for idempotent writes);
  ``namespace`` (default ``''``) and ``outcome`` (default ``'success'``) on
  ``audit_events``. Go-era rows take the defaults.
- One index per filter column, ending in (ts, id), and a unique index on
  ``event_id``.
- MySQL only: indexed text columns become ``VARCHAR(255)`` with a binary
  collation (so filters match exactly, as on the other databases; longer values
  are cut with a ``…`` first), and ``details``/``message`` become ``MEDIUMTEXT``,
  since ``TEXT`` holds less than the 64 KiB the write path allows.
- PostgreSQL only: ``ts`` uses the ``C`` collation, so its order is byte order.

Each step checks what is there first, so a run that MySQL's non-transactional
DDL left half done can simply be run again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from agenttier_router.storage._time import format_ts, parse_ts
from agenttier_router.storage.errors import SchemaError
from agenttier_router.storage.sql.schema import INDEXES, LONG_TEXT, SHORT_TEXT

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("agenttier_router.storage.migrations")

_FIXED_WIDTH = "____-__-__T__:__:__.______Z"
_CHUNK = 5000

_NEW_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    # (column, default); None-like "" default means nullable without default.
    "audit_events": (("event_id", ""), ("namespace", "''"), ("outcome", "'success'")),
    "sandbox_events": (("event_id", ""),),
    "cost_snapshots": (("event_id", ""),),
}


def _columns(table: str) -> dict[str, sa.types.TypeEngine[object]]:
    return {c["name"]: c["type"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _normalise_timestamps(table: str) -> None:
    """Rewrite every ``ts`` that is not fixed-width UTC, in chunks ordered by id."""
    bind = op.get_bind()
    select = sa.text(
        f"SELECT id, ts FROM {table} WHERE id > :after AND ts NOT LIKE '{_FIXED_WIDTH}' "
        f"ORDER BY id LIMIT {_CHUNK}"
    )
    update = sa.text(f"UPDATE {table} SET ts = :ts WHERE id = :id")
    after, done = 0, 0
    while rows := bind.execute(select, {"after": after}).all():
        changes = []
        for row_id, ts in rows:
            try:
                changes.append({"id": row_id, "ts": format_ts(parse_ts(ts))})
            except ValueError:
                raise SchemaError(
                    f"{table} row id={row_id} has a timestamp that is not RFC3339 ({ts!r}); "
                    "fix or delete that row, then run the upgrade again"
                ) from None
        bind.execute(update, changes)
        after, done = rows[-1][0], done + len(rows)
        log.info("schema upgrade: %s: normalised %d timestamps", table, done)


def _mysql_types(table: str) -> None:
    bind = op.get_bind()
    present = _columns(table)
    short = [c for c in present if c in SHORT_TEXT]
    for column in short:
        # Cut before narrowing, so that strict mode does not refuse the ALTER.
        bind.execute(sa.text(
            f"UPDATE {table} SET {column} = CONCAT(LEFT({column}, 254), '…') "
            f"WHERE CHAR_LENGTH({column}) > 255"
        ))
    changes = ["MODIFY ts VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"]
    changes += [
        f"MODIFY {c} VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" for c in short
    ]
    changes += [
        f"MODIFY {c} MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        for c in present
        if c in LONG_TEXT
    ]
    bind.execute(sa.text(f"ALTER TABLE {table} " + ", ".join(changes)))


def _add_columns(table: str, dialect: str) -> None:
    present = _columns(table)
    text_type = "TEXT"
    if dialect == "mysql":
        text_type = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    for column, default in _NEW_COLUMNS[table]:
        if column in present:
            continue
        spec = f"{text_type} NOT NULL DEFAULT {default}" if default else text_type
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column} {spec}")


def _create_indexes(table: str) -> None:
    existing = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}
    present = _columns(table)
    for columns in INDEXES[table]:
        name = f"ix_{table}_{columns[0]}"
        # Indexes on columns a later revision adds (0003's owner, template) are its job.
        if name not in existing and set(columns) <= set(present):
            op.create_index(name, table, list(columns))
    name = f"ux_{table}_event_id"
    if name not in existing:
        op.create_index(name, table, ["event_id"], unique=True)


def upgrade() -> None:
    """Upgrade the three tables in place; see the module docstring."""
    dialect = op.get_bind().dialect.name
    dialect = "mysql" if dialect == "mariadb" else dialect
    for table in INDEXES:
        _normalise_timestamps(table)
        if dialect == "mysql":
            _mysql_types(table)
        elif dialect == "postgresql":
            op.execute(f'ALTER TABLE {table} ALTER COLUMN ts TYPE TEXT COLLATE "C"')
        _add_columns(table, dialect)
        _create_indexes(table)


def downgrade() -> None:
    """Refuse: recorded history is never dropped by a migration."""
    raise NotImplementedError("downgrades are not supported; restore a backup instead")
