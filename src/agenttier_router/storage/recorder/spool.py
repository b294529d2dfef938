"""The recorder's local, durable spool: records the database could not take yet.

One SQLite file in WAL mode, ``recorder-spool.sqlite3`` in the spool
directory, holds a FIFO of records, each with its ``event_id`` and time, so
that a replay writes exactly the records that were spooled, and writes that
are idempotent on ``event_id`` store each of them once however often it is
replayed. This is a local file, not the store: it goes through the standard
library's sqlite3, whatever the store's backend.

::

    spool = Spool("/var/lib/agenttier/spool", max_bytes=256 * 2**20)
    evicted = spool.append(records)          # per-class counts of the oldest records dropped
    upto, batch = spool.peek(500)            # the oldest records, in order
    backend.write_batch(batch)
    replayed = spool.remove(upto)            # per-class counts of what was removed
    spool.close()

Durability: ``synchronous=NORMAL`` in WAL mode, so a committed append
survives the process being killed (SIGKILL, OOM), though the last appends
before a power cut may be lost. Size: the cap counts each record's payload
(its text fields in UTF-8, 8 bytes per number, 64 bytes of overhead); when an
append would pass it, the oldest records go first. The file itself is a
little larger (pages, the primary key); it is replaced by a fresh, empty file
when the spool empties.

One process at a time owns a spool directory: a lock file (``flock``) keeps a
second recorder from replaying the same records at the same time.

A full disk (issue 9). SQLite needs free space to delete as well as to
insert: in WAL mode a ``DELETE`` appends pages to the log. So removal is in
two steps. :meth:`Spool.remove` first removes records *logically*: it moves
a watermark, in memory, past them, so that :meth:`Spool.peek` never returns
them again and ``count`` and ``bytes`` no longer include them; then it tries
the ``DELETE``. When that fails, ``trim_error`` says why and the rows stay
in the file until :meth:`Spool.trim` succeeds. Once every record is removed
logically, ``trim`` starts a fresh, empty file instead of deleting rows, which
needs no free space at all. Rows removed only logically are replayed again
(harmlessly) if the process stops before a trim. :meth:`Spool.probe` tells
whether the file takes writes again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import format_ts
from ..records import AuditEvent, CostSnapshot, Record, SandboxEvent

__all__ = ["DEFAULT_MAX_BYTES", "SPOOL_FILE", "Spool"]

SPOOL_FILE = "recorder-spool.sqlite3"
"""The spool's file name inside the spool directory."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""The default cap on the spool's payload: 256 MiB."""

_LOCK_FILE = "recorder-spool.lock"
_VERSION = 1
_OVERHEAD = 64
_FIELDS = ("f1", "f2", "f3", "f4", "f5", "f6", "f7")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    {", ".join(_FIELDS)}
)
"""
_INSERT = (
    f"INSERT INTO spool (kind, size, event_id, ts, {', '.join(_FIELDS)}) "
    f"VALUES ({', '.join('?' * 11)})"
)
_SELECT = f"SELECT seq, kind, event_id, ts, {', '.join(_FIELDS)} FROM spool"
# Denied requests without a valid key (issue 9): anyone can make many, so a flood of them
# during an outage must not push out the records of known callers. They go first.
# Literals, not parameters, so that SQLite can use the partial index.
_EXPENDABLE = "kind = 1 AND f1 = 'anonymous' AND f6 = 'denied'"
_EXPENDABLE_INDEX = (
    f"CREATE INDEX IF NOT EXISTS spool_expendable ON spool (seq) WHERE {_EXPENDABLE}"
)

log = logging.getLogger("agenttier_router.storage.recorder.spool")

# Per record class: its kind number and the fields stored after event_id and time.
_LAYOUT: dict[type, tuple[int, tuple[str, ...]]] = {
    AuditEvent: (1, ("actor", "action", "resource", "sandbox_id", "namespace", "outcome",
                     "details")),
    SandboxEvent: (2, ("sandbox_id", "phase", "sandbox_name", "namespace", "reason", "message")),
    # owner and template came later, last: a row spooled before them reads back as "".
    CostSnapshot: (3, ("sandbox_id", "namespace", "cpu_hours", "mem_gb_hours", "estimated_usd",
                       "owner", "template")),
}
_CLASSES: dict[int, tuple[type, tuple[str, ...]]] = {
    kind: (cls, names) for cls, (kind, names) in _LAYOUT.items()
}


def _size(values: Sequence[Any]) -> int:
    return _OVERHEAD + sum(
        len(v.encode()) if isinstance(v, str) else 8 for v in values
    )


def encode(record: Record) -> tuple[Any, ...]:
    """Return the spool row for ``record``: (kind, size, event_id, ts, f1 … f7)."""
    kind, names = _LAYOUT[type(record)]
    values = [getattr(record, name) for name in names]
    head = (record.event_id, format_ts(record.time))
    values += [None] * (len(_FIELDS) - len(values))
    return (kind, _size((*head, *values)), *head, *values)


