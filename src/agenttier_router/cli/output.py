"""Printing records and totals as an aligned table, a JSON array, or CSV.

JSON and CSV are for machines: every field, untruncated, with ``time`` as
RFC3339 UTC, and they stream (``--all`` over a million rows holds one page
in memory). The table is for people: the main fields only, long text cut
short, and it is laid out once every row is in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import click

from agenttier_router.storage import format_ts

__all__ = [
    "AUDIT_COLUMNS",
    "COST_COLUMNS",
    "SANDBOX_EVENT_COLUMNS",
    "Column",
    "rfc3339",
    "total_columns",
    "write",
]

_ELLIPSIS = "..."
_CONTROL = {code: " " for code in range(32)} | {127: " "}


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: its name, the attribute it reads, and how the table shows it.

    ``table=False`` keeps a column out of the table (it stays in JSON and
    CSV); ``width`` is the most characters a table cell shows.
    """

    name: str
    attr: str = ""
    table: bool = True
    width: int = 40

    def value(self, item: object) -> object:
        """Return this column's value for ``item``, with datetimes as RFC3339 text."""
        value = getattr(item, self.attr or self.name)
        return rfc3339(value) if isinstance(value, datetime) else value


AUDIT_COLUMNS = (
    Column("time"),
    Column("actor"),
    Column("action"),
    Column("resource"),
    Column("sandbox_id"),
    Column("namespace"),
    Column("outcome"),
    Column("details", width=60),
    Column("event_id", table=False),
)
"""The columns of ``records audit``."""

SANDBOX_EVENT_COLUMNS = (
    Column("time"),
    Column("sandbox_id"),
    Column("sandbox_name"),
    Column("namespace"),
    Column("phase"),
    Column("reason"),
    Column("message", width=60),
    Column("event_id", table=False),
)
"""The columns of ``records sandbox-events``."""

COST_COLUMNS = (
    Column("time"),
    Column("sandbox_id"),
    Column("namespace"),
    Column("cpu_hours"),
    Column("mem_gb_hours"),
    Column("estimated_usd"),
    Column("event_id", table=False),
)
"""The columns of ``records costs``."""


def total_columns(group_by: str) -> tuple[Column, ...]:
    """The columns of ``records costs --group-by``: the group's key, then the sums."""
    key = "sandbox_id" if group_by == "sandbox" else "namespace"
    return (
        Column(key, attr="key"),
        Column("cpu_hours"),
        Column("mem_gb_hours"),
        Column("estimated_usd"),
        Column("samples"),
    )


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as UTC RFC3339, to the µs: ``2026-11-26T17:00:00.000001Z``."""
    return format_ts(moment)


def write(items: Iterable[object], columns: Sequence[Column], fmt: str) -> None:
    """Print ``items`` to stdout as ``fmt`` (``table``, ``json`` or ``csv``)."""
    if fmt == "json":
        _write_json(items, columns)
    elif fmt == "csv":
        _write_csv(items, columns)
    else:
        _write_table(items, columns)


def _write_json(items: Iterable[object], columns: Sequence[Column]) -> None:
    opened = False
    for item in items:
        fields = {column.name: column.value(item) for column in columns}
        record = json.dumps(fields, ensure_ascii=False)
        click.echo((",\n  " if opened else "[\n  ") + record, nl=False)
        opened = True
    click.echo("\n]" if opened else "[]")


def _write_csv(items: Iterable[object], columns: Sequence[Column]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush(row: Sequence[object]) -> None:
        writer.writerow(row)
        click.echo(buffer.getvalue(), nl=False)
        buffer.seek(0)
        buffer.truncate()

    flush([column.name for column in columns])
    for item in items:
        flush([column.value(item) for column in columns])


def _cell(value: object, width: int) -> str:
    if isinstance(value, float):
        # Six decimals: a minute of the minimal template costs about $0.00014,
        # which four would round to 0.0000.
        return f"{value:.6f}"
    text = str(value).translate(_CONTROL)
    if len(text) > width:
        text = text[: width - len(_ELLIPSIS)] + _ELLIPSIS
    return text


def _write_table(items: Iterable[object], columns: Sequence[Column]) -> None:
    shown = [column for column in columns if column.table]
    rows = [[column.name.upper() for column in shown]]
    numeric = [False] * len(shown)
    for item in items:
        values = [column.value(item) for column in shown]
        if len(rows) == 1:  # every row of a column has the same type; right-align numbers
            numeric = [isinstance(value, int | float) for value in values]
        rows.append(
            [_cell(value, column.width) for value, column in zip(values, shown, strict=True)]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(shown))]
    for row in rows:
        cells = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        click.echo("  ".join(cells).rstrip())
