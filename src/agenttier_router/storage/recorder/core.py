"""The recorder: the request path hands records over here and never waits.

:class:`Recorder` checks what it is given, offers it to the :class:`~.writer.Writer`
(which owns the queue) and returns; everything else happens on the writer's thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import weakref
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from ..backend import Backend
from ..records import Record
from .config import RecorderConfig, RecorderStatus
from .metrics import TYPE_LABELS, RecorderMetrics
from .ratelimit import RateLimitedLog, describe
from .spool import Spool
from .writer import Writer

__all__ = ["Recorder", "drain_on_sigterm"]

log = logging.getLogger("agenttier_router.storage.recorder")


_RECORD_TYPES = frozenset(TYPE_LABELS)
_DROP_KEYS: dict[str, dict[type, tuple[str, str]]] = {
    reason: {cls: (label, reason) for cls, label in TYPE_LABELS.items()}
    for reason in ("queue_full", "closed", "invalid")
}
_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()
_REGISTERED: weakref.WeakKeyDictionary[CollectorRegistry, Recorder] = weakref.WeakKeyDictionary()


class Recorder:
    """Hands records to a background writer; ``record()`` never raises, blocks or waits on I/O.

    ``backend`` is not owned: close the recorder first, then the backend.
    Metrics are registered on ``registry`` (the default prometheus_client
    registry unless given; ``None`` registers nothing). A second open
    recorder on the same registry logs a warning and goes unregistered; a
    closed one gives way to its successor. The same counters are readable
    as ``recorder.metrics`` (see :mod:`.metrics` for the list).

    Usable as a context manager, which closes it on exit.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        config: RecorderConfig | None = None,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.config = config = config or RecorderConfig()
        self.backend = backend
        self._closed = False
        self._log = RateLimitedLog(log, config.log_interval)
        spool = self._open_spool(config)
        self.metrics = RecorderMetrics(
            queue_depth=lambda: self._writer.queued,
            spool_depth=lambda: spool.count if spool is not None else 0,
            spool_bytes=lambda: spool.bytes if spool is not None else 0,
            degraded=lambda: self._writer.degraded is not None,
        )
        self._writer = Writer(backend, config, self.metrics, spool, self._log)
        self._offer = self._writer.offer
        self._registry = registry
        self._register(registry)
        self._writer.start()
        _LIVE.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        target = getattr(self.backend, "url", None) or type(self.backend).__name__
        return f"Recorder({target!r}, {state}, queued={self._writer.queued})"

    def _open_spool(self, config: RecorderConfig) -> Spool | None:
        if config.spool_dir is None:
            return None
        try:
            return Spool(config.spool_dir, max_bytes=config.spool_max_bytes)
        except Exception as error:
            log.error(
                "cannot use spool directory %s (%s); running without a spool: records the "
                "database cannot take are held in memory, then dropped and counted",
                config.spool_dir, describe(error),
            )
            return None

    def _register(self, registry: CollectorRegistry | None) -> None:
        if registry is None:
            return
        previous = _REGISTERED.get(registry)
        if previous is not None and previous._closed:
            # A closed recorder's metrics give way to its successor's.
            registry.unregister(previous.metrics)
        try:
            registry.register(self.metrics)
        except ValueError as error:
            log.warning("recorder metrics not registered: %s", describe(error))
            return
        _REGISTERED[registry] = self

    # -- the request path ------------------------------------------------------------

    def record(self, rec: Record) -> None:
        """Queue ``rec`` (an AuditEvent, SandboxEvent or CostSnapshot) for writing.

        Returns at once. When the queue is full, the recorder is closed, or
        ``rec`` is not a record, the record is dropped and counted (and logged
        by the writer, at a bounded rate): this never raises.
        """
        try:
            if self._closed or type(rec) not in _RECORD_TYPES or not self._offer(rec):
                self._refuse(rec)
        except Exception:  # the request path must never see an error from here
            self.metrics.note_drop(("other", "invalid"))

    def _refuse(self, rec: object) -> None:
        if self._closed:
            reason = "closed"
        elif type(rec) not in _RECORD_TYPES:
            reason = "invalid"
        else:
            reason = "queue_full"
        self.metrics.note_drop(_DROP_KEYS[reason].get(type(rec), ("other", reason)))
        self._writer.nudge()  # so that the drop is logged now, not at the next batch

    # -- draining --------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything recorded so far; True when it is all in the database.

        Waits at most ``timeout`` seconds (default ``config.close_timeout``).
        Records that were dropped do not count. False means some are still
        queued or spooled (the database is down or hung); they are not lost.
        """
        if self._closed:
            return self._writer.result is True
        return self._writer.flush(self.config.close_timeout if timeout is None else timeout)

    def wait_written(self, timeout: float = 1.0) -> bool:
        """Wait until every record recorded so far is in the database; True when it is.

        For readers that want to see what was just recorded: unlike
        :meth:`flush` it neither hurries the writer nor cuts a backoff short,
        and it returns False at once while writes are failing, so that a
        dashboard polling during an outage adds no load on the database. It
        waits at most ``timeout`` seconds (records are written within
        ``config.flush_interval`` when all is well).
        """
        if self._closed:
            return self._writer.result is True
        return self._writer.wait_written(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting records and drain queue and spool into the database, then stop.

        Waits at most ``timeout`` seconds (default ``config.close_timeout``).
        Whatever cannot be written by then stays in the spool, and the next
        recorder on the same ``spool_dir`` replays it; without a spool it is
        dropped and counted. Returns True when everything reached the
        database. Calling it again returns the first call's answer.
        """
        self._closed = True
        result = self._writer.stop(self.config.close_timeout if timeout is None else timeout)
        self.metrics.absorb_drops()
        return result

    def status(self) -> RecorderStatus:
        """What the recorder holds now and whether the database is taking writes."""
        return self._writer.status()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_Handler = Callable[[int, FrameType | None], Any] | int | None


def drain_on_sigterm(recorder: Recorder, *, timeout: float | None = None) -> _Handler:
    """Close ``recorder`` when the process receives SIGTERM, then do what SIGTERM did before.

    The previous handler runs after the drain: a Python handler is called, an
    ignored signal stays ignored, and the default action (terminate) is
    carried out by re-sending SIGTERM with the default handler restored, so
    the exit status still says "terminated by SIGTERM". Call it from the main
    thread (Python installs signal handlers only there) once per recorder;
    calls chain. Returns the handler it replaced.

    ::

        recorder = Recorder(backend, config=RecorderConfig(spool_dir=spool))
        drain_on_sigterm(recorder, timeout=20)
    """
    previous = signal.getsignal(signal.SIGTERM)

    def _drain(signum: int, frame: FrameType | None) -> None:
        recorder.close(timeout)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, _drain)
    return previous


@atexit.register
def _close_at_exit() -> None:
    # A normal interpreter exit kills daemon threads with their queues: drain first.
    for recorder in list(_LIVE):
        if not recorder.closed:
            recorder.close()
