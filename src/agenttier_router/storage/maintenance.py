"""The Router's maintenance thread: bring the cost rollups up to date, then purge, every N seconds.

::

    maintenance = Maintenance(backend, policy, interval=300, audit=recorder.record)
    maintenance.start()
    ...
    maintenance.close()

Each round runs :func:`~.rollups.roll_up`, then :func:`~.retention.purge`
when any retention is set, and passes an audit event (actor ``system``,
action ``purge``) for every table a purge deleted rows from to ``audit``.
A round that fails (the database is down) is logged and the next round
tries again; nothing here raises into the caller.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from .records import AuditEvent
from .retention import DEFAULT_BATCH, DEFAULT_PAUSE, PurgeReport, RetentionPolicy, purge
from .rollups import DEFAULT_GRACE, RollupReport, roll_up
from .sql.base import SQLBackend

__all__ = ["Maintenance", "MaintenanceRound"]

log = logging.getLogger("agenttier_router.storage.maintenance")


class _Stopped(Exception):
    """Raised between purge batches when :meth:`Maintenance.close` is waiting."""


@dataclass(frozen=True, slots=True)
class MaintenanceRound:
    """What one round did; a part that failed is None, with its error's text in ``error``."""

    rollup: RollupReport | None
    purge: PurgeReport | None
    error: str = ""


class Maintenance:
    """Runs a maintenance round every ``interval`` seconds on a daemon thread.

    ``audit`` receives the purge audit events; it must be quick (a
    recorder's ``record`` is). :meth:`run_once` runs a round in the caller's
    thread, which is what the thread does and what tests call.
    """

    def __init__(
        self,
        backend: SQLBackend,
        policy: RetentionPolicy | None = None,
        *,
        interval: float = 300.0,
        grace: timedelta = DEFAULT_GRACE,
        batch: int = DEFAULT_BATCH,
        pause: float = DEFAULT_PAUSE,
        audit: Callable[[AuditEvent], None] | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
            math.isfinite(interval) and interval > 0
        ):
            raise ValueError(f"interval must be a number of seconds > 0 (got {interval!r})")
        self.backend = backend
        self.policy = policy if policy is not None else RetentionPolicy()
        self.interval = float(interval)
        self.grace = grace
        self.batch = batch
        self.pause = pause
        self._audit = audit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last: MaintenanceRound | None = None

    def __repr__(self) -> str:
        return f"Maintenance({self.backend!r}, interval={self.interval:g})"

    def run_once(self) -> MaintenanceRound:
        """Roll up, then purge if a retention is set; never raises (a failure is logged)."""
        rollup: RollupReport | None = None
        purged: PurgeReport | None = None
        try:
            rollup = roll_up(self.backend, grace=self.grace)
            log.debug("cost rollup: %s", rollup)
            if not self.policy.forever:
                purged = purge(self.backend, self.policy, batch=self.batch, grace=self.grace,
                               progress=self._check_stop, pause=self.pause, wait=self._rest)
                self._record(purged)
            result = MaintenanceRound(rollup, purged)
        except _Stopped:
            result = MaintenanceRound(rollup, purged, "stopped by close()")
        except Exception as error:
            log.warning("maintenance round failed (the next one retries): %s", error)
            result = MaintenanceRound(rollup, purged, str(error) or type(error).__name__)
        self.last = result
        return result

    def _check_stop(self, table: str, rows: int) -> None:
        if self._stop.is_set():
            raise _Stopped(table)

    def _rest(self, seconds: float) -> None:
        # The pause between purge batches ends at once when close() is called.
        if self._stop.wait(seconds):
            raise _Stopped("pause")

    def _record(self, report: PurgeReport) -> None:
        if report.skipped:
            log.info("purge skipped: another runner holds the lease (%s)", report.skipped)
        for result in report.results:
            if result.rows:
                log.info("purged %d rows from %s (before %s)", result.rows, result.table,
                         result.cutoff.isoformat())
                if self._audit is not None:
                    self._audit(result.audit_event())

    def start(self) -> None:
        """Start the thread; its first round runs at once."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                raise RuntimeError("maintenance is already started or closed")
            self._thread = threading.Thread(target=self._loop, name="storage-maintenance",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread (a purge stops after its current batch). Calling it twice is harmless."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
