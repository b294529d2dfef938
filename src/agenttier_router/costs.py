"""Cost accounting: a price table, and a sampler that turns running time into cost snapshots.

The sampler is told about every lifecycle transition and emits one
:class:`~agenttier_router.storage.CostSnapshot` per running sandbox and
time-aligned bucket of ``interval`` seconds (buckets start at multiples of
``interval`` since the epoch, in UTC), plus a last one for the open bucket
when the sandbox leaves Running::

    sampler = CostSampler(recorder.record, PriceTable(), interval=60)
    plane = LocalControlPlane(root, templates, on_transition=sampler.observe)
    sampler.start()
    ...
    plane.close()     # a local plane stops its sandboxes: their last snapshots
    sampler.close()

Each snapshot covers the part of one running stretch (from entering Running
to leaving it) that falls in one bucket, measured between the transitions' own
timestamps and the bucket edges, so the snapshots of a sandbox add up to its
running time x its template's rates. Its ``event_id`` is derived from the
sandbox's uid, the bucket and the stretch's start, so whoever computes the
same snapshot (a second replica, or this Router after a restart re-observing a
stretch) computes the same id, and the store keeps it once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from .controlplane import Phase, Sandbox, Transition
from .storage import CostSnapshot

__all__ = ["CostSampler", "PriceTable"]

_log = logging.getLogger(__name__)

_MICROSECONDS_PER_HOUR = 3_600_000_000
_ONE_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices in USD per vCPU-hour and per GiB-hour of memory; OpenCost's defaults.

    ``PriceTable(cpu_per_vcpu_hour=0.05)`` changes one price and keeps the other.
    """

    cpu_per_vcpu_hour: float = 0.031611
    memory_per_gib_hour: float = 0.004237

    def __post_init__(self) -> None:
        for name in ("cpu_per_vcpu_hour", "memory_per_gib_hour"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
            object.__setattr__(self, name, float(value))


@dataclass(slots=True)
class _Accrual:
    """A running sandbox: as last seen, when its stretch began, and its last snapshot's end."""

    sandbox: Sandbox
    started: datetime
    since: datetime
    owner: str = ""


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _ONE_MICROSECOND


class CostSampler:
    """Emits cost snapshots for running sandboxes, from the transitions it observes.

    - :meth:`observe` a transition into Running starts a running stretch at its
      time; one out of Running (Stopped, Error, Deleting) emits the snapshots up
      to its time and ends the stretch.
    - :meth:`tick` emits, for each running sandbox, a snapshot for every bucket
      that has closed since its previous snapshot; the thread that :meth:`start`
      runs calls it every ``interval`` s.
    - :meth:`close` stops the thread. It emits nothing for a bucket still open:
      whoever sees the stretch end (this plane at shutdown, another replica, the
      next start) emits that bucket whole, under the same id.

    ``emit`` is called with the sampler's lock held, so that each sandbox's
    snapshots are emitted in time order: it must be quick (the recorder's
    ``record`` is) and must not call back into the sampler. ``observe`` and
    ``tick`` never raise; they log.
    """

    def __init__(
        self,
        emit: Callable[[CostSnapshot], None],
        prices: PriceTable | None = None,
        *,
        interval: float = 60.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
            math.isfinite(interval) and interval >= 1e-3
        ):
            raise ValueError(f"interval must be a number of seconds >= 0.001 (got {interval!r})")
        self._emit = emit
        self.prices = PriceTable() if prices is None else prices
        self.interval = float(interval)
        self._bucket_us = round(self.interval * 1_000_000)
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, _Accrual] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (f"CostSampler(prices={self.prices!r}, interval={self.interval:g}, "
                f"running={len(self._running)})")

    def bucket_start(self, at: datetime) -> datetime:
        """The start of the bucket that holds ``at``."""
        us = _micros(at)
        return _EPOCH + timedelta(microseconds=us - us % self._bucket_us)

    def observe(self, transition: Transition) -> None:
        """Start or end a running stretch for the transition's sandbox; never raises."""
        try:
            sandbox = transition.sandbox
            key = sandbox.uid or f"{sandbox.namespace}/{sandbox.name}"
            with self._lock:
                if self._closed:
                    return
                if transition.phase is Phase.RUNNING:
                    # A repeated Running (an Event, a re-list) must not restart the stretch.
                    if key not in self._running:
                        self._running[key] = _Accrual(sandbox, transition.time, transition.time)
                elif transition.phase is not Phase.CREATING:
                    accrual = self._running.get(key)
                    if accrual is not None and self._emit_until(accrual, transition.time):
                        del self._running[key]
        except Exception:
            _log.exception("the cost sampler could not observe a transition")

    def tick(self, now: datetime | None = None) -> None:
        """Emit each running sandbox's snapshots for the buckets closed by ``now``."""
        try:
            end = self._clock() if now is None else now
            with self._lock:
                for accrual in self._running.values():
                    self._emit_until(accrual, self.bucket_start(end))
        except Exception:
            _log.exception("the cost sampler could not tick")

    def start(self) -> None:
        """Start the background thread that ticks every ``interval`` seconds."""
        with self._lock:
            if self._closed or self._thread is not None:
                raise RuntimeError("the cost sampler is already started or closed")
            self._thread = threading.Thread(target=self._loop, name="cost-sampler", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread; emit every bucket already closed, and nothing for the open one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._closed:
            self.tick()
        with self._lock:
            self._closed = True
            self._running.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def _emit_until(self, accrual: _Accrual, end: datetime) -> bool:
        """Emit ``accrual``'s snapshots from ``since`` to ``end``, one per bucket (needs the lock).

        Returns False if ``emit`` failed: ``since`` then stays at the failed
        piece, so that the next call covers it again, under the same id.
        """
        while accrual.since < end:
            bucket = self.bucket_start(accrual.since)
            piece_end = min(end, bucket + timedelta(microseconds=self._bucket_us))
            if not self._snapshot(accrual, bucket, piece_end):
                return False
            accrual.since = piece_end
        return True

    def _snapshot(self, accrual: _Accrual, bucket: datetime, end: datetime) -> bool:
        """Emit the usage from ``accrual.since`` to ``end``, all within ``bucket``."""
        # Exact in Fractions, rounded once: the snapshots' sum telescopes to the running time.
        hours = Fraction((end - accrual.since) // _ONE_MICROSECOND, _MICROSECONDS_PER_HOUR)
        sandbox = accrual.sandbox
        cpu_hours = Fraction(sandbox.template.cpu) * hours
        gib_hours = Fraction(sandbox.template.memory_gib) * hours
        usd = (cpu_hours * Fraction(self.prices.cpu_per_vcpu_hour)
               + gib_hours * Fraction(self.prices.memory_per_gib_hour))
        who = sandbox.uid or f"{sandbox.namespace}/{sandbox.name}"
        key = f"cost/{who}/{_micros(bucket)}/{_micros(accrual.started)}"
        try:
            self._emit(CostSnapshot(
                sandbox_id=sandbox.name, namespace=sandbox.namespace, owner=sandbox.owner,
                template=sandbox.template.name, cpu_hours=float(cpu_hours),
                mem_gb_hours=float(gib_hours), estimated_usd=float(usd), time=end,
                event_id=hashlib.sha256(key.encode()).hexdigest()[:32],
            ))
        except Exception:
            _log.exception("could not emit the cost snapshot of sandbox %r in namespace %r",
                           sandbox.name, sandbox.namespace)
            return False
        return True
