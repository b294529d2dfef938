"""Requests/s and latency of ``GET /api/v1/audit/events`` with filters, at 1M stored audit events.

Data: the 1,000,000 audit events of ``query_latency.py`` (90 days ending
2026-11-01T00:00Z, 1,000 Zipf actors, 20,000 sandboxes), in
``bench/.data/router_audit_reads.db``. That file is reused when it already holds
``--rows`` events; otherwise it is copied (SQLite's online backup) from
``bench/.data/query_latency.db`` when that holds them, else loaded with
``query_latency.generate`` through the library's ``write_batch`` in batches
of ``--load-batch``, before any Router starts.

Routers (each its own process, ``--dev-auth``, storage on that file; see
``router_common.py``):

- ``shipped``: ``agenttier-router serve``, as released. The endpoint first
  waits (up to 1 s) for the recorder to write what it holds;
- ``no-read-wait``: the same command through ``router_server.py
  --no-read-wait``, with that wait removed: the difference is what the wait
  costs. Both Routers' recorders are idle (nothing is written during the run).

Queries (limit 100, newest first, ``since``/``until`` = the last 7 days of
the data): one actor (``actor-0100``, ~100 events a week), one sandbox, the
window alone, and the window's page 2 through the first page's ``nextCursor``.

For each number of concurrent clients (``--clients``, default 1 and 4; each
client a process with its own keep-alive httpx connection), ``--rounds``
rounds run every query against every Router for ``--duration`` seconds, the
Routers' order rotated; the clients start together, and only requests that
complete inside the window count. Reported: requests/s (all rounds pooled, and
the range over rounds), latency p50/p95/p99 as the clients see it, and the
Router's CPU time per request (from ``/proc``). Before that, in this process:
``backend.list_audit_events`` for the same queries (what the library alone
costs), the handler's response building for its page (``_audit_out`` per
event, ``AuditEventsOut``, ``model_dump_json``), and ``Recorder.flush(1.0)`` on
an idle recorder (what the wait costs in isolation). Run from the repo root
(about 2.5 minutes, plus the copy)::

    .venv/bin/python bench/router_audit_reads.py
    .venv/bin/python bench/router_audit_reads.py --clients 1,2,4 --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from _common import print_table
from router_common import BENCH, DATA_DIR, Router, fresh_sqlite, pct

from agenttier_router.api.models import AuditEventsOut
from agenttier_router.api.records import _audit_out
from agenttier_router.storage import AuditFilter, Recorder, open_backend, parse_ts

PATH = "/api/v1/audit/events"
SINCE, UNTIL = "2026-10-25T00:00:00Z", "2026-11-01T00:00:00Z"
QUERIES: dict[str, dict[str, str]] = {
    "actor-0100 + 7d": {"actor": "actor-0100"},
    "sandbox + 7d": {"sandbox": "sb-00042"},
    "7d window only": {},
    "7d window, page 2": {"cursor": ""},  # filled in from the first page's nextCursor
}
VARIANTS = ("shipped", "no-read-wait")
_TICK = os.sysconf("SC_CLK_TCK")


def count(path: Path) -> int:
    if not path.exists():
        return -1
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM audit_events").fetchone()[0])
    except sqlite3.DatabaseError:
        return -1
    finally:
        conn.close()


def prepare_data(target: Path, source: Path, rows: int, batch: int) -> str:
    """Make ``target`` hold ``rows`` audit events; say how."""
    if count(target) == rows:
        return f"reused {target.name}"
    fresh_sqlite(target)
    started = time.perf_counter()
    if count(source) == rows:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))  # private, as the library
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        src.backup(dst)
        dst.close()
        src.close()
        return f"copied {source.name} in {time.perf_counter() - started:.0f} s"
    from query_latency import generate

    backend = open_backend(f"sqlite:///{target}")
    backend.upgrade()  # type: ignore[attr-defined]
    for records in generate(rows, batch):
        backend.write_batch(records)
    backend.close()
    return f"loaded {rows:,} rows with write_batch in {time.perf_counter() - started:.0f} s"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (and its reaped children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / _TICK


def client_worker(tasks: Any, results: Any) -> None:
    """A client process: for each task, wait for the window, then request until it closes."""
    clients: dict[str, httpx.Client] = {}
    while (task := tasks.get()) is not None:
        base, params, start_at, end_at = task
        client = clients.get(base)
        if client is None:
            client = clients[base] = httpx.Client(base_url=base, timeout=30.0)
        client.get(PATH, params=params).raise_for_status()  # untimed: the connection is open
        while time.monotonic() < start_at:
            time.sleep(0.001)
        latencies, errors = [], 0
        timer, clock = time.perf_counter, time.monotonic
        while True:
            t0 = timer()
            status = client.get(PATH, params=params).status_code
            t1 = timer()
            if clock() > end_at:
                break
            latencies.append(t1 - t0)
            errors += status != 200
        results.put((latencies, errors))


def reference(url: str, params: dict[str, dict[str, str]], reps: int
              ) -> tuple[dict[str, list[float]], list[float]]:
    """In-process: for each case, the library's query and the handler's response building
    (``_audit_out`` per event, the ``AuditEventsOut`` model, its JSON); then an idle
    recorder's flush()."""
    backend = open_backend(url)
    lib: dict[str, list[float]] = {}
    timer = time.perf_counter
    for name, p in params.items():
        query = AuditFilter(actor=p.get("actor"), sandbox_id=p.get("sandbox"),
                            since=parse_ts(SINCE), until=parse_ts(UNTIL),
                            cursor=p.get("cursor"))
        page = backend.list_audit_events(query)
        queried, built = lib[f"query: {name}"], lib[f"response: {name}"] = [], []
        for _ in range(reps):
            t0 = timer()
            page = backend.list_audit_events(query)
            t1 = timer()
            AuditEventsOut(events=[_audit_out(e) for e in page.items],
                           next_cursor=page.next_cursor).model_dump_json(by_alias=True)
            t2 = timer()
            queried.append((t1 - t0) * 1000)
            built.append((t2 - t1) * 1000)
    recorder = Recorder(backend)
    flush = []
    for _ in range(reps * 5):
        t0 = time.perf_counter()
        if not recorder.flush(1.0):
            raise SystemExit("an idle recorder's flush did not complete")
        flush.append((time.perf_counter() - t0) * 1000)
    recorder.close()
    backend.close()
    return lib, flush


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,4", help="concurrent client processes, per run")
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="shipped,no-read-wait")
    parser.add_argument("--reps", type=int, default=200, help="in-process reference calls")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--load-batch", type=int, default=20_000)
    parser.add_argument("--sqlite-path", default=str(DATA_DIR / "router_audit_reads.db"))
    parser.add_argument("--source", default=str(DATA_DIR / "query_latency.db"),
                        help="an SQLite file with the same data to copy, if it has --rows")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - set(VARIANTS):
        raise SystemExit(f"--variants: from {', '.join(VARIANTS)}")
    started = time.monotonic()

    DATA_DIR.mkdir(exist_ok=True)
    target = Path(args.sqlite_path).absolute()
    note = prepare_data(target, Path(args.source), args.rows, args.load_batch)
    print(f"  data: {note}", flush=True)
    url = f"sqlite:///{target}"

    routers = {v: Router(f"router_audit_reads-{v}", url,
                         script=BENCH / "router_server.py" if v == "no-read-wait" else None,
                         extra=["--no-read-wait"] if v == "no-read-wait" else [])
               for v in variants}
    ctx = mp.get_context("spawn")
    tasks = [ctx.Queue() for _ in range(max(levels))]
    results = ctx.Queue()
    workers = [ctx.Process(target=client_worker, args=(q, results), daemon=True) for q in tasks]
    samples: dict[tuple[int, str, str], list[float]] = {}
    rates: dict[tuple[int, str, str], list[float]] = {}
    cpu: dict[tuple[int, str, str], list[float]] = {}
    errors = 0
    try:
        for router in routers.values():
            router.start()
        for w in workers:
            w.start()
        for router in routers.values():
            router.wait_ready(60)
        base = {"since": SINCE, "until": UNTIL}
        params = {name: {**base, **p} for name, p in QUERIES.items()}
        first = httpx.get(next(iter(routers.values())).url + PATH,
                          params=params["7d window only"], timeout=30).json()
        params["7d window, page 2"]["cursor"] = first["nextCursor"]
        shown = {}
        for name, p in params.items():  # both Routers answer the same, and as expected
            answers = [httpx.get(r.url + PATH, params=p, timeout=30).json()
                       for r in routers.values()]
            if any(a != answers[0] for a in answers):
                raise SystemExit(f"{name}: the Routers disagree")
            shown[name] = len(answers[0]["events"])
        lib, flush = reference(url, params, args.reps)
        print(f"  in-process reference done ({time.monotonic() - started:.0f} s)", flush=True)

        for clients in levels:
            for rnd in range(args.rounds):
                for qi, name in enumerate(params):
                    shift = (rnd + qi) % len(variants)
                    for variant in variants[shift:] + variants[:shift]:
                        router = routers[variant]
                        assert router.proc is not None
                        start_at = time.monotonic() + 0.3
                        end_at = start_at + args.duration
                        for q in tasks[:clients]:
                            q.put((router.url, params[name], start_at, end_at))
                        while time.monotonic() < start_at:
                            time.sleep(0.001)
                        cpu0 = cpu_seconds(router.proc.pid)
                        got = [results.get(timeout=60) for _ in range(clients)]
                        used = cpu_seconds(router.proc.pid) - cpu0
                        key = (clients, name, variant)
                        lat = [x * 1000 for g in got for x in g[0]]
                        errors += sum(g[1] for g in got)
                        samples.setdefault(key, []).extend(lat)
                        rates.setdefault(key, []).append(len(lat) / args.duration)
                        cpu.setdefault(key, []).append(used / max(1, len(lat)) * 1000)
                print(f"  {clients} client(s) done ({time.monotonic() - started:.0f} s)",
                      flush=True)
    finally:
        for q in tasks:
            q.put(None)
        for w in workers:
            w.join(10)
        for router in routers.values():
            router.stop()

    print(f"\n{args.rows:,} audit events in SQLite ({note}); {args.rounds} rounds x "
          f"{args.duration:g} s per query, Router and client count; non-200 answers: {errors}; "
          f"run took {time.monotonic() - started:.0f} s\n")
    rows = []
    for clients in levels:
        for name in params:
            for variant in variants:
                key = (clients, name, variant)
                s, r = samples[key], rates[key]
                rate = len(s) / (args.duration * len(r))
                vs = ["", ""]
                if variant != variants[0]:
                    ref = samples[clients, name, variants[0]]
                    vs = [f"{len(s) / len(ref):.2f}",
                          f"{statistics.median(s) / statistics.median(ref):.2f}"]
                rows.append([
                    clients, name, shown[name], variant, f"{rate:,.0f}",
                    f"{min(r):,.0f}-{max(r):,.0f}", f"{statistics.median(s):.2f}",
                    f"{pct(s, 95):.2f}", f"{pct(s, 99):.2f}",
                    f"{statistics.median(cpu[key]):.2f}", *vs,
                ])
    print_table(["clients", "query", "rows", "Router", "req/s", "req/s range", "p50 ms",
                 "p95 ms", "p99 ms", "Router CPU ms/req", f"req/s / {variants[0]}",
                 f"p50 / {variants[0]}"], rows)
    print(f"\nin-process, {args.reps} calls each (milliseconds):\n")
    print_table(["what", "p50", "p95", "p99"],
                [[n, f"{statistics.median(v):.3f}",
                  f"{pct(v, 95):.3f}", f"{pct(v, 99):.3f}"] for n, v in lib.items()]
                + [[f"idle Recorder.flush(1.0), {len(flush)} calls",
                    f"{statistics.median(flush):.3f}", f"{pct(flush, 95):.3f}",
                    f"{pct(flush, 99):.3f}"]])


if __name__ == "__main__":
    main()