def decode(kind: int, event_id: str, ts: str, values: Sequence[Any]) -> Record:
    """Rebuild the record a spool row holds.

    The record passed its constructor's checks before it was spooled, so it is
    assembled without repeating them, as rows read back from the store are.
    """
    cls, names = _CLASSES[kind]
    record: Record = object.__new__(cls)
    for name, value in zip(names, values, strict=False):
        # No stored field is ever NULL: a NULL is a field added after the row was spooled.
        object.__setattr__(record, name, "" if value is None else value)
    object.__setattr__(record, "time", datetime.fromisoformat(ts))
    object.__setattr__(record, "event_id", event_id)
    return record


class Spool:
    """A durable FIFO of records in one SQLite file in ``directory``, capped at ``max_bytes``.

    Not thread-safe: one thread (the recorder's writer) uses it. ``count``
    and ``bytes`` may be read from any thread. Raises ``OSError`` when the
    directory cannot be used or another process holds it, and
    ``sqlite3.Error`` when the file cannot be opened.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.path = self.directory / SPOOL_FILE
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / _LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise BlockingIOError(
                f"spool directory {self.directory} is in use by another recorder"
            ) from None
        try:
            self._db = self._open(clock)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._clock = clock
        self._pinned = 0
        self._done = 0  # every record up to this seq is removed, if only logically
        self._trimmed = 0  # … and up to this one, from the file too
        self._closed_db = False
        self.trim_error: BaseException | None = None
        """Why the last :meth:`remove` or :meth:`trim` could not delete rows from the file."""
        self.count = 0
        """Records in the spool."""
        self.bytes = 0
        """Payload bytes of the records in the spool (what the cap counts)."""
        self.last_seq = 0
        """The sequence number of the newest record appended (0 before the first)."""
        self.refresh()

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, count={self.count}, bytes={self.bytes})"

    def __len__(self) -> int:
        return int(self.count)

    def _open(self, clock: Callable[[], float]) -> sqlite3.Connection:
        with contextlib.suppress(FileExistsError):  # private data: 0600 before SQLite makes it
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:
            # Not a database (a torn or foreign file): keep it for a person to read, start afresh.
            db.close()
            aside = self.path.with_name(f"{SPOOL_FILE}.corrupt-{int(clock())}")
            self.path.rename(aside)
            log.error("spool file %s is not a database; moved it to %s", self.path, aside)
            return self._open(clock)
        if version > _VERSION:
            db.close()
            raise sqlite3.DatabaseError(
                f"spool file {self.path} has format {version}; this version reads {_VERSION}"
            )
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA journal_size_limit=16777216")
        db.execute(_SCHEMA)
        db.execute(_EXPENDABLE_INDEX)
        db.execute(f"PRAGMA user_version={_VERSION}")
        return db

    def append(self, records: Sequence[Record]) -> Counter[type]:
        """Append ``records`` in order; return per-class counts of the records evicted.

        Evicts records, never the ones :meth:`peek` pinned, until the new
        ones fit under the cap: first anonymous denials (audit events of actor
        ``anonymous`` with outcome ``denied``), oldest first, then the oldest
        of the rest; if even that is not enough, the oldest of ``records``
        themselves are evicted (not stored).
        """
        rows = [encode(r) for r in records]
        incoming = sum(row[1] for row in rows)
        evicted: Counter[type] = Counter()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            excess = self.bytes + incoming - self.max_bytes
            if excess > 0:
                freed = self._evict(excess, evicted)
                excess -= freed
            skip = 0
            while excess > 0 and skip < len(rows):  # the batch alone is over the cap
                excess -= rows[skip][1]
                incoming -= rows[skip][1]
                evicted[type(records[skip])] += 1
                skip += 1
            db.executemany(_INSERT, rows[skip:])
            last_seq = db.execute("SELECT coalesce(max(seq), 0) FROM spool").fetchone()[0]
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self.refresh()
            raise
        self.last_seq = last_seq
        self.count += len(rows) - skip
        self.bytes += incoming
        return evicted

    def _evict(self, excess: int, evicted: Counter[type]) -> int:
        freed = self._evict_oldest(excess, evicted, _EXPENDABLE)
        if freed < excess:
            freed += self._evict_oldest(excess - freed, evicted, "1 = 1")
        return freed

    def _evict_oldest(self, excess: int, evicted: Counter[type], where: str) -> int:
        """Delete the oldest unpinned records matching ``where`` until ``excess`` bytes go."""
        freed = 0
        last = None
        floor = max(self._pinned, self._done)
        cursor = self._db.execute(
            f"SELECT seq, kind, size FROM spool WHERE seq > ? AND {where} ORDER BY seq", (floor,)
        )
        gone: Counter[type] = Counter()
        for seq, kind, size in cursor:
            freed += size
            last = seq
            gone[_CLASSES[kind][0]] += 1
            if freed >= excess:
                break
        cursor.close()
        if last is not None:
            self._db.execute(
                f"DELETE FROM spool WHERE seq > ? AND seq <= ? AND {where}", (floor, last)
            )
            evicted.update(gone)
            self.count -= gone.total()
            self.bytes -= freed
        return freed

    def peek(self, limit: int) -> tuple[int, list[Record]]:
        """Return (the last seq, the oldest ``limit`` records in order) and pin them.

        Pinned records are never evicted; :meth:`remove` or :meth:`unpin` ends the pin.
        """
        rows = self._db.execute(
            _SELECT + " WHERE seq > ? ORDER BY seq LIMIT ?", (self._done, limit)
        ).fetchall()
        if not rows:
            return 0, []
        self._pinned = rows[-1][0]
        return self._pinned, [decode(r[1], r[2], r[3], r[4:]) for r in rows]

    def pin(self, upto: int) -> None:
        """Protect the records up to seq ``upto`` from eviction (as :meth:`peek` does)."""
        self._pinned = upto

    def unpin(self) -> None:
        """Let the records :meth:`peek` returned be evicted again."""
        self._pinned = 0

    def remove(self, upto: int) -> Counter[type]:
        """Remove every record up to seq ``upto``; return per-class counts of what went.

        The records are gone for :meth:`peek`, ``count`` and ``bytes`` once
        this returns, even when the file cannot be changed (a full disk): then
        ``trim_error`` holds the error and the rows wait for :meth:`trim`.
        Raises ``sqlite3.Error`` only when the file cannot even be read.
        """
        counts = self._db.execute(
            "SELECT kind, count(*), coalesce(sum(size), 0) FROM spool WHERE seq > ? AND seq <= ? "
            "GROUP BY kind", (self._done, upto)
        ).fetchall()
        self._done = max(self._done, upto)
        self._pinned = 0
        removed: Counter[type] = Counter()
        for kind, n, size in counts:
            removed[_CLASSES[kind][0]] += n
            self.count -= n
            self.bytes -= size
        with contextlib.suppress(sqlite3.Error):  # trim_error says why; a later trim() retries
            self.trim()
        return removed

    def forget(self, upto: int) -> None:
        """Treat every record up to seq ``upto`` as removed, without reading the file.

        For records known to be written when even :meth:`remove` failed: they
        are never returned again, and ``count`` is taken afresh if the file
        can be read.
        """
        self._done = max(self._done, upto)
        self._pinned = 0
        self.refresh()

    @property
    def untrimmed(self) -> bool:
        """True while records removed logically are still in the file (see :meth:`trim`)."""
        return self._done > self._trimmed or self._closed_db

    def trim(self) -> None:
        """Delete from the file the records :meth:`remove` took out; raises when it cannot.

        When no record is left, the file is replaced by a fresh, empty one,
        which frees its space even on a full disk.
        """
        if not self.untrimmed:
            return
        try:
            if self.count == 0:
                self._reset()
            else:
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("DELETE FROM spool WHERE seq <= ?", (self._done,))
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
                self._trimmed = self._done
        except sqlite3.Error as error:
            self.trim_error = error
            raise
        self.trim_error = None

    def _reset(self) -> None:
        """Start a fresh file: only when every record in it has been removed."""
        if not self._closed_db:
            self._closed_db = True
            self._db.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")
        self._db = self._open(self._clock)
        self._closed_db = False
        self._done = self._trimmed = self._pinned = 0
        self.count = self.bytes = self.last_seq = 0

    def probe(self) -> None:
        """Commit a write that leaves nothing behind; raises ``sqlite3.Error`` when it cannot.

        Tells whether the file takes writes again after a full disk. It writes
        pages to the log as an append does, though a later append may still
        find the disk full.
        """
        self.trim()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO spool (kind, size, event_id, ts) VALUES (0, 0, '', '')")
            db.execute("DELETE FROM spool WHERE kind = 0")
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def refresh(self) -> None:
        """Recount the records and bytes from the file (after an error, or at open).

        A file found to hold no record is replaced by a fresh one, as :meth:`trim`
        does, so that the space its deleted rows took returns to the disk.
        """
        with contextlib.suppress(sqlite3.Error, OSError):
            self.count, self.bytes, last_seq = self._db.execute(
                "SELECT count(*), coalesce(sum(size), 0), coalesce(max(seq), 0) FROM spool "
                "WHERE seq > ?", (self._done,)
            ).fetchone()
            self.last_seq = max(self.last_seq, last_seq)
            if self.count == 0 and self.last_seq:
                self._reset()

    def close(self) -> None:
        """Close the file and release the directory. Calling it twice is harmless."""
        if self._lock_fd < 0:
            return
        with contextlib.suppress(sqlite3.Error, OSError):
            if self.count == 0:
                self._reset()  # nothing left: hand the file's space back
            self._db.close()
        os.close(self._lock_fd)
        self._lock_fd = -1
