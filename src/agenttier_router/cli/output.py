r"""Printing records and totals as an aligned table, a JSON array, or CSV.

All three formats stream: ``--all`` over a million rows holds at most one
page in memory. JSON and CSV are for machines: every field, untruncated,
with ``time`` as RFC3339 UTC. The table is for people: the main fields only,
long text cut short, laid out from its first :data:`LAYOUT_ROWS` rows (a
later cell that is longer is cut to fit), and fitted to the terminal's width
(``$COLUMNS``, or the terminal's size when stdout is one) unless ``wide``:

1. text columns marked ``shrink_to`` (details, message) are cut down to that;
2. times lose their fraction of a second;
3. columns are dropped in their ``drop`` order (1 first; 0 is never dropped);
4. the widest remaining text columns are cut, down to 10 characters.

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
import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from agenttier_router.storage import format_ts

__all__ = [
    "AUDIT_COLUMNS",
    "COST_COLUMNS",
    "LAYOUT_ROWS",
    "SANDBOX_EVENT_COLUMNS",
    "Column",
    "as_object",
    "rfc3339",
    "safe_text",
    "terminal_width",
    "total_columns",
    "write",
]

LAYOUT_ROWS = 1000
"""How many rows a table is laid out from (one page at most), before it streams the rest."""

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
    marks stored JSON text that JSON output writes as an object, as the API
    does. Fitting a table to the terminal first cuts a ``shrink_to`` column
    to that many characters, then drops columns by ``drop`` (1 first; 0
    never).
    """

    name: str
    attr: str = ""
    table: bool = True
    width: int = 40
    is_object: bool = False
    shrink_to: int = 0
    drop: int = 0

    def value(self, item: object) -> object:
        """Return this column's value for ``item``, with datetimes as RFC3339 text."""
        value = getattr(item, self.attr or self.name)
        return rfc3339(value) if isinstance(value, datetime) else value


AUDIT_COLUMNS = (
    Column("time"),
    Column("actor"),
    Column("action"),
    Column("resource", drop=1),
    Column("sandbox_id", drop=4),
    Column("namespace", drop=2),
    Column("outcome"),
    Column("details", width=60, is_object=True, shrink_to=20, drop=3),
    Column("event_id", table=False),
)
"""The columns of ``records audit``; a narrow table drops RESOURCE, NAMESPACE, DETAILS, then
SANDBOX_ID."""

SANDBOX_EVENT_COLUMNS = (
    Column("time"),
    Column("sandbox_id"),
    Column("sandbox_name", drop=1),
    Column("namespace", drop=2),
    Column("phase"),
    Column("reason", drop=4),
    Column("message", width=60, shrink_to=20, drop=3),
    Column("event_id", table=False),
)
"""The columns of ``records sandbox-events``; a narrow table drops SANDBOX_NAME, NAMESPACE,
MESSAGE, then REASON."""

COST_COLUMNS = (
    Column("time"),
    Column("sandbox_id"),
    Column("namespace", drop=1),
    Column("cpu_hours", drop=2),
    Column("mem_gb_hours", drop=3),
    Column("estimated_usd"),
    Column("event_id", table=False),
)
"""The columns of ``records costs``; a narrow table drops NAMESPACE, CPU_HOURS, then
MEM_GB_HOURS."""


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


def terminal_width() -> int | None:
    """The width a table must fit: ``$COLUMNS``, else the terminal's if stdout is one, else None."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def write(items: Iterable[object], columns: Sequence[Column], fmt: str, *,
          width: int | None = None) -> None:
    """Print ``items`` to stdout as ``fmt`` (``table``, ``json`` or ``csv``), streaming.

    ``width`` is what a table must fit (see the module's docstring); None
    shows every table column.
    """
    if fmt == "json":
        _write_json(items, columns)
    elif fmt == "csv":
        _write_csv(items, columns)
    else:
        _write_table(items, columns, width)


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


def _text(value: object) -> str:
    if isinstance(value, float):
        # Six decimals: a minute of the minimal template costs about $0.00014,
        # which four would round to 0.0000.
        return f"{value:.6f}"
    return safe_text(str(value).translate(_BLANKS))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - len(_ELLIPSIS)] + _ELLIPSIS


_TIME_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.\d+Z$")


@dataclass(slots=True)
class _Layout:
    """The columns a table shows, each one's width, and whether times are shown to the second."""

    shown: list[Column]
    widths: list[int]
    to_the_second: bool = False

    @property
    def total(self) -> int:
        return sum(self.widths) + 2 * (len(self.widths) - 1)

    def drop(self, index: int) -> None:
        del self.shown[index], self.widths[index]


def _fit(layout: _Layout, numeric: list[bool], limit: int) -> list[bool]:
    """Narrow ``layout`` to ``limit`` characters in the stated order; return the new ``numeric``."""
    for i, column in enumerate(layout.shown):  # 1. long text columns are cut
        if layout.total > limit and column.shrink_to:
            narrower = max(column.shrink_to, layout.widths[i] - (layout.total - limit))
            layout.widths[i] = min(layout.widths[i], narrower)
    if layout.total > limit and "time" in [c.name for c in layout.shown]:  # 2. to the second
        i = [c.name for c in layout.shown].index("time")
        layout.widths[i] = min(layout.widths[i], len("2026-11-26T17:00:00Z"))
        layout.to_the_second = True
    for column in sorted((c for c in layout.shown if c.drop), key=lambda c: c.drop):
        if layout.total <= limit:  # 3. columns are dropped
            break
        i = layout.shown.index(column)
        layout.drop(i)
        del numeric[i]
    while layout.total > limit:  # 4. the widest text column is cut
        text = [(w, i) for i, w in enumerate(layout.widths) if not numeric[i] and w > 10]
        if not text:
            break
        _, i = max(text)
        layout.widths[i] -= 1
    return numeric


def _write_table(items: Iterable[object], columns: Sequence[Column], limit: int | None) -> None:
    rows = iter(items)
    first = list(itertools.islice(rows, LAYOUT_ROWS))  # laid out from these; the rest stream
    shown = [column for column in columns if column.table]
    numeric = [False] * len(shown)
    if first:  # every row of a column has the same type; right-align numbers
        numeric = [isinstance(column.value(first[0]), int | float) for column in shown]
    cells = [[_text(column.value(item)) for column in shown] for item in first]
    widths = [max([len(column.name), *(min(len(row[i]), column.width) for row in cells)])
              for i, column in enumerate(shown)]
    layout = _Layout(list(shown), widths)
    if limit is not None:
        numeric = _fit(layout, numeric, limit)
    kept = [shown.index(column) for column in layout.shown]

    def line(texts: Sequence[str]) -> str:
        out = []
        for text, column, width, is_number in zip(
                texts, layout.shown, layout.widths, numeric, strict=True):
            if layout.to_the_second and column.name == "time":
                text = _TIME_FRACTION.sub(r"\1Z", text)
            text = _cut(text, width)
            out.append(text.rjust(width) if is_number else text.ljust(width))
        return "  ".join(out).rstrip()

    click.echo(line([column.name.upper() for column in layout.shown]))
    for row in cells:
        click.echo(line([row[i] for i in kept]))
    del cells, first
    for item in rows:
        click.echo(line([_text(layout.shown[j].value(item)) for j in range(len(kept))]))
