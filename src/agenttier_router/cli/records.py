"""``agenttier-router records``: read audit events, sandbox events and costs back.

Each command builds a storage filter from its flags, lists one page (or,
with ``--all``, every page), and prints it. When more pages remain, the
cursor to resume from goes to stderr, so that stdout stays clean for pipes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import click

from agenttier_router.storage import (
    GROUP_BYS,
    OUTCOMES,
    AuditFilter,
    Backend,
    CostFilter,
    GroupBy,
    Page,
    SandboxEventFilter,
)

from .options import (
    Source,
    format_option,
    open_records,
    page_options,
    source_options,
    window_options,
)
from .output import (
    AUDIT_COLUMNS,
    COST_COLUMNS,
    SANDBOX_EVENT_COLUMNS,
    Column,
    total_columns,
    write,
)

__all__ = ["audit", "costs", "records", "sandbox_events"]

T = TypeVar("T")
Q = TypeVar("Q", AuditFilter, SandboxEventFilter, CostFilter)

_sandbox_option = click.option("--sandbox", "sandbox_id", metavar="ID", help="Only this sandbox.")
_namespace_option = click.option("--namespace", help="Only this Kubernetes namespace.")
_owner_option = click.option("--owner", help="Only costs of sandboxes this user owns.")
_template_option = click.option("--template", help="Only costs of sandboxes of this template.")


def _filter(kind: Callable[..., Q], **fields: Any) -> Q:
    """Build a storage filter from the flags given; a value it refuses is a usage error."""
    try:
        return kind(**{name: value for name, value in fields.items() if value is not None})
    except (TypeError, ValueError) as error:  # InvalidQuery, a bad --cursor, is a ValueError
        raise click.UsageError(str(error)) from error


class _Pages(Generic[T, Q]):
    """The items of one page, or of every page with ``follow``; then ``next_cursor`` is left.

    The first page is read on construction, so that a database that cannot
    be reached fails before anything (a CSV header, a JSON bracket) is printed.
    """

    def __init__(self, fetch: Callable[[Q], Page[T]], query: Q, follow: bool) -> None:
        self._fetch: Callable[[Q], Page[T]] = fetch
        self._query: Q = query
        self._first: Page[T] = fetch(query)
        self._follow = follow
        self.next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        page, query = self._first, self._query
        while True:
            yield from page.items
            if page.next_cursor is None or not self._follow:
                self.next_cursor = page.next_cursor
                return
            query = dataclasses.replace(query, cursor=page.next_cursor)
            page = self._fetch(query)


def _list(
    source: Source,
    list_of: Callable[[Backend], Callable[[Q], Page[T]]],
    query: Q,
    columns: Sequence[Column],
    *,
    follow: bool,
    fmt: str,
) -> None:
    """Open the store, print the listing, and hint at the next page on stderr."""
    with open_records(source) as backend:
        pages = _Pages(list_of(backend), query, follow)
        write(pages, columns, fmt)
    if pages.next_cursor is not None:
        click.echo(
            f"more records: rerun with --cursor {pages.next_cursor}, or --all for every page",
            err=True,
        )


@click.group()
def records() -> None:
    """Read stored records back, newest first: audit events, sandbox events and costs.

    Filters combine with AND. --since and --until take RFC3339 times with a
    zone (2026-11-26T17:00:00Z) or durations before now (30m, 24h, 7d, 2w).
    One page is printed unless --all is given; the cursor for the next page
    is printed on stderr.
    """


@records.command()
@click.option("--actor", help="Only events by this actor.")
@_sandbox_option
@click.option("--action", help="Only this action, e.g. create, exec, delete.")
@click.option("--resource", help="Only this resource type, e.g. sandbox.")
@_namespace_option
@click.option("--outcome", type=click.Choice(sorted(OUTCOMES)), help="Only this outcome.")
@window_options
@page_options
@format_option
@source_options
def audit(
    actor: str | None,
    sandbox_id: str | None,
    action: str | None,
    resource: str | None,
    namespace: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    cursor: str | None,
    follow: bool,
    fmt: str,
    source: Source,
) -> None:
    """List audit events: who did what to which resource, and how it ended.

    \b
    Examples:
      agenttier-router records audit --actor alice --since 7d
      agenttier-router records audit --outcome denied --all --format csv
    """
    query = _filter(
        AuditFilter,
        actor=actor,
        sandbox_id=sandbox_id,
        action=action,
        resource=resource,
        namespace=namespace,
        outcome=outcome,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    _list(source, lambda b: b.list_audit_events, query, AUDIT_COLUMNS, follow=follow, fmt=fmt)


@records.command("sandbox-events")
@_sandbox_option
@_namespace_option
@click.option("--phase", help="Only this lifecycle phase, e.g. Pending, Running, Failed.")
@window_options
@page_options
@format_option
@source_options
def sandbox_events(
    sandbox_id: str | None,
    namespace: str | None,
    phase: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    cursor: str | None,
    follow: bool,
    fmt: str,
    source: Source,
) -> None:
    """List sandbox lifecycle events: the phase each sandbox entered, and why.

    \b
    Examples:
      agenttier-router records sandbox-events --sandbox sb-1
      agenttier-router records sandbox-events --phase Failed --since 24h --format json
    """
    query = _filter(
        SandboxEventFilter,
        sandbox_id=sandbox_id,
        namespace=namespace,
        phase=phase,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    _list(source, lambda b: b.list_sandbox_events, query, SANDBOX_EVENT_COLUMNS,
          follow=follow, fmt=fmt)


@records.command()
@_sandbox_option
@_namespace_option
@_owner_option
@_template_option
@click.option(
    "--group-by",
    type=click.Choice(list(GROUP_BYS)),
    help="Print totals per sandbox (namespace/name), namespace, owner or template, most "
    "expensive first, instead of snapshots.",
)
@window_options
@page_options
@format_option
@source_options
def costs(
    sandbox_id: str | None,
    namespace: str | None,
    owner: str | None,
    template: str | None,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    cursor: str | None,
    follow: bool,
    fmt: str,
    source: Source,
) -> None:
    """List cost snapshots (CPU hours, memory GB-hours, estimated USD), or their totals.

    With --group-by, the snapshots in the window are summed per sandbox,
    namespace, owner or template (from the rollups where they are up to
    date); totals are not paged, so --limit, --cursor and --all do not apply.

    \b
    Examples:
      agenttier-router records costs --sandbox sb-1 --since 24h
      agenttier-router records costs --since 30d --group-by namespace
    """
    if group_by is not None and (limit is not None or cursor is not None or follow):
        raise click.UsageError(
            "--group-by prints totals, which are not paged: drop --limit, --cursor and --all"
        )
    query = _filter(
        CostFilter,
        sandbox_id=sandbox_id,
        namespace=namespace,
        owner=owner,
        template=template,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    if group_by is None:
        _list(source, lambda b: b.list_cost_snapshots, query, COST_COLUMNS, follow=follow, fmt=fmt)
        return
    with open_records(source) as backend:
        totals = backend.summarize_costs(query, cast(GroupBy, group_by))
    columns = total_columns(group_by)
    if group_by != "namespace":  # a sandbox's key is namespace/name
        columns = (Column(group_by, attr="key"), *columns[1:])
    write(totals, columns, fmt)
