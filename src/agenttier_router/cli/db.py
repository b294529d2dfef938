"""``agenttier-router db``: create, upgrade and check the storage schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from agenttier_router.storage import SQLBackend

from .options import NO_STORAGE, dsn_option, open_store

__all__ = ["check", "db", "upgrade"]


@contextmanager
def _sql_store(dsn: str | None, *, create: bool = False) -> Iterator[SQLBackend]:
    """Open the store like :func:`open_store`; the schema commands need a SQL database."""
    with open_store(dsn, create=create) as backend:
        if not isinstance(backend, SQLBackend):  # pragma: no cover - open_store refuses Noop
            raise click.UsageError(NO_STORAGE)
        yield backend


@click.group()
def db() -> None:
    """Create, upgrade and check the storage schema.

    The Router upgrades the schema itself when it starts; these commands do
    it ahead of time (in a deploy step), or report where a database stands.
    """


@db.command()
@dsn_option
def upgrade(dsn: str | None) -> None:
    """Create or upgrade the schema to this version's revision, and print it.

    Idempotent, and safe while Routers run: the upgrade holds a database-wide
    lock. A database written by the Go Router is upgraded in place, keeping
    every row. Fails when the database's schema is newer than this version.

    \b
    Example:
      agenttier-router db upgrade --dsn postgresql://router@db/agenttier
    """
    with _sql_store(dsn, create=True) as backend:
        before = backend.schema_status()
        after = backend.upgrade()
    click.echo(f"database: {backend.url}")
    if before.current == after.current:
        click.echo(f"revision: {after.current} (already up to date)")
    else:
        click.echo(f"revision: {after.current} (upgraded from {before.current or 'none'})")


@db.command()
@dsn_option
@click.pass_context
def check(ctx: click.Context, dsn: str | None) -> None:
    """Print the database's schema revision against this version's; change nothing.

    Exits 0 when the schema is up to date, and 1 when it is behind or empty
    (run 'agenttier-router db upgrade'), newer than this version, or the
    database cannot be reached.
    """
    with _sql_store(dsn) as backend:
        status = backend.schema_status()
    click.echo(f"database: {backend.url}")
    click.echo(f"current:  {status.current or 'none'}")
    click.echo(f"head:     {status.head}")
    if status.up_to_date:
        click.echo("status:   up to date")
        return
    state = "behind" if status.current else "no revision (empty, or written by the Go Router)"
    click.echo(f"status:   {state}: run 'agenttier-router db upgrade'")
    ctx.exit(1)
