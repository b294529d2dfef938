"""Query filters, result pages and cost totals.

A filter is built once and checked when it is built::

    AuditFilter(actor="alice", since=now - timedelta(days=7), limit=50)

``since`` is inclusive and ``until`` exclusive; both must be timezone-aware.
``limit`` is 1 to 1000 (default 100). Results come newest first; pass a page's
``next_cursor`` as the next filter's ``cursor`` to read on. Paging is keyset
paging on (time, row id), so rows that arrive while a reader pages do not shift
the pages: every row that existed when paging began is returned exactly once.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from ._time import TS_WIDTH, parse_ts, require_aware
from .errors import InvalidQuery

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "AuditFilter",
    "CostFilter",
    "CostTotal",
    "Page",
    "SandboxEventFilter",
    "decode_cursor",
    "encode_cursor",
]

DEFAULT_LIMIT = 100
"""Rows per page when a filter gives no ``limit``."""

MAX_LIMIT = 1000
"""The largest ``limit`` a filter accepts."""

T = TypeVar("T")


def encode_cursor(ts: str, row_id: int) -> str:
    """Return the opaque cursor that resumes a listing after the row at (``ts``, ``row_id``)."""
    return base64.urlsafe_b64encode(f"{ts}|{row_id}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    """Return the (timestamp, row id) position a cursor names.

    Raises :class:`InvalidQuery` for anything :func:`encode_cursor` did not make.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        ts, row_id = raw.split("|")
        if len(ts) != TS_WIDTH or not row_id.isdigit():
            raise ValueError(raw)
        parse_ts(ts)
        return ts, int(row_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidQuery(f"malformed cursor: {cursor[:80]!r}") from None


class _Window:
    """Checks shared by the three filters: the time window, the limit and the cursor."""

    __slots__ = ()
    since: datetime | None
    until: datetime | None
    limit: int
    cursor: str | None

    def _check(self) -> None:
        if self.since is not None:
            require_aware(self.since, "since")
        if self.until is not None:
            require_aware(self.until, "until")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})"
            )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise TypeError(f"limit must be an int, not {type(self.limit).__name__}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT} (got {self.limit})")
        if self.cursor is not None:
            decode_cursor(self.cursor)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter(_Window):
    """Which audit events to list. Every field is optional; set fields must all match."""

    actor: str | None = None
    sandbox_id: str | None = None
    action: str | None = None
    resource: str | None = None
    namespace: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxEventFilter(_Window):
    """Which sandbox lifecycle events to list. Set fields must all match."""

    sandbox_id: str | None = None
    namespace: str | None = None
    phase: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True, slots=True, kw_only=True)
class CostFilter(_Window):
    """Which cost snapshots to list or sum. Set fields must all match.

    ``summarize_costs`` uses the matching fields and the window; it does not
    page, so it ignores ``limit`` and rejects a ``cursor``.
    """

    sandbox_id: str | None = None
    namespace: str | None = None
    owner: str | None = None
    template: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, newest first; ``next_cursor`` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class CostTotal:
    """Summed cost of one group over a window, from ``samples`` snapshots.

    ``key`` is the namespace, owner or template, or ``namespace/name`` for a
    sandbox (so that one name in two namespaces stays two sandboxes). An
    owner or template that older rows lack is ``(unknown)``.
    """

    key: str
    cpu_hours: float
    mem_gb_hours: float
    estimated_usd: float
    samples: int
