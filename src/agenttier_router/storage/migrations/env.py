"""Alembic environment: runs the migrations on the connection the backend hands over.

The backend holds the schema lock and the transaction (``sql/migrate.py``);
this file only points Alembic at them.
"""

from __future__ import annotations

from alembic import context

from agenttier_router.storage.sql.schema import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
