"""The best-effort recorder: the request path hands records over and never waits.

::

    from agenttier_router.storage import AuditEvent, Recorder, RecorderConfig, open_backend

    backend = open_backend("postgresql://router@db/agenttier")
    recorder = Recorder(backend, config=RecorderConfig(spool_dir="/var/lib/agenttier/spool"))
    recorder.record(AuditEvent(actor="alice", action="exec", sandbox_id="sb-1"))
    ...
    recorder.close(timeout=10)   # drain into the database; what cannot be written stays spooled
    backend.close()              # the recorder does not own the backend

``record()`` appends to a bounded in-memory queue and returns: it never
raises, never blocks and never does I/O. A background writer sends batches to
``Backend.write_batch`` (idempotent on ``event_id``); when the database fails
or hangs, it moves records to a local durable spool and replays them, in
order, once the database is back. See :mod:`._writer` for the pipeline and
:mod:`.spool` for the spool.

Logging goes to the ``agenttier_router.storage.recorder`` logger, at most one
line per kind of trouble per ``log_interval``, and never carries a password.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from ._metrics import TYPE_LABELS, RecorderMetrics
from ._ratelimit import RateLimitedLog, describe
from ._writer import Writer
from .backend import Backend
from .records import Record
from .spool import DEFAULT_MAX_BYTES, Spool

__all__ = ["Recorder", "RecorderConfig", "RecorderStatus", "drain_on_sigterm"]

log = logging.getLogger("agenttier_router.storage.recorder")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecorderConfig:
    """How a :class:`Recorder` batches, retries, spools and logs.

    ::

        RecorderConfig(spool_dir="/var/lib/agenttier/spool", flush_interval=0.2)

    Defaults, and why. The Kubernetes API server's audit webhook backend buffers
    10,000 events and sends batches of up to 400, waiting at most 30 s. We keep
    its shape but flush much sooner and send bigger batches:

    - ``queue_size=50_000``: the in-memory buffer: half a second of traffic
      at 100,000 records/s, for bursts the writer has not caught up with, at
      most about 30 MB of records. A stalled write (over a second) makes the
      writer move the queue to the spool every 50 ms, so an outage does not
      fill it.
    - ``batch_size=1000``: one transaction per 1000 records. The backends'
      batched inserts (COPY into a stage on PostgreSQL, multi-row ``INSERT``
      on MySQL, ``executemany`` on SQLite) gain little past that, while a batch
      of 1000 still commits in milliseconds.
    - ``flush_interval=0.2``: a record waits at most this long for its batch
      to fill. The Router reads its own audit log back (``/audit/events``), so
      kube's 30 s would show users a stale log; 0.2 s is about the time a
      person takes to look, costs at most 5 small transactions a second when
      traffic is light, and bounds what a SIGKILL can lose.
    - ``write_timeout=5.0``: how long one ``write_batch`` may take before the
      writer treats the database as hung, spools the batch and moves on. A
      healthy batch takes milliseconds, so this is a hundredfold headroom; it also
      bounds how long a hung database can hold the first batch back.
    - ``retry_initial=0.1``, ``retry_max=5.0``: exponential backoff with
      jitter (each delay is drawn from 50 to 100 % of the doubling step), so
      that a blip costs a tenth of a second and a long outage costs one
      attempt every few seconds, with replicas spread out rather than in step.
    - ``spool_dir=None``: no spool unless configured. Without one, a failed
      batch is held in memory and retried, and the queue fills; what does not
      fit is dropped and counted.
    - ``spool_max_bytes=256 MiB``: the spool's cap; the oldest records go first.
    - ``log_interval=10.0``: at most one log line per kind of trouble per 10 s.
    - ``close_timeout=10.0``: how long :meth:`Recorder.close` (without a
      timeout), SIGTERM and interpreter exit drain for; Kubernetes gives a pod
      30 s between SIGTERM and SIGKILL.
    """

    queue_size: int = 50_000
    batch_size: int = 1000
    flush_interval: float = 0.2
    write_timeout: float = 5.0
    retry_initial: float = 0.1
    retry_max: float = 5.0
    spool_dir: str | os.PathLike[str] | None = None
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    log_interval: float = 10.0
    close_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("queue_size", "batch_size", "spool_max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1 (got {value!r})")
        for name in ("flush_interval", "write_timeout", "retry_initial", "retry_max",
                     "log_interval", "close_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a number > 0 (got {value!r})")
        if self.retry_max < self.retry_initial:
            raise ValueError("retry_max must be >= retry_initial")


@dataclass(frozen=True, slots=True)
class RecorderStatus:
    """A recorder's state: records waiting in memory and in the spool, and whether writes fail."""

    queued: int
    spooled: int
    failing: bool


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
    as ``recorder.metrics`` (see :mod:`._metrics` for the list).

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
        self._queue: deque[Record] = deque()
        self._drops: deque[tuple[str, str]] = deque()
        self._limit = config.queue_size
        self._closed = False
        self._log = RateLimitedLog(log, config.log_interval)
        spool = self._open_spool(config)
        self.metrics = RecorderMetrics(
            queue_depth=self._queue.__len__,
            spool_depth=lambda: spool.count if spool is not None else 0,
            spool_bytes=lambda: spool.bytes if spool is not None else 0,
            drops=self._drops,
        )
        self._writer = Writer(backend, config, self._queue, self.metrics, spool, self._log)
        self._registry = registry
        self._register(registry)
        self._writer.start()
        _LIVE.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        target = getattr(self.backend, "url", None) or type(self.backend).__name__
        return f"Recorder({target!r}, {state}, queued={len(self._queue)})"

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
            queue = self._queue
            if self._closed or type(rec) not in _RECORD_TYPES or len(queue) >= self._limit:
                self._refuse(rec)
                return
            queue.append(rec)
            writer = self._writer
            if writer.sleeping and len(queue) >= writer.wake_at:
                writer.sleeping = False
                writer.wake.set()
        except Exception:  # the request path must never see an error from here
            self._drops.append(("other", "invalid"))

    def _refuse(self, rec: object) -> None:
        if self._closed:
            reason = "closed"
        elif type(rec) not in _RECORD_TYPES:
            reason = "invalid"
        else:
            reason = "queue_full"
        self._drops.append(_DROP_KEYS[reason].get(type(rec), ("other", reason)))
        writer = self._writer
        if writer.sleeping:  # so that the drop is logged now, not at the next batch
            writer.sleeping = False
            writer.wake.set()

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
        spool = self._writer.spool
        return RecorderStatus(
            queued=len(self._queue),
            spooled=spool.count if spool is not None else 0,
            failing=self._writer.failing,
        )

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
