"""The Go Router's schema: three tables, no indexes.

A database the Go Router wrote is already in this state, so on such a database
this revision changes nothing (every statement is ``IF NOT EXISTS``) and the
next one upgrades it in place.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The Go Router's SQLite DDL, verbatim. Its Postgres and MySQL variants differ
# only in the id and REAL types.
_GO_DDL = (
    "CREATE TABLE IF NOT EXISTS sandbox_events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "ts TEXT NOT NULL, sandbox_id TEXT, sandbox_name TEXT, namespace TEXT, phase TEXT, "
    "reason TEXT, message TEXT)",
    "CREATE TABLE IF NOT EXISTS audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "ts TEXT NOT NULL, actor TEXT, action TEXT, resource TEXT, sandbox_id TEXT, details TEXT)",
    "CREATE TABLE IF NOT EXISTS cost_snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "ts TEXT NOT NULL, sandbox_id TEXT, namespace TEXT, cpu_hours REAL, mem_gb_hours REAL, "
    "estimated_usd REAL)",
)


def go_ddl(dialect: str) -> list[str]:
    """Return the Go Router's CREATE TABLE statements for ``dialect``."""
    if dialect == "sqlite":
        return list(_GO_DDL)
    if dialect == "postgresql":
        return [
            s.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY").replace(
                " REAL", " DOUBLE PRECISION"
            )
            for s in _GO_DDL
        ]
    if dialect in ("mysql", "mariadb"):
        return [
            s.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT AUTO_INCREMENT PRIMARY KEY")
            .replace(" REAL", " DOUBLE")
            + " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            for s in _GO_DDL
        ]
    raise NotImplementedError(f"no DDL for dialect {dialect}")


def upgrade() -> None:
    """Create the Go Router's three tables where they do not exist."""
    for statement in go_ddl(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    """Refuse: recorded history is never dropped by a migration."""
    raise NotImplementedError("downgrades are not supported; restore a backup instead")
