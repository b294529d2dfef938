"""Purge of millions of audit rows: rows/s, and the recorder's ingest while it runs.

Per backend, a fresh store of its own (see ``audit_fill.py``) gets
``--rows`` old audit events (default 1,000,000; the issue's figure is
10,000,000), made with SQL, ten a second from 2025-01-01. The rows are cut
into equal slices by time; each purge measured deletes one slice through
the real :func:`~agenttier_router.storage.retention.purge` (an audit
retention of one day and ``now`` one day past the slice's end, the lease
taken as the Router takes it). One backend (one connection pool) serves a
real :class:`~agenttier_router.storage.Recorder` and the purge, on two
threads of one process, as in the Router, whose maintenance thread purges
beside the recorder.

The ingest is a producer thread that builds realistic audit events and
hands them to ``recorder.record`` as fast as the recorder takes them: it
keeps at most ``5 * batch_size`` records queued (so none is dropped) and
otherwise waits 1 ms. The ingest rate is the recorder's own
``records_written_total{type="audit_event"}`` over the window, divided by its
length. Each round runs three measurements, in an order rotated from round
to round:

- **ingest alone**: ``--ingest-seconds`` of ingest, nothing else running;
- **purge alone**: one slice purged, nothing else running;
- **purge + ingest**: one slice purged while the producer runs; the ingest
  rate is taken over exactly the purge's duration.

With several ``--batches`` or ``--pauses`` (the purge's ``pause``: seconds
waited after each batch per second it took), each round purges one slice
alone and one with ingest per combination. The tables give medians over rounds, the ingest
ratio (with purge / alone; the issue's target is at least 0.8), and the
purge's rows/s. The load average is printed before and after.

Run from the repo root::

    .venv/bin/python bench/purge_ingest.py --rows 200000 --rounds 2 --ingest-seconds 3
    .venv/bin/python bench/purge_ingest.py --backends sqlite,postgresql --rows 10000000
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from datetime import UTC, datetime, timedelta

from _common import machine, median, print_table
from audit_fill import drop_store, fill, fresh_store, old_rows, store_url, version
from prometheus_client import CollectorRegistry
from recorder_common import make_event
from sqlalchemy import create_engine, text

from agenttier_router.storage import Recorder, RecorderConfig, SQLBackend, open_backend
from agenttier_router.storage.retention import LEASE, RetentionPolicy, purge

START = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=100)
KEEP = timedelta(days=1)


class Producer:
    """A thread that feeds ``recorder`` realistic audit events as fast as it takes them."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.limit = 5 * recorder.config.batch_size
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="producer", daemon=True)
        self.rng = random.Random(7)
        self.n = 0
        self.waits = 0

    def _run(self) -> None:
        record, status = self.recorder.record, self.recorder.status
        while not self.stop.is_set():
            if status().queued >= self.limit:
                time.sleep(0.001)
                self.waits += 1
                continue
            for _ in range(500):
                record(make_event(self.rng, self.n))
                self.n += 1

    def __enter__(self) -> Producer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def written(recorder: Recorder) -> int:
    return recorder.metrics.written["audit_event"]


def ingest_alone(recorder: Recorder, seconds: float) -> tuple[float, float]:
    """Records/s the recorder writes in ``seconds`` with nothing else running.

    Also returns the share of the time the producer waited for the recorder
    (about 0: the producer is the bottleneck; about 1: the writer is).
    """
    with Producer(recorder) as producer:
        time.sleep(1.0)  # let the queue fill: the window measures the steady state
        before, began, waits = written(recorder), time.perf_counter(), producer.waits
        time.sleep(seconds)
        elapsed = time.perf_counter() - began
        rate = (written(recorder) - before) / elapsed
        waited = (producer.waits - waits) * 0.001 / elapsed
    assert recorder.flush(60), "the recorder did not catch up"
    return rate, waited


def purge_slice(backend: SQLBackend, cutoff: datetime, batch: int, pause: float,
                recorder: Recorder | None) -> tuple[int, float, float]:
    """Purge up to ``cutoff``, with ingest running when ``recorder`` is given.

    Returns (rows deleted, seconds, ingest records/s over the purge; 0 without).
    """
    policy = RetentionPolicy(audit=KEEP)

    def run() -> tuple[int, float]:
        began = time.perf_counter()
        report = purge(backend, policy, now=cutoff + KEEP, batch=batch, pause=pause)
        assert not report.skipped, report.skipped
        return sum(r.rows for r in report.results), time.perf_counter() - began

    if recorder is None:
        return (*run(), 0.0)
    with Producer(recorder):
        time.sleep(1.0)
        before = written(recorder)
        rows, seconds = run()
        rate = (written(recorder) - before) / seconds
    assert recorder.flush(60), "the recorder did not catch up"
    return rows, seconds, rate


def clear_lease(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE agenttier_maintenance SET holder = NULL, expires = NULL "
                          "WHERE name = :n"), {"n": LEASE})
    engine.dispose()


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return handle.read().split()[0]


