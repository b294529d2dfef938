"""Costs by owner and template; hourly and daily cost rollups; maintenance state.

- ``cost_snapshots`` gains ``owner`` and ``template``, nullable and without a
  default, so every existing row and every BI query on the old columns stays
  as it was; one index each, ending in (ts, id) like the others.
- ``cost_rollups_hourly`` and ``cost_rollups_daily``: one row per bucket
  (its start, fixed-width UTC text) and sandbox (namespace and name).
- ``agenttier_maintenance``: one row per piece of maintenance state (the
  rollup watermark, the purge floors of the rollups, the maintenance lease).

Each step checks what is there first, so a run that MySQL's non-transactional
DDL left half done can simply be run again.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agenttier_router.storage.sql.schema import INDEXES, MAINTENANCE_ROWS

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MYSQL_SHORT = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
_MYSQL_TS = "VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin"


def _types(dialect: str) -> dict[str, str]:
    if dialect == "mysql":
        return {"ts": _MYSQL_TS, "short": _MYSQL_SHORT, "float": "DOUBLE", "int": "BIGINT",
                "name": "VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin",
                "suffix": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"}
    if dialect == "postgresql":
        return {"ts": 'TEXT COLLATE "C"', "short": "TEXT", "float": "DOUBLE PRECISION",
                "int": "BIGINT", "name": "TEXT", "suffix": ""}
    return {"ts": "TEXT", "short": "TEXT", "float": "REAL", "int": "INTEGER", "name": "TEXT",
            "suffix": ""}


def _rollup_ddl(table: str, t: dict[str, str]) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (bucket {t['ts']} NOT NULL, "
        f"namespace {t['short']} NOT NULL, sandbox_id {t['short']} NOT NULL, "
        f"owner {t['short']}, template {t['short']}, cpu_hours {t['float']} NOT NULL, "
        f"mem_gb_hours {t['float']} NOT NULL, estimated_usd {t['float']} NOT NULL, "
        f"samples {t['int']} NOT NULL, PRIMARY KEY (bucket, namespace, sandbox_id)){t['suffix']}"
    )


def upgrade() -> None:
    """Add the columns, the rollup tables and the maintenance table; see the module docstring."""
    bind = op.get_bind()
    dialect = "mysql" if bind.dialect.name == "mariadb" else bind.dialect.name
    t = _types(dialect)
    inspector = sa.inspect(bind)
    present = {c["name"] for c in inspector.get_columns("cost_snapshots")}
    for column in ("owner", "template"):
        if column not in present:
            op.execute(f"ALTER TABLE cost_snapshots ADD COLUMN {column} {t['short']}")
    existing = {i["name"] for i in sa.inspect(bind).get_indexes("cost_snapshots")}
    for columns in INDEXES["cost_snapshots"]:
        name = f"ix_cost_snapshots_{columns[0]}"
        if name not in existing:
            op.create_index(name, "cost_snapshots", list(columns))
    op.execute(_rollup_ddl("cost_rollups_hourly", t))
    op.execute(_rollup_ddl("cost_rollups_daily", t))
    op.execute(
        f"CREATE TABLE IF NOT EXISTS agenttier_maintenance (name {t['name']} NOT NULL "
        f"PRIMARY KEY, value {t['ts']}, holder {t['short']}, expires {t['ts']}){t['suffix']}"
    )
    have = {row[0] for row in bind.execute(sa.text("SELECT name FROM agenttier_maintenance"))}
    for name in MAINTENANCE_ROWS:
        if name not in have:
            bind.execute(sa.text("INSERT INTO agenttier_maintenance (name) VALUES (:name)"),
                         {"name": name})


def downgrade() -> None:
    """Refuse: recorded history is never dropped by a migration."""
    raise NotImplementedError("downgrades are not supported; restore a backup instead")
