"""What the three SQL backends share: lazy schema set-up, the write path and the queries.

A subclass per database (``sqlite.py``, ``postgres.py``, ``mysql.py``) supplies
the engine, its fastest batched insert, and its schema lock; everything else
is here, written once against SQLAlchemy Core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, Table, and_, or_, select
from sqlalchemy.engine import URL, Connection, Engine

from .._time import format_ts
from ..backend import GroupBy
from ..errors import StorageError
from ..filters import (
    AuditFilter,
    CostFilter,
    CostTotal,
    Page,
    SandboxEventFilter,
    decode_cursor,
    encode_cursor,
)
from ..records import AuditEvent, CostSnapshot, Record, SandboxEvent
from ..rollups import reopen
from . import migrate
from .errors import translate_errors
from .rows import (
    audit_from_row,
    cost_from_row,
    group_rows,
    sandbox_event_from_row,
    short_text,
)
from .schema import AUDIT_EVENTS, COST_SNAPSHOTS, SANDBOX_EVENTS
from .url import mask_url

__all__ = ["COST_FILTER_COLUMNS", "SQLBackend"]

T = TypeVar("T")
_Filter = AuditFilter | SandboxEventFilter | CostFilter

COST_FILTER_COLUMNS = ("sandbox_id", "namespace", "owner", "template")
"""The :class:`CostFilter` fields that match a column of the same name."""


class SQLBackend:
    """A backend on a SQL database; open one with :func:`~agenttier_router.storage.open_backend`.

    Construction never connects. The first call connects, creates or upgrades
    the schema, and raises :class:`~agenttier_router.storage.BackendUnavailable`
    while the database does not answer; later calls try again.
    """

    kind: ClassVar[str]
    """The backend's kind: ``sqlite``, ``postgresql`` or ``mysql``."""

    def __init__(self, url: URL, *, connect_timeout: float = 5.0, statement_timeout: float = 30.0):
        self._url = url
        self._password = url.password
        self._engine = self._create_engine(url, connect_timeout, statement_timeout)
        self._schema_ready = False
        self._schema_guard = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self._url)!r})"

    @property
    def url(self) -> str:
        """The backend's URL with its password masked; safe to log and show."""
        return mask_url(self._url)

    # -- hooks for the subclasses ------------------------------------------------

    def _create_engine(self, url: URL, connect_timeout: float, statement_timeout: float) -> Engine:
        raise NotImplementedError

    def _insert(self, conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` into ``table``, skipping event ids already stored."""
        raise NotImplementedError

    def _schema_lock(self, conn: Connection) -> AbstractContextManager[None]:
        """Hold the database-wide lock under which the schema is created or upgraded."""
        return nullcontext()

    @contextmanager
    def _connect(self, what: str) -> Iterator[Connection]:
        """Check out a connection, with every error translated."""
        if self._closed:
            raise StorageError(f"{what}: the backend is closed")
        with translate_errors(what, password=self._password), self._engine.connect() as conn:
            yield conn

    @staticmethod
    def _begin_write(conn: Connection) -> AbstractContextManager[Any]:
        """Begin a transaction that will write (SQLite takes its write lock up front)."""
        return conn.execution_options(agenttier_write=True).begin()

    @contextmanager
    def connection(self, what: str) -> Iterator[Connection]:
        """A connection on the ready schema, with every error translated; for maintenance.

        The rollups and the retention purge (``storage.rollups``,
        ``storage.retention``) run their own statements through this, and
        :meth:`begin_write` for their transactions.
        """
        self._ready()
        with self._connect(what) as conn:
            yield conn

    def begin_write(self, conn: Connection) -> AbstractContextManager[Any]:
        """Begin a transaction that will write, on a connection from :meth:`connection`."""
        return self._begin_write(conn)

    # -- schema ------------------------------------------------------------------

    def upgrade(self) -> migrate.SchemaStatus:
        """Create or upgrade the schema now, rather than on the first call.

        Idempotent. Raises :class:`~agenttier_router.storage.BackendUnavailable`
        when the database does not answer and :class:`~agenttier_router.storage.SchemaError`
        when its schema is newer than this code.
        """
        with self._schema_guard, self._connect("schema upgrade") as conn:
            with self._schema_lock(conn), self._begin_write(conn):
                status = migrate.upgrade(conn)
            self._schema_ready = True
            return status

    def schema_status(self) -> migrate.SchemaStatus:
        """Report the database's schema revision against this code's, changing nothing."""
        with self._connect("schema check") as conn:
            return migrate.SchemaStatus(migrate.current_revision(conn), migrate.head_revision())

    def _ready(self) -> None:
        if self._schema_ready:
            return
        # Look before locking: a database already at head needs no lock and no
        # write, so a read-only file or account can still be read.
        if self.schema_status().up_to_date:
            self._schema_ready = True
        else:
            self.upgrade()

    # -- writes ------------------------------------------------------------------

    def write_batch(self, records: Sequence[Record]) -> None:
        """Store a mixed sequence of records in one transaction, skipping known event ids."""
        grouped = group_rows(records)
        if not grouped:
            return
        self._ready()
        earliest = min((r.time for r in records if isinstance(r, CostSnapshot)), default=None)
        with self._connect("write") as conn, self._begin_write(conn):
            for table, rows in grouped.items():
                self._insert(conn, table, rows)
            if earliest is not None:
                reopen(conn, earliest)  # an hour already rolled up is summed again

    def record_audit_event(self, event: AuditEvent) -> None:
        """Store one audit event."""
        self.write_batch((event,))

    def record_sandbox_event(self, event: SandboxEvent) -> None:
        """Store one sandbox lifecycle event."""
        self.write_batch((event,))

    def record_cost_snapshot(self, snapshot: CostSnapshot) -> None:
        """Store one cost snapshot."""
        self.write_batch((snapshot,))

    # -- reads -------------------------------------------------------------------

    @staticmethod
    def where(table: Table, query: _Filter, columns: Sequence[str]) -> list[ColumnElement[bool]]:
        """The WHERE terms for a filter's set fields, its window and its cursor."""
        # Values were cut and cleaned on the way in; clean the filter the same
        # way so that a long or NUL-bearing value still finds its rows.
        terms: list[ColumnElement[bool]] = [
            table.c[name] == short_text(value)
            for name in columns
            if (value := getattr(query, name)) is not None
        ]
        ts = table.c.ts
        if query.since is not None:
            terms.append(ts >= format_ts(query.since))
        until = format_ts(query.until) if query.until is not None else None
        if query.cursor is not None:
            after_ts, after_id = decode_cursor(query.cursor)
            if until is None or after_ts < until:
                # The cursor is the tighter upper bound; giving only it lets
                # SQLite start its index range there instead of at ``until``
                # (which made page 500 cost 30 times page 1). Row-value
                # comparison is written out so that MySQL uses the index too.
                until = None
                terms.append(and_(ts <= after_ts, or_(ts < after_ts, table.c.id < after_id)))
        if until is not None:
            terms.append(ts < until)
        return terms

    def _page(
        self, table: Table, query: _Filter, columns: Sequence[str], build: Callable[[Any], T]
    ) -> Page[T]:
        stmt = (
            select(table)
            .where(*self.where(table, query, columns))
            .order_by(table.c.ts.desc(), table.c.id.desc())
            .limit(query.limit + 1)
        )
        self._ready()
        with self._connect("read") as conn:
            rows = conn.execute(stmt).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = tuple(build(row) for row in rows)
        cursor = encode_cursor(format_ts(items[-1].time), rows[-1].id) if more else None  # type: ignore[attr-defined]
        return Page(items, cursor)

    def list_audit_events(self, query: AuditFilter) -> Page[AuditEvent]:
        """Return one page of audit events matching ``query``, newest first."""
        columns = ("actor", "sandbox_id", "action", "resource", "namespace", "outcome")
        return self._page(AUDIT_EVENTS, query, columns, audit_from_row)

    def list_sandbox_events(self, query: SandboxEventFilter) -> Page[SandboxEvent]:
        """Return one page of sandbox events matching ``query``, newest first."""
        columns = ("sandbox_id", "namespace", "phase")
        return self._page(SANDBOX_EVENTS, query, columns, sandbox_event_from_row)

    def list_cost_snapshots(self, query: CostFilter) -> Page[CostSnapshot]:
        """Return one page of cost snapshots matching ``query``, newest first."""
        return self._page(COST_SNAPSHOTS, query, COST_FILTER_COLUMNS, cost_from_row)

    def summarize_costs(self, query: CostFilter, group_by: GroupBy = "sandbox") -> list[CostTotal]:
        """Return summed costs per sandbox, namespace, owner or template over the window.

        Read from the daily and hourly rollups for the buckets they hold and
        from raw snapshots only for the rest (see ``storage.rollups``); the
        most expensive first, then by key. Not paged: the filter's ``limit``
        is ignored and a ``cursor`` is refused.
        """
        from ..rollups import summarize

        return summarize(self, query, group_by)

    def close(self) -> None:
        """Close every pooled connection. Calling it twice is harmless."""
        self._closed = True
        self._engine.dispose()