class Run:
    """One backend's rounds: the store, the recorder, and every sample taken."""

    def __init__(self, kind: str, url: str, args: argparse.Namespace,
                 variants: list[tuple[int, float]], first: int) -> None:
        self.kind, self.args, self.variants = kind, args, variants
        backend = open_backend(url)
        assert isinstance(backend, SQLBackend)
        self.backend = backend
        self.recorder = Recorder(backend, config=RecorderConfig(), registry=CollectorRegistry())
        self.alone: list[float] = []
        self.waited: list[float] = []
        self.both: dict[tuple[int, float], list[float]] = {v: [] for v in variants}
        self.purged: dict[tuple[int, float, bool], list[float]] = {}
        self.deleted = 0
        self.slices = args.rounds * 2 * len(variants)
        self.per_slice = (args.purge_rows or args.rows - first) // self.slices
        self.first = first
        self.next_slice = 0

    def ingest_step(self, rnd: int) -> None:
        rate, waited = ingest_alone(self.recorder, self.args.ingest_seconds)
        self.alone.append(rate)
        self.waited.append(waited)
        print(f"  {self.kind} round {rnd + 1}: ingest alone {rate:,.0f}/s "
              f"(producer waited {waited:.0%} of the time)", flush=True)

    def purge_step(self, rnd: int, batch: int, pause: float, with_ingest: bool) -> None:
        self.next_slice += 1
        cutoff = START + STEP * (self.first + self.per_slice * self.next_slice)
        rows, s, rate = purge_slice(self.backend, cutoff, batch, pause,
                                    self.recorder if with_ingest else None)
        self.deleted += rows
        self.purged.setdefault((batch, pause, with_ingest), []).append(rows / s)
        if with_ingest:
            self.both[(batch, pause)].append(rate)
        print(f"  {self.kind} round {rnd + 1}: purge batch {batch} pause {pause:g}"
              f"{' + ingest' if with_ingest else ''}: {rows:,} rows in {s:.1f} s, "
              f"{rows / s:,.0f} rows/s" + (f", ingest {rate:,.0f}/s" if with_ingest else ""),
              flush=True)

    def rounds(self) -> None:
        for rnd in range(self.args.rounds):
            steps: list[tuple[int, float, bool] | None] = [None]
            steps += [(b, p, w) for b, p in self.variants for w in (False, True)]
            shift = rnd % len(steps)
            for step in steps[shift:] + steps[:shift]:
                if step is None:
                    self.ingest_step(rnd)
                else:
                    self.purge_step(rnd, *step)

    def close(self) -> None:
        self.recorder.close(60)
        self.backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default="5000",
                        help="comma-separated purge batch sizes (default: the shipped 5000)")
    parser.add_argument("--pauses", default="0",
                        help="comma-separated purge pauses, per second a batch took "
                        "(default: the shipped 0, never)")
    parser.add_argument("--ingest-seconds", type=float, default=15.0)
    parser.add_argument("--db", default="bench10", help="the server databases' name")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    parser.add_argument("--purge-rows", type=int,
                        help="rows purged in all, across the slices (default: --rows)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a store a run with --keep (or an interrupted run) left, "
                        "purging from its oldest remaining generated row")
    args = parser.parse_args()
    variants = [(int(b), float(p)) for b in args.batches.split(",")
                for p in args.pauses.split(",")]
    versions, ingest_rows, purge_rows = [], [], []
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        if args.reuse:
            url = store_url(kind, "purge_ingest", args.db)
            first = args.rows - old_rows(url)
            clear_lease(url)  # an interrupted run's lease would hold for its 10 minutes
            print(f"{kind}: reusing the store, {args.rows - first:,} generated rows left",
                  flush=True)
        else:
            url = fresh_store(kind, "purge_ingest", args.db)
            print(f"{kind}: loading {args.rows:,} rows", flush=True)
            load_s = fill(kind, url, args.rows, START, STEP)
            print(f"  loaded in {load_s:.0f} s", flush=True)
            first = 0
        versions.append(version(url))
        run = Run(kind, url, args, variants, first)
        load = [loadavg()]
        try:
            run.rounds()
        finally:
            run.close()
        load.append(loadavg())
        if not args.keep:
            drop_store(kind, url)
        for b, p in variants:
            a, w = median(run.alone), median(run.both[(b, p)])
            lo, hi = min(run.both[(b, p)]) / a, max(run.both[(b, p)]) / a
            ingest_rows.append((kind, f"{args.rows:,}", b, f"{p:g}", f"{a:,.0f}", f"{w:,.0f}",
                                f"{w / a:.2f}", f"{lo:.2f}-{hi:.2f}"))
            purge_rows.append((kind, b, f"{p:g}", f"{run.per_slice:,}",
                               f"{median(run.purged[(b, p, False)]):,.0f}",
                               f"{median(run.purged[(b, p, True)]):,.0f}"))
        print(f"  {kind}: {run.deleted:,} rows purged in all; producer waited "
              f"{median(run.waited):.0%} of the time alone (median); load average "
              f"{load[0]} before, {load[1]} after", flush=True)
    print()
    print(machine(versions), f"; {args.rounds} rounds, medians")
    print()
    print_table(["backend", "old rows", "purge batch", "pause", "ingest alone (rec/s)",
                 "ingest during purge (rec/s)", "ratio", "ratio range"], ingest_rows)
    print()
    print_table(["backend", "purge batch", "pause", "rows per purge", "purge alone (rows/s)",
                 "purge with ingest (rows/s)"], purge_rows)


if __name__ == "__main__":
    main()
