"""The recorder's settings and the state it reports: plain values, no behaviour.

Kept apart from the recorder and its writer, which both read them, so that
neither has to import the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .spool import DEFAULT_MAX_BYTES

__all__ = ["RecorderConfig", "RecorderStatus"]


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
    """A recorder's state: records waiting in memory and in the spool, and whether writes fail.

    ``degraded`` is True while the spool cannot take records (a full disk,
    say): records then go from memory straight to the database, or wait in
    memory while it is down, so an outage now loses what memory cannot hold.
    ``reason`` says why, for a person to read. The recorder probes the spool
    and stops being degraded by itself once it takes writes again.
    """

    queued: int
    spooled: int
    failing: bool
    degraded: bool = False
    reason: str | None = None

    @property
    def state(self) -> str:
        """One word for a readiness check: ``degraded``, ``failing`` or ``ok``, worst first."""
        return "degraded" if self.degraded else "failing" if self.failing else "ok"
