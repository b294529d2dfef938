"""The recorder's background writer: batches from the queue to the backend, the spool on failure.

The order of records is a FIFO with up to three parts, oldest first: the
spool (records the database could not take), a held batch (only when there is
no spool: a failed batch kept in memory for the next try), and the in-memory
queue. Records leave only from the oldest part, so they reach the database in
the order they were recorded:

- While the spool holds records, everything new goes behind them into the
  spool, and the writer replays the spool's head.
- Otherwise the writer takes a batch from the queue when it holds
  ``batch_size`` records, when its oldest has waited ``flush_interval``, or
  at once when a flush or close asks.

Every ``write_batch`` call runs on a :class:`DeadlineCall` thread; the writer
waits ``write_timeout`` for it. A call still outstanding after a second is a
sign of trouble (a healthy batch commits in milliseconds): from then on, while
it waits, the writer moves the batch in flight and then the queue to the
spool every 50 ms, so that a stalled database neither fills the queue nor
leaves more than a moment's records only in memory, where a SIGKILL would
lose them. A failure (an error, or the deadline)
moves the batch to the spool (or holds it when there is none) and starts an
exponential backoff with jitter; while it lasts, the writer keeps moving the
queue into the spool. A flush or close cuts a backoff short once, so that it
tries the database at once.

When the spool cannot be written or trimmed (a full disk, issue 9), the
writer is *degraded*: it stops moving records into the spool, and the FIFO
becomes spool, held, queue, with the held part in memory. What the spool
holds is still replayed (reading needs no space, and :meth:`Spool.remove`
never returns a replayed record again, so nothing is re-sent in a loop);
new records go from memory straight to the database when it takes them, and
wait in memory when it does not, the held records and the queue together
bounded by ``queue_size``. Every ``retry_max`` seconds the writer probes the
spool, and once it takes writes again the writer is no longer degraded.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic

from ..backend import Backend
from ..errors import BackendUnavailable
from ..records import Record
from .config import RecorderConfig, RecorderStatus
from .deadline import DeadlineCall
from .metrics import RecorderMetrics
from .ratelimit import RateLimitedLog, describe
from .spool import Spool

__all__ = ["Writer"]

_POLL = 0.05  # seconds between looks at the queue while a write is outstanding
_IDLE = 1.0  # the longest the writer sleeps without looking around


@dataclass(slots=True)
class _Flight:
    """The batch a write_batch call is carrying, and where it came from."""

    records: list[Record]
    upto: int = 0  # the last spool seq it covers, when it is (also) in the spool
    replay: bool = False  # it came from the spool


class Writer:
    """The thread that moves records from the queue to the backend (or the spool)."""

    def __init__(
        self,
        backend: Backend,
        config: RecorderConfig,
        metrics: RecorderMetrics,
        spool: Spool | None,
        log: RateLimitedLog,
        *,
        name: str = "agenttier-recorder",
    ) -> None:
        self._cfg = config
        self._queue: deque[Record] = deque()
        self._limit = config.queue_size
        self._room = config.queue_size  # what offer() lets the queue hold: _limit - _held_n
        self._metrics = metrics
        self.spool = spool
        self._log = log
        self._target = getattr(backend, "url", None) or type(backend).__name__
        self._caller: DeadlineCall[list[Record]] = DeadlineCall(
            backend.write_batch, name=f"{name}-db", on_done=self.poke
        )
        # Records out of the queue that neither the spool nor the database has taken yet,
        # oldest first; they count against queue_size.
        self._held: list[Record] = []
        self._held_n = 0
        self._degraded: str | None = None
        self._probe_at = 0.0
        self._failures = 0
        self._retry_at = 0.0
        self._first_seen: float | None = None
        self._due = 0
        # A healthy batch commits in milliseconds; one outstanding this long is trouble.
        self._slow = min(1.0, config.write_timeout / 2)
        # Read by offer() on the request path: it wakes the writer once the queue reaches _wake_at.
        self._sleeping = False
        self._wake_at = 1
        self._wake = threading.Event()
        # Shared with flush(), wait_written() and close().
        self._cond = threading.Condition()
        self._taken = 0  # records taken off the queue, ever
        self._settled = 0  # of those, how many are written (or dropped): all, or an older count
        self._requested = 0
        self._seen = 0
        self._flushed = 0
        self._stop_at: float | None = None
        self._stop_seen = False
        self._abandoned = False
        self.result: bool | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- called from other threads -------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def offer(self, rec: Record) -> bool:
        """Queue ``rec`` behind everything before it; False, doing nothing, when memory is full.

        Called on the request path, from any thread: no lock, no I/O. ``rec``
        must be a record (the recorder checks).
        """
        queue = self._queue
        if len(queue) >= self._room:
            return False
        queue.append(rec)
        if self._sleeping and len(queue) >= self._wake_at:
            self._sleeping = False
            self._wake.set()
        return True

    def nudge(self) -> None:
        """Wake the writer if it sleeps (after a drop, so that it is logged now)."""
        if self._sleeping:
            self.poke()

    @property
    def queued(self) -> int:
        """Records waiting in memory."""
        return len(self._queue) + self._held_n

    @property
    def degraded(self) -> str | None:
        """Why the spool cannot take records now, or None when it can (or there is none)."""
        return self._degraded

    @property
    def failing(self) -> bool:
        """True while the backend's last write failed (the writer is backing off or spooling)."""
        return self._failures > 0

    def status(self) -> RecorderStatus:
        """What the writer holds now and whether the database is taking writes."""
        spool = self.spool
        reason = self._degraded
        return RecorderStatus(
            queued=len(self._queue) + self._held_n,
            spooled=spool.count if spool is not None else 0,
            failing=self._failures > 0,
            degraded=reason is not None,
            reason=reason,
        )

    def poke(self) -> None:
        """Wake the writer now."""
        self._sleeping = False
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Ask for everything queued so far to be written; wait up to ``timeout``."""
        deadline = monotonic() + timeout
        with self._cond:
            self._requested += 1
            wanted = self._requested
        self.poke()
        with self._cond:
            while self._flushed < wanted:
                remaining = deadline - monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def wait_written(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every record offered so far is written.

        Unlike :meth:`flush` it changes nothing: records go at their usual
        pace (within ``flush_interval``) and a backoff runs its course. It
        returns False at once while writes are failing, and as soon as one
        fails while it waits, so that readers polling during an outage cost
        the database nothing.
        """
        deadline = monotonic() + timeout
        with self._cond:
            target = self._taken + len(self._queue)
            while self._settled < target:
                remaining = deadline - monotonic()
                if self._failures or remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float) -> bool:
        """Drain into the database for up to ``timeout`` seconds, then stop.

        What is still unwritten goes to the spool (or, without one, is dropped
        and counted). Returns True when everything reached the database.
        """
        if self._stop_at is None:
            self._stop_at = monotonic() + timeout
        self.poke()
        if self._thread.is_alive():
            # The writer stops itself at the deadline; the grace covers its last spool write.
            self._thread.join(timeout + 5.0)
        return self.result is True

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    break
            except Exception as error:  # a bug here must not end the recording
                self._log("internal", logging.ERROR, "recorder writer error: %s", describe(error))
                self._wake.wait(_POLL)
        try:
            self._finish()
        except Exception as error:
            self._log("internal", logging.ERROR, "recorder shutdown error: %s", describe(error))
            self.result = False
        finally:
            with self._cond:
                self._cond.notify_all()

    def _step(self) -> bool:
        """Do one piece of work, or sleep until there is some; True when it is time to stop."""
        self._absorb_drops()
        now = monotonic()
        stop_at = self._stop_at
        if stop_at is not None and now >= stop_at:
            return True
        requested = self._requested  # read before the queue: flush() counts on that order
        if requested != self._seen:
            self._seen = requested
            self._retry_at = 0.0  # a flush or close tries the database at once
        if stop_at is not None and not self._stop_seen:
            self._stop_seen = True
            self._retry_at = 0.0
        if self._abandoned and not self._caller.busy:
            self._abandoned = False
            error, seconds = self._caller.outcome
            self._log("late", logging.WARNING,
                      "the abandoned write to %s returned after %.1fs (%s); its records were "
                      "spooled and will be written again, harmlessly", self._target, seconds,
                      describe(error) if error else "it succeeded")
        urgent = stop_at is not None or requested != self._flushed
        writable = not self._caller.busy and now >= self._retry_at
        spool = self.spool
        if self._degraded is not None and now >= self._probe_at:
            self._probe()
        spooling = spool is not None and self._degraded is None
        backlog = bool(spool is not None and spool.count) or bool(self._held)
        queue = self._queue
        if not backlog and self._settled != self._taken:
            self._settle()  # nothing taken is waiting anywhere: wait_written() may return

        if not self._due:
            n = len(queue)
            first = self._first_seen
            aged = first is not None and now - first >= self._cfg.flush_interval
            if n >= self._cfg.batch_size or (n and (urgent or aged)):
                self._due, self._first_seen = n, None
            elif n and self._first_seen is None:
                self._first_seen = now

        if backlog and writable:
            if spooling:
                self._spill_pending(len(queue))  # behind the spool, to keep the order
            if spool is not None and spool.count:
                self._replay(spool)
            elif self._held:
                self._write(_Flight(self._unhold(self._cfg.batch_size)))
            return False
        if self._due:
            if writable:
                self._write(_Flight(self._take(min(self._due, self._cfg.batch_size))))
                return False
            if spooling:
                self._spill_pending(self._due)
                return False
        elif spooling and self._held and not writable:
            self._spill_pending(0)  # the spool is back while the database is not
            return False
        elif urgent and not queue and not backlog:
            self._flushed_up_to(requested)
            if stop_at is not None:
                return True
        self._sleep(now, writable, backlog)
        return False

    def _sleep(self, now: float, writable: bool, backlog: bool) -> None:
        cfg = self._cfg
        queue = self._queue
        timeouts = [_IDLE]
        spooling = self.spool is not None and self._degraded is None
        sink = writable or spooling  # somewhere for due records to go
        if self._due and not sink:
            threshold = cfg.queue_size + 1  # nothing to do with more records; wait for the retry
        elif queue:
            threshold = cfg.batch_size
        else:
            threshold = 1  # wake on the first record, to start its age clock
        if self._first_seen is not None and sink:
            timeouts.append(self._first_seen + cfg.flush_interval - now)
        if not writable and not self._caller.busy:
            timeouts.append(self._retry_at - now)
        if self._stop_at is not None:
            timeouts.append(self._stop_at - now)
        if self._degraded is not None:
            timeouts.append(self._probe_at - now)
        wake = self._wake
        wake.clear()
        self._wake_at = threshold
        self._sleeping = True
        # Look again after publishing the flag: a record appended just before must not be missed.
        if (
            len(queue) < threshold
            and self._requested == self._seen
            and (self._stop_at is None or self._stop_seen)
        ):
            wake.wait(max(0.0, min(timeouts)))
        self._sleeping = False

    # -- moving records ------------------------------------------------------------

    def _take(self, n: int) -> list[Record]:
        """Take up to ``n`` records off the queue, oldest first."""
        pop = self._queue.popleft
        batch: list[Record] = []
        append = batch.append
        with self._cond:  # wait_written() counts the queue and what left it at one instant
            try:
                for _ in range(n):
                    append(pop())
            except IndexError:
                pass
            self._taken += len(batch)
        self._due = max(0, self._due - len(batch))
        if batch:
            self._metrics.add(self._metrics.enqueued, batch)
        return batch

    def _spill(self, records: Sequence[Record], *, if_failed: str = "hold") -> int:
        """Append ``records`` to the spool, counting them; return how many it kept.

        If the spool cannot be written, the writer is degraded and the
        records are, by ``if_failed``: ``"hold"`` kept in memory behind what
        is held, ``"hold_front"`` kept in memory before it (a failed batch,
        older than everything held), ``"keep"`` left to the caller (a batch
        in flight), ``"drop"`` dropped and counted (at shutdown).
        """
        if not records or self.spool is None:
            return 0
        try:
            evicted = self.spool.append(records)
        except Exception as error:
            self._degrade(f"cannot write the spool in {self.spool.directory}: "
                          f"{describe(error)}")
            n = len(records)
            if if_failed == "drop":
                self._metrics.drop(records, "spool_error")
                outcome = "dropped them"
            elif if_failed == "keep":
                outcome = "the batch in flight keeps them"
            else:
                self._hold(records, front=if_failed == "hold_front")
                outcome = "holding them in memory"
            self._log("spool_error", logging.ERROR,
                      "could not write %d records to the spool in %s; %s: %s",
                      n, self.spool.directory, outcome, describe(error))
            return 0
        kept = len(records) - sum(evicted.values()) if evicted else len(records)
        self._metrics.add(self._metrics.spooled, records)
        if evicted:
            # Evicted records were counted as spooled and are now dropped.
            n = self._metrics.drop_counts(evicted, "spool_full")
            self._log(
                "dropped:spool_full", logging.ERROR,
                "spool in %s is at its cap of %d bytes; dropped the %d oldest records",
                self.spool.directory, self.spool.max_bytes, n,
            )
        return kept

    def _spill_pending(self, n: int) -> None:
        """Spool what is held, then up to ``n`` records from the queue, in that order."""
        if self._held:
            held = self._unhold(len(self._held))
            self._spill(held, if_failed="hold_front")
            if self._degraded is not None:
                return  # the queue waits in memory, behind what is held
        self._spill(self._take(n))

    def _hold(self, records: Sequence[Record], *, front: bool = False) -> None:
        if front:
            self._held[:0] = records
        else:
            self._held.extend(records)
        self._held_n = len(self._held)
        self._room = max(0, self._limit - self._held_n)

    def _unhold(self, n: int) -> list[Record]:
        batch, self._held = self._held[:n], self._held[n:]
        self._held_n = len(self._held)
        self._room = max(0, self._limit - self._held_n)
        return batch

    def _degrade(self, reason: str) -> None:
        """The spool cannot take records: stop spooling until a probe finds it writable."""
        if self._degraded is None:
            self._log("degraded", logging.ERROR,
                      "recorder degraded: %s; records now go from memory straight to %s, "
                      "and wait in memory (at most %d) while it cannot take them",
                      reason, self._target, self._cfg.queue_size)
        self._degraded = reason
        self._probe_at = monotonic() + self._cfg.retry_max

    def _probe(self) -> None:
        """Degraded: try the spool again (trim what was replayed, then a small write)."""
        spool = self.spool
        self._probe_at = monotonic() + self._cfg.retry_max
        if spool is None:
            self._degraded = None
            return
        try:
            spool.probe()
        except Exception as error:
            self._degraded = (f"cannot write the spool in {spool.directory}: "
                              f"{describe(error)}")
            return
        self._degraded = None
        self._log("spool_recovered", logging.WARNING,
                  "the spool in %s takes writes again; the recorder is no longer degraded "
                  "(%d records held in memory)", spool.directory, self._held_n)

    def _replay(self, spool: Spool) -> None:
        try:
            upto, records = spool.peek(self._cfg.batch_size)
        except Exception as error:
            self._log("spool_error", logging.ERROR, "could not read the spool: %s", describe(error))
            self._backoff()
            return
        if records:
            self._write(_Flight(records, upto=upto, replay=True))
        else:
            spool.refresh()  # the count was off; never spin on it

    def _write(self, flight: _Flight) -> None:
        """Send one batch through the deadline caller and deal with the outcome."""
        if not flight.records:
            return
        self._caller.submit(flight.records)
        started = monotonic()
        deadline = started + self._cfg.write_timeout
        if self._stop_at is not None:
            deadline = min(deadline, self._stop_at)
        while not self._caller.wait(min(_POLL, deadline - monotonic())):
            self._absorb_drops()
            if self.spool is not None and monotonic() - started >= self._slow:
                self._make_room(flight)
            if monotonic() >= deadline:
                self._failed(flight, None)
                return
        error, seconds = self._caller.outcome
        self._metrics.batch_seconds.observe(seconds)
        if error is not None:
            self._failed(flight, error)
            return
        if flight.upto and self.spool is not None:
            # It was in the spool (a replay, or spilled by _make_room): count it as replayed,
            # so that spooled = replayed + spool_depth + dropped{spool_full} always holds.
            spool = self.spool
            try:
                removed = spool.remove(flight.upto)
            except Exception as err:
                # Written, but the spool cannot even be read: never send these again.
                spool.forget(flight.upto)
                self._metrics.add(self._metrics.replayed, flight.records)
                self._degrade(f"cannot read the spool in {spool.directory}: {describe(err)}")
            else:
                self._metrics.add_counts(self._metrics.replayed, removed)
                if spool.trim_error is not None:
                    self._degrade(f"cannot trim the spool in {spool.directory}: "
                                  f"{describe(spool.trim_error)}")
        else:
            self._metrics.add(self._metrics.written, flight.records)
        if self._failures:
            self._log("recovered", logging.WARNING,
                      "%s is writable again after %d failed attempts; %d records spooled",
                      self._target, self._failures, self.spool.count if self.spool else 0)
        self._failures = 0
        self._retry_at = 0.0

    def _make_room(self, flight: _Flight) -> None:
        """During a stalled write, make everything durable: the batch in flight, then the queue.

        The batch goes first so that, should it fail, the spool still holds
        everything in order; should it succeed, it is removed from the spool.
        """
        spool = self.spool
        if spool is None or self._degraded is not None:
            return
        if not flight.upto:  # a batch from the queue or held: nothing older is in the spool
            if not self._spill(flight.records, if_failed="keep"):
                return
            flight.upto = spool.last_seq
            spool.pin(flight.upto)
        self._spill(self._take(len(self._queue)))

    def _failed(self, flight: _Flight, error: BaseException | None) -> None:
        """A write failed or timed out: keep its batch (spool, or hold) and back off."""
        kind = (
            "timeout" if error is None
            else "unavailable" if isinstance(error, BackendUnavailable)
            else "error"
        )
        self._metrics.errors[kind] += 1
        spool = self.spool
        if error is None:
            self._abandoned = True
        if flight.upto:  # already in the spool, where it stays
            if spool is not None:
                spool.unpin()
        elif spool is not None and self._degraded is None:
            self._spill(flight.records, if_failed="hold_front")
        else:
            self._hold(flight.records, front=True)
        delay = self._backoff()
        what = (
            f"did not answer within {self._cfg.write_timeout:g}s; the call is abandoned "
            "and no new write starts until it returns"
            if error is None
            else describe(error)
        )
        where = (
            f"holding {self._held_n} records in memory (no spool_dir)" if spool is None
            else f"{spool.count} records in the spool" if self._degraded is None
            else f"{spool.count} records in the spool and {self._held_n} held in memory "
                 "(the spool cannot take more)"
        )
        self._log(kind, logging.WARNING, "writing %d records to %s failed: %s; %s; retry in %.1fs",
                  len(flight.records), self._target, what, where, delay)

    def _backoff(self) -> float:
        """Schedule the next try: exponential, capped, with jitter so replicas spread out."""
        self._failures += 1
        cfg = self._cfg
        ceiling = min(cfg.retry_max, cfg.retry_initial * 2.0 ** min(self._failures - 1, 30))
        delay = ceiling * random.uniform(0.5, 1.0)
        self._retry_at = monotonic() + delay
        with self._cond:
            self._cond.notify_all()  # wait_written() gives up while writes fail
        return delay

    def _settle(self) -> None:
        with self._cond:
            self._settled = self._taken
            self._cond.notify_all()

    def _absorb_drops(self) -> None:
        for reason, n in self._metrics.absorb_drops().items():
            extra = f" (queue_size={self._cfg.queue_size})" if reason == "queue_full" else ""
            self._log(f"dropped:{reason}", logging.ERROR,
                      "recorder dropped %d records: %s%s", n, reason, extra)

    def _flushed_up_to(self, requested: int) -> None:
        if self._flushed < requested:
            with self._cond:
                self._flushed = requested
                self._cond.notify_all()

    def _finish(self) -> None:
        """At the stop deadline, or once drained: keep what is left, release the spool."""
        self._absorb_drops()
        leftovers = self._unhold(len(self._held)) + self._take(len(self._queue))
        spool = self.spool
        if leftovers:
            if spool is not None:
                self._spill(leftovers, if_failed="drop")
            else:
                n = self._metrics.drop(leftovers, "shutdown")
                self._log("dropped:shutdown", logging.ERROR,
                          "recorder closed with %d records unwritten and no spool; dropped them", n)
        clean = not leftovers and not (spool is not None and spool.count)
        if spool is not None:
            if spool.count:
                self._log("shutdown", logging.WARNING,
                          "recorder closed with %d records in the spool in %s; the next start "
                          "replays them", spool.count, spool.directory)
            spool.close()
        self._caller.stop()
        self.result = clean
        if clean:
            self._flushed_up_to(self._requested)
