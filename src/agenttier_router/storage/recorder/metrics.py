"""The recorder's Prometheus metrics, kept as plain integers and exposed by a collector.

``Recorder.record`` runs on the request path, so it touches no metric: a
prometheus_client ``Counter.inc()`` takes a lock and costs more than the
whole enqueue. The writer thread, the only one that moves records, keeps
plain counters instead, and the collector below reads them at scrape time.
The few drops that happen in ``record`` itself (queue full, recorder closed,
not a record) go through :meth:`RecorderMetrics.note_drop`, a deque append,
which is atomic and lock-free, and are folded into the counters by the writer
or at the next scrape.

Metrics (all prefixed ``agenttier_recorder_``):

- ``records_enqueued_total{type}``: taken into the queue (counted as the writer takes them off it;
  ``queue_depth`` holds the rest)
- ``records_written_total{type}``: committed to the database straight from memory
- ``records_spooled_total{type}``: moved to the local spool because the database failed
- ``records_replayed_total{type}``: committed to the database from the spool
- ``records_dropped_total{type,reason}``: given up; reasons in :data:`DROP_REASONS`
- ``backend_errors_total{kind}``: failed batch writes; kinds in :data:`ERROR_KINDS`
- ``queue_depth``, ``spool_depth`` (records) and ``spool_bytes``
- ``degraded``: 1 while the spool cannot take records (a full disk), else 0
- ``batch_write_seconds``: histogram of completed ``write_batch`` calls
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..records import AuditEvent, CostSnapshot, SandboxEvent

__all__ = [
    "DROP_REASONS",
    "ERROR_KINDS",
    "TYPE_LABELS",
    "RecorderMetrics",
]

TYPE_LABELS: dict[type, str] = {
    AuditEvent: "audit_event",
    SandboxEvent: "sandbox_event",
    CostSnapshot: "cost_snapshot",
}
"""Record class -> its ``type`` label; anything else is labelled ``other``."""

DROP_REASONS = (
    "queue_full",   # record() found the in-memory queue full
    "closed",       # record() after close()
    "invalid",      # record() was given something that is not a record
    "spool_full",   # evicted, oldest first, to keep the spool under its byte cap
    "spool_error",  # the spool could not be written (disk full, directory gone)
    "shutdown",     # still unwritten when close() timed out, and no spool to keep it
)
"""Why a record was dropped: the ``reason`` label of ``records_dropped_total``."""

ERROR_KINDS = (
    "unavailable",  # BackendUnavailable: the database cannot be reached now
    "error",        # any other error from write_batch
    "timeout",      # write_batch did not return within write_timeout (a hung database)
)
"""The ``kind`` label of ``backend_errors_total``."""

_TYPES = (*TYPE_LABELS.values(), "other")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _by_type() -> dict[str, int]:
    return dict.fromkeys(_TYPES, 0)


class RecorderMetrics:
    """Counters owned by one recorder, and a prometheus_client collector over them.

    Register it with ``registry.register(metrics)``. Every label combination
    exists from the start, so scrapes never race with a dict growing.
    """

    def __init__(
        self,
        *,
        queue_depth: Callable[[], int],
        spool_depth: Callable[[], int],
        spool_bytes: Callable[[], int],
        degraded: Callable[[], bool] = lambda: False,
    ) -> None:
        self.enqueued = _by_type()
        self.written = _by_type()
        self.spooled = _by_type()
        self.replayed = _by_type()
        self.dropped: dict[tuple[str, str], int] = {
            (t, reason): 0 for t in _TYPES for reason in DROP_REASONS
        }
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.batch_seconds = Histogram(
            "agenttier_recorder_batch_write_seconds",
            "Seconds each completed write_batch call took.",
            buckets=_BUCKETS,
            registry=None,
        )
        self._queue_depth = queue_depth
        self._spool_depth = spool_depth
        self._spool_bytes = spool_bytes
        self._degraded = degraded
        self._drops: deque[tuple[str, str]] = deque()
        self._absorb_lock = threading.Lock()

    # -- updates -----------------------------------------------------------------------

    def note_drop(self, key: tuple[str, str]) -> None:
        """Count one drop, keyed (type label, reason), from any thread, without a lock.

        ``Recorder.record`` calls this; the drop reaches the counters at the
        next :meth:`absorb_drops` (the writer's next step, or a scrape).
        """
        self._drops.append(key)

    # The rest are called from the writer thread.

    @staticmethod
    def add(counter: dict[str, int], records: Iterable[Any]) -> None:
        """Add each record in ``records`` to ``counter`` under its type label."""
        for cls, n in Counter(map(type, records)).items():
            counter[TYPE_LABELS.get(cls, "other")] += n

    def add_counts(self, counter: dict[str, int], counts: Mapping[type, int]) -> None:
        """Add per-class counts (as the spool reports them) to ``counter``."""
        for cls, n in counts.items():
            counter[TYPE_LABELS.get(cls, "other")] += n

    def drop(self, records: Iterable[Any], reason: str) -> int:
        """Count ``records`` as dropped for ``reason``; return how many there were."""
        total = 0
        for cls, n in Counter(map(type, records)).items():
            self.dropped[(TYPE_LABELS.get(cls, "other"), reason)] += n
            total += n
        return total

    def drop_counts(self, counts: Mapping[type, int], reason: str) -> int:
        """Count per-class drops (as the spool reports evictions); return the total."""
        for cls, n in counts.items():
            self.dropped[(TYPE_LABELS.get(cls, "other"), reason)] += n
        return sum(counts.values())

    def absorb_drops(self) -> Counter[str]:
        """Fold the drops ``record()`` queued into the counters; return them per reason."""
        seen: Counter[str] = Counter()
        with self._absorb_lock:
            pop = self._drops.popleft
            while True:
                try:
                    key = pop()
                except IndexError:
                    break
                self.dropped[key] += 1
                seen[key[1]] += 1
        return seen

    def dropped_total(self) -> int:
        """Every record dropped so far, for any reason."""
        self.absorb_drops()
        return sum(self.dropped.values())

    # -- the collector ---------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Name the metrics without reading them, so registries can detect clashes."""
        return self._families(empty=True)

    def collect(self) -> Iterator[Metric]:
        """Yield the current values (called by prometheus_client at scrape time)."""
        self.absorb_drops()
        return self._families(empty=False)

    def _families(self, *, empty: bool) -> Iterator[Metric]:
        prefix = "agenttier_recorder_"
        per_type = (
            ("records_enqueued", "Records taken into the recorder's queue.", self.enqueued),
            ("records_written", "Records committed to the database straight from memory.",
             self.written),
            ("records_spooled", "Records moved to the local spool because the database failed.",
             self.spooled),
            ("records_replayed", "Records committed to the database from the spool.",
             self.replayed),
        )
        for name, doc, values in per_type:
            family = CounterMetricFamily(prefix + name, doc, labels=["type"])
            if not empty:
                for label, value in list(values.items()):
                    family.add_metric([label], value)
            yield family
        dropped = CounterMetricFamily(
            prefix + "records_dropped", "Records given up, by type and reason.",
            labels=["type", "reason"],
        )
        errors = CounterMetricFamily(
            prefix + "backend_errors", "Failed batch writes, by kind.", labels=["kind"]
        )
        queue = GaugeMetricFamily(prefix + "queue_depth", "Records waiting in memory.")
        spool = GaugeMetricFamily(prefix + "spool_depth", "Records waiting in the local spool.")
        spool_bytes = GaugeMetricFamily(
            prefix + "spool_bytes", "Payload bytes of the records in the local spool."
        )
        degraded = GaugeMetricFamily(
            prefix + "degraded",
            "1 while the local spool cannot take records (records wait in memory), else 0.",
        )
        if not empty:
            for (label, reason), value in list(self.dropped.items()):
                dropped.add_metric([label, reason], value)
            for kind, value in list(self.errors.items()):
                errors.add_metric([kind], value)
            queue.add_metric([], self._queue_depth())
            spool.add_metric([], self._spool_depth())
            spool_bytes.add_metric([], self._spool_bytes())
            degraded.add_metric([], 1 if self._degraded() else 0)
        yield from (dropped, errors, queue, spool, spool_bytes, degraded)
        if empty:
            yield from self.batch_seconds.describe()
        else:
            yield from self.batch_seconds.collect()
