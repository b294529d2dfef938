"""``agenttier-router db``: create, upgrade and check the schema; roll up costs; purge history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import click

from agenttier_router.storage import SQLBackend, format_ts
from agenttier_router.storage.retention import DEFAULT_PAUSE, ENV_VARS, KINDS, RetentionPolicy
from agenttier_router.storage.retention import purge as purge_history
from agenttier_router.storage.rollups import WATERMARK, maintenance_state, roll_up

from .options import NO_STORAGE, dsn_option, open_store

__all__ = ["check", "db", "purge", "retention_options", "retention_policy", "rollup", "upgrade"]


@contextmanager
def _sql_store(dsn: str | None, *, create: bool = False) -> Iterator[SQLBackend]:
    """Open the store like :func:`open_store`; the schema commands need a SQL database."""
    with open_store(dsn, create=create) as backend:
        if not isinstance(backend, SQLBackend):  # pragma: no cover - open_store refuses Noop
            raise click.UsageError(NO_STORAGE)
        yield backend


F = TypeVar("F", bound=Callable[..., Any])


_WHAT = {"audit": "audit events", "sandbox-events": "sandbox events",
         "costs": "raw cost snapshots", "rollups-hourly": "hourly cost rollups",
         "rollups-daily": "daily cost rollups"}


def retention_options(command: F) -> F:
    """Add ``--retention-audit`` … ``--retention-rollups-daily`` (and their env vars) to a command.

    The command receives ``retention``, a checked :class:`RetentionPolicy`;
    a bad value is a usage error that names its flag.
    """
    for kind in reversed(KINDS):
        command = click.option(
            f"--retention-{kind}", f"retention_{kind.replace('-', '_')}", metavar="DURATION",
            envvar=ENV_VARS[kind], show_envvar=True,
            help=f"Keep {_WHAT[kind]} this long (365d, 12h, 2w); 0 keeps forever "
                 "(the default).",
        )(command)
    return command


def retention_policy(values: dict[str, str | None]) -> RetentionPolicy:
    """The policy :func:`retention_options` collected; a bad value is a usage error."""
    try:
        return RetentionPolicy.from_settings(
            {kind: values[f"retention_{kind.replace('-', '_')}"] for kind in KINDS})
    except ValueError as error:
        raise click.UsageError(str(error)) from None


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
        marks = maintenance_state(backend) if status.up_to_date else {}
    click.echo(f"database: {backend.url}")
    click.echo(f"current:  {status.current or 'none'}")
    click.echo(f"head:     {status.head}")
    if status.up_to_date:
        click.echo("status:   up to date")
        mark = marks.get(WATERMARK)
        click.echo(f"rollups:  up to {format_ts(mark)}" if mark else
                   "rollups:  none yet (run 'agenttier-router db rollup')")
        return
    state = "behind" if status.current else "no revision (empty, or written by the Go Router)"
    click.echo(f"status:   {state}: run 'agenttier-router db upgrade'")
    ctx.exit(1)


@db.command()
@dsn_option
@click.option("--grace", type=click.IntRange(0, 24 * 366), default=6, show_default=True,
              metavar="HOURS",
              help="Recompute this many hours before the watermark, for snapshots written late.")
def rollup(dsn: str | None, grace: int) -> None:
    """Bring the hourly and daily cost rollups up to date, and print what was done.

    Every closed hour since the watermark (less the grace) is summed again
    from the raw cost snapshots, each in its own transaction; so is each
    complete day touched. Safe to run while Routers run, and twice at once.

    \b
    Example:
      agenttier-router db rollup --dsn postgresql://router@db/agenttier
    """
    with _sql_store(dsn) as backend:
        report = roll_up(backend, grace=timedelta(hours=grace))
    click.echo(f"database:  {backend.url}")
    click.echo(f"hours:     {report.hours} recomputed")
    click.echo(f"days:      {report.days} recomputed")
    click.echo(f"rows:      {report.rows} rollup rows written")
    before = format_ts(report.watermark_before) if report.watermark_before else "none"
    after = format_ts(report.watermark) if report.watermark else "none"
    click.echo(f"watermark: {before} -> {after}")


@db.command()
@dsn_option
@retention_options
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--batch", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="Rows deleted per transaction.")
@click.option("--grace", type=click.IntRange(0, 24 * 366), default=6, show_default=True,
              metavar="HOURS", help="The rollups' grace window (as for 'db rollup').")
@click.option("--pause", type=click.FloatRange(0, 100), default=DEFAULT_PAUSE, show_default=True,
              metavar="RATIO", help="After each batch, wait this many times as long as it took "
              "(to leave a running Router's writes more room); 0 never waits.")
def purge(dsn: str | None, dry_run: bool, batch: int, grace: int, pause: float,
          **retention: str | None) -> None:
    """Delete history older than its retention, in batches, and print what was deleted.

    Nothing is deleted for a kind without a retention (the default is
    forever). Raw cost snapshots are kept until the rollups hold them. Each
    table purged is recorded as an audit event (actor system, action purge).
    Another runner holding the maintenance lease makes this exit 1.

    \b
    Examples:
      agenttier-router db purge --dsn sqlite:///agenttier.db --retention-audit 365d --dry-run
      AGENTTIER_RETENTION_COSTS=90d agenttier-router db purge --dsn postgresql://router@db/at
    """
    policy = retention_policy(retention)
    with _sql_store(dsn) as backend:
        click.echo(f"database: {backend.url}")
        if policy.forever:
            click.echo("nothing to purge: every retention is 0 (keep forever)")
            return
        report = purge_history(backend, policy, batch=batch, dry_run=dry_run,
                               grace=timedelta(hours=grace), pause=pause)
        if report.skipped:
            raise click.ClickException(
                f"another purge holds the maintenance lease ({report.skipped}); try later")
        verb = "would delete" if dry_run else "deleted"
        for result in report.results:
            note = f" ({result.note})" if result.note else ""
            click.echo(f"{result.table}: {verb} {result.rows} rows before "
                       f"{format_ts(result.cutoff)}{note}")
        if not dry_run:
            backend.write_batch([r.audit_event() for r in report.results if r.rows])
