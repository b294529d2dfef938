"""Cost accounting: a price table, and a sampler that turns running time into cost snapshots.

The sampler is told about every lifecycle transition and emits a
:class:`~agenttier_router.storage.CostSnapshot` per running sandbox every
``interval`` seconds, plus a final one when the sandbox leaves Running::

    sampler = CostSampler(recorder.record, PriceTable(), interval=60)
    plane = LocalControlPlane(root, templates, on_transition=sampler.observe)
    sampler.start()
    ...
    sampler.close()   # a last snapshot for everything still running

Each snapshot covers the time since the previous one, measured between the
transitions' own timestamps and the ticks' clock readings, so the snapshots
of a sandbox add up to its running time x its template's rates.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from .controlplane import Phase, Template, Transition
from .storage import CostSnapshot

__all__ = ["CostSampler", "PriceTable"]

_log = logging.getLogger(__name__)

_MICROSECONDS_PER_HOUR = 3_600_000_000
_ONE_MICROSECOND = timedelta(microseconds=1)


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
    """A running sandbox: its rates and the end of its last snapshot."""

    template: Template
    since: datetime
    owner: str = ""


class CostSampler:
    """Emits cost snapshots for running sandboxes, from the transitions it observes.

    - :meth:`observe` a transition into Running starts accruing at its time;
      one out of Running (Stopped, Error, Deleting) emits a final snapshot up to
      its time and stops.
    - :meth:`tick` emits, for each running sandbox, the usage since its previous
      snapshot; the thread that :meth:`start` runs calls it every ``interval`` s.
    - :meth:`close` stops the thread and emits a last snapshot up to now.

    ``emit`` is called with the sampler's lock held, so that each sandbox's
    snapshots are emitted in time order: it must be quick (the recorder's
    ``record`` is) and must not call back into the sampler. ``observe`` and
    ``tick`` never raise; they log. A tick that runs between a transition and
    its delivery to ``observe`` counts up to that short delay past the transition.
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
            math.isfinite(interval) and interval > 0
        ):
            raise ValueError(f"interval must be a number of seconds > 0 (got {interval!r})")
        self._emit = emit
        self.prices = PriceTable() if prices is None else prices
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], _Accrual] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (f"CostSampler(prices={self.prices!r}, interval={self.interval:g}, "
                f"running={len(self._running)})")

    def observe(self, transition: Transition) -> None:
        """Start or stop accruing for the transition's sandbox; never raises."""
        try:
            sandbox = transition.sandbox
            key = (sandbox.namespace, sandbox.name)
            with self._lock:
                if self._closed:
                    return
                if transition.phase is Phase.RUNNING:
                    # A repeated Running (none is expected) must not restart the clock.
                    self._running.setdefault(key, _Accrual(sandbox.template, transition.time,
                                                             sandbox.owner))
                elif transition.phase is not Phase.CREATING:
                    accrual = self._running.pop(key, None)
                    if accrual is not None:
                        self._snapshot(key, accrual, transition.time)
        except Exception:
            _log.exception("the cost sampler could not observe a transition")

    def tick(self, now: datetime | None = None) -> None:
        """Emit each running sandbox's usage since its previous snapshot, up to ``now``."""
        try:
            end = self._clock() if now is None else now
            with self._lock:
                for key, accrual in self._running.items():
                    self._snapshot(key, accrual, end)
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
        """Stop the thread, emit a last snapshot up to now for each running sandbox, and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            end = self._clock()
        except Exception:
            _log.exception("the cost sampler's clock failed; no last snapshot")
            end = None
        with self._lock:
            # One critical section, so that nothing observed meanwhile goes uncounted.
            if end is not None and not self._closed:
                for key, accrual in self._running.items():
                    self._snapshot(key, accrual, end)
            self._closed = True
            self._running.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def _snapshot(self, key: tuple[str, str], accrual: _Accrual, end: datetime) -> None:
        """Emit ``accrual``'s usage from ``since`` to ``end`` and move ``since`` (needs the lock).

        Nothing for an empty or negative interval. If ``emit`` fails, ``since``
        stays, so that the next snapshot covers the interval again.
        """
        elapsed = end - accrual.since
        if elapsed <= timedelta(0):
            return
        # Exact in Fractions, rounded once: the snapshots' sum telescopes to the running time.
        hours = Fraction(elapsed // _ONE_MICROSECOND, _MICROSECONDS_PER_HOUR)
        cpu_hours = Fraction(accrual.template.cpu) * hours
        gib_hours = Fraction(accrual.template.memory_gib) * hours
        usd = (cpu_hours * Fraction(self.prices.cpu_per_vcpu_hour)
               + gib_hours * Fraction(self.prices.memory_per_gib_hour))
        namespace, name = key
        try:
            self._emit(CostSnapshot(
                sandbox_id=name, namespace=namespace, owner=accrual.owner,
                template=accrual.template.name, cpu_hours=float(cpu_hours),
                mem_gb_hours=float(gib_hours), estimated_usd=float(usd), time=end,
            ))
        except Exception:
            _log.exception("could not emit the cost snapshot of sandbox %r in namespace %r",
                           name, namespace)
            return
        accrual.since = end
