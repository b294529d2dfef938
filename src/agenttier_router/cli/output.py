r"""Printing records and totals as an aligned table, a JSON array, or CSV.

JSON and CSV are for machines: every field, untruncated, with ``time`` as
RFC3339 UTC, and they stream (``--all`` over a million rows holds one page
in memory). The table is for people: the main fields only, long text cut
short, and it is laid out once every row is in.

Stored fields come from callers, so none reaches the terminal raw: C0 and C1
control characters and the bidirectional controls (U+202A-U+202E,
U+2066-U+2069, U+200E/F), which could move the cursor, recolour the screen or
reorder a line, are shown escaped: ``\x1b``, ``\u202e``. The table also shows
tabs and line breaks as spaces; CSV keeps them (quoted, as CSV does); JSON
writes every one of them as a ``\uXXXX`` escape, which parses back unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from agenttier_router.storage import format_ts

__all__ = [
    "AUDIT_COLUMNS",
    "COST_COLUMNS",
    "SANDBOX_EVENT_COLUMNS",
    "Column",
    "as_object",
    "rfc3339",
    "safe_text",
    "total_columns",
    "write",
]

_ELLIPSIS = "..."
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
"""What never reaches a terminal raw: C0, DEL, C1 and the bidi controls."""
_UNSAFE_IN_CSV = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
"""The same, less tab and line feed, which CSV quotes and a terminal shows as they are."""
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}]")
"""What ``json.dumps`` leaves raw with ``ensure_ascii=False`` (it escapes C0 itself)."""
_BLANKS = str.maketrans("\t\n\r", "   ")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def safe_text(text: str) -> str:
    r"""Return ``text`` with every control character shown as an escape (``\x1b``, ``\u202e``)."""
    return _UNSAFE.sub(_escaped, text)


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: its name, the attribute it reads, and how the table shows it.

    ``table=False`` keeps a column out of the table (it stays in JSON and
    CSV); ``width`` is the most characters a table cell shows; ``is_object``
    marks stored JSON text that JSON output writes as an object, as the API does.
    """

    name: str
    attr: str = ""
    table: bool = True
    width: int = 40
    is_object: bool = False

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
    Column("details", width=60, is_object=True),
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


def as_object(text: object) -> dict[str, Any]:
    """Stored ``details`` text as the API shows it: its JSON object, ``{}``, or ``{"text": …}``."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _write_json(items: Iterable[object], columns: Sequence[Column]) -> None:
    opened = False
    for item in items:
        fields = {column.name: as_object(column.value(item)) if column.is_object
                  else column.value(item) for column in columns}
        record = _UNSAFE_IN_JSON.sub(_json_escaped, json.dumps(fields, ensure_ascii=False))
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
        flush([_csv_cell(column.value(item)) for column in columns])


def _csv_cell(value: object) -> object:
    return _UNSAFE_IN_CSV.sub(_escaped, value) if isinstance(value, str) else value


def _cell(value: object, width: int) -> str:
    if isinstance(value, float):
        # Six decimals: a minute of the minimal template costs about $0.00014,
        # which four would round to 0.0000.
        return f"{value:.6f}"
    text = safe_text(str(value).translate(_BLANKS))
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
