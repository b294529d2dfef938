"""Caller cost: ``Recorder.record(AuditEvent(...))`` against a synchronous autocommit INSERT.

What a request handler pays to record one audit event, record construction
included, measured call by call with ``perf_counter_ns``, for two event
shapes: *minimal* (``AuditEvent(actor=…, action=…, sandbox_id=…)``) and
*details* (plus ``namespace`` and a ``details`` mapping, which the
constructor serialises to JSON). Sides:

- recorder: ``recorder.record(AuditEvent(...))`` into a Recorder on a SQLite
  backend with the default config; its writer thread is running and writing
  the whole time, so the GIL is shared as it would be in the Router.
- sync raw: ``AuditEvent(...)``, its row tuple, then one autocommit ``INSERT``
  through the standard library's sqlite3 (WAL, synchronous=FULL: the
  library's pragmas), which is the Go Router's way.
- sync library (details only): ``AuditEvent(...)`` then
  ``backend.record_audit_event(event)`` (one transaction through SQLAlchemy).
- record() alone: ``recorder.record(event)`` of an event built beforehand.

Each round runs the three sides one after the other in a rotated order;
the table gives the median over rounds of each round's median (and p99) per
call. The timer's own cost (an empty timed region) is shown, and included
in every figure. Run from the repo root::

    .venv/bin/python bench/recorder_caller_cost.py
    .venv/bin/python bench/recorder_caller_cost.py --rounds 3 --calls 20000 --sync-calls 1000
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from recorder_common import DATA_DIR, machine, median, percentile, prepare, raw_connect

from agenttier_router.storage import AuditEvent, Recorder, open_backend
from agenttier_router.storage.sql.rows import group_rows
from agenttier_router.storage.sql.schema import WRITE_COLUMNS

COLUMNS = WRITE_COLUMNS["audit_events"]
INSERT = (f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES "
          f"({', '.join('?' * len(COLUMNS))}) ON CONFLICT (event_id) DO NOTHING")


def timed(calls: int, body: Callable[[int], None]) -> list[int]:
    """Nanoseconds of each of ``calls`` calls of ``body(i)``."""
    clock = time.perf_counter_ns
    out = []
    for i in range(calls):
        start = clock()
        body(i)
        out.append(clock() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50_000, help="recorder calls per round")
    parser.add_argument("--sync-calls", type=int, default=2_000, help="sync calls per round")
    args = parser.parse_args()

    path = str(DATA_DIR / "recorder_caller.db")
    url = prepare("sqlite", path)
    backend = open_backend(url)
    raw = raw_connect("sqlite", url)
    recorder = Recorder(backend, registry=CollectorRegistry())
    rng = random.Random(1)
    actors = [f"user-{rng.randrange(1000):04d}@example.com" for _ in range(1000)]

    def minimal(i: int) -> AuditEvent:
        return AuditEvent(actor=actors[i % 1000], action="exec", sandbox_id=f"sb-{i % 20000:05d}")

    def detailed(i: int) -> AuditEvent:
        return AuditEvent(actor=actors[i % 1000], action="exec", sandbox_id=f"sb-{i % 20000:05d}",
                          namespace="team-07", details={"exitCode": 0, "command": "ls"})

    prebuilt = [minimal(i) for i in range(args.calls)]

    def sync_raw(make: Callable[[int], AuditEvent]) -> Callable[[int], None]:
        return lambda i: raw.execute(INSERT, group_rows([make(i)])["audit_events"][0])

    sides: dict[str, tuple[Callable[[int], None], int]] = {
        "minimal: recorder.record(AuditEvent(...))": (
            lambda i: recorder.record(minimal(i)), args.calls),
        "minimal: sync raw sqlite3 INSERT (Go's way)": (sync_raw(minimal), args.sync_calls),
        "details: recorder.record(AuditEvent(...))": (
            lambda i: recorder.record(detailed(i)), args.calls),
        "details: sync raw sqlite3 INSERT (Go's way)": (sync_raw(detailed), args.sync_calls),
        "details: sync backend.record_audit_event": (
            lambda i: backend.record_audit_event(detailed(i)), args.sync_calls),
        "record() alone, event built beforehand": (
            lambda i: recorder.record(prebuilt[i]), args.calls),
    }
    timer = [median(timed(100_000, lambda i: None))]
    for fn, _ in sides.values():  # warm-up
        timed(200, fn)
    medians: dict[str, list[float]] = {name: [] for name in sides}
    p99s: dict[str, list[float]] = {name: [] for name in sides}
    for rnd in range(args.rounds):
        names = list(sides)
        names = names[rnd % len(names):] + names[: rnd % len(names)]
        for name in names:
            fn, calls = sides[name]
            samples = timed(calls, fn)
            medians[name].append(median(samples))
            p99s[name].append(percentile(samples, 0.99))
            if calls == args.calls:
                recorder.flush(30)  # settle between rounds; not timed
        print(f"  round {rnd + 1}/{args.rounds} done", flush=True)
    dropped = recorder.metrics.dropped_total()
    recorder.close(30)
    backend.close()
    raw.close()

    print(f"\nmachine: {machine()}")
    print(f"{args.rounds} rounds; per round {args.calls:,} recorder calls and "
          f"{args.sync_calls:,} sync calls per side; timer overhead {timer[0]:.0f} ns "
          f"(included); recorder drops: {dropped}\n")
    print("| side | median ns/call | p99 ns/call | sync / recorder (medians, same shape) |")
    print("|---|---|---|---|")
    for name in sides:
        m = median(medians[name])
        shape = name.partition(":")[0]
        ours = medians.get(f"{shape}: recorder.record(AuditEvent(...))")
        ratio = f"{m / median(ours):.0f}x" if ours and "sync" in name else "—"
        print(f"| {name} | {m:,.0f} | {median(p99s[name]):,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
