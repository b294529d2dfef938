"""Outage: a steady stream of records while PostgreSQL goes away for 30 s, then comes back.

The shared server is never stopped: the Recorder's backend reaches it through
a TCP proxy (``tests/tcpproxy.py``), and the outage is made at the proxy:

- ``kill``: the proxy stops listening and cuts its connections (connection
  refused, like a server that is down), then listens again;
- ``hang``: the proxy keeps accepting connections and answers nothing; the
  open connection freezes mid-call (like a server that is wedged, or a
  network black hole), then everything flows again.

A producer records ``--rate`` audit events a second (``record(AuditEvent(...))``,
construction included, each call timed) for ``--before`` s, through the
``--outage`` s outage, and ``--after`` s past it; then ``flush``. The Recorder
runs with the default config and a spool in ``bench/.data/``. Reported:
records lost and duplicated (``audit_events`` emptied before the run, so
rows and distinct event ids count exactly), drops, the spool's peak, the time
from the end of the outage until the spool was empty, and the caller's cost
before, during and after. Run from the repo root::

    .venv/bin/python bench/recorder_outage.py                  # kill, then hang
    .venv/bin/python bench/recorder_outage.py --modes kill --outage 10
"""

from __future__ import annotations

import argparse
import logging
import shutil
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry
from recorder_common import DATA_DIR, count_rows, median, percentile, prepare, reset
from sqlalchemy.engine import make_url
from tcpproxy import TcpProxy

from agenttier_router.storage import AuditEvent, Recorder, RecorderConfig, open_backend


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    url = prepare("postgresql")
    reset("postgresql", url)
    real = make_url(url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    proxied = real.set(port=proxy.port).render_as_string(hide_password=False)
    spool_dir = DATA_DIR / f"recorder_outage_spool_{mode}"
    shutil.rmtree(spool_dir, ignore_errors=True)
    backend = open_backend(proxied)
    registry = CollectorRegistry()
    recorder = Recorder(backend, config=RecorderConfig(spool_dir=spool_dir), registry=registry)

    def gauge(name: str) -> float:
        return registry.get_sample_value(f"agenttier_recorder_{name}") or 0.0

    start_outage, end_outage = args.before, args.before + args.outage
    total = end_outage + args.after
    marks: dict[str, float] = {}
    spool_peak = [0.0]
    stop = threading.Event()

    def control(t0: float) -> None:
        time.sleep(max(0.0, t0 + start_outage - time.perf_counter()))
        proxy.kill() if mode == "kill" else proxy.hang()
        marks["down"] = time.perf_counter() - t0
        while time.perf_counter() - t0 < end_outage:
            spool_peak[0] = max(spool_peak[0], gauge("spool_depth"))
            time.sleep(0.1)
        proxy.restart() if mode == "kill" else proxy.resume()
        marks["up"] = time.perf_counter() - t0
        while not stop.is_set():
            depth = gauge("spool_depth")
            spool_peak[0] = max(spool_peak[0], depth)
            if depth == 0 and "drained" not in marks:
                marks["drained"] = time.perf_counter() - t0
            time.sleep(0.05)

    costs: dict[str, list[int]] = {"before": [], "during": [], "after": []}
    per_tick = max(1, args.rate // 1000)
    clock = time.perf_counter_ns
    t0 = time.perf_counter()
    controller = threading.Thread(target=control, args=(t0,), daemon=True)
    controller.start()
    sent = 0
    tick = 0
    while True:
        now = time.perf_counter() - t0
        if now >= total:
            break
        phase = "before" if now < start_outage else "during" if now < end_outage else "after"
        bucket = costs[phase]
        for _ in range(per_tick):
            began = clock()
            recorder.record(AuditEvent(actor="bench@example.com", action="exec",
                                       sandbox_id="sb-00042", namespace="team-07"))
            bucket.append(clock() - began)
        sent += per_tick
        tick += 1
        delay = t0 + tick / 1000 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    flushed = recorder.flush(300)
    finished = time.perf_counter() - t0
    stop.set()
    controller.join(5)
    dropped = recorder.metrics.dropped_total()
    errors = {k: registry.get_sample_value("agenttier_recorder_backend_errors_total",
                                           {"kind": k}) for k in ("unavailable", "error",
                                                                  "timeout")}
    recorder.close(30)
    backend.close()
    proxy.close()
    rows, distinct = count_rows("postgresql", url)
    drained = marks.get("drained", finished)
    return {
        "mode": mode, "sent": sent, "rows": rows, "distinct": distinct,
        "lost": sent - distinct, "duplicated": rows - distinct, "dropped": dropped,
        "flushed": flushed, "spool_peak": int(spool_peak[0]),
        "catch_up": drained - marks.get("up", end_outage), "errors": errors,
        "costs": costs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="kill,hang")
    parser.add_argument("--rate", type=int, default=5000, help="records per second")
    parser.add_argument("--before", type=float, default=15.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--after", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="    log: %(message)s")

    results = [run(mode, args) for mode in args.modes.split(",")]
    print(f"\n{args.rate:,} records/s; {args.before:g} s before, {args.outage:g} s outage, "
          f"{args.after:g} s after; default RecorderConfig with a spool\n")
    print("| outage | sent | stored (distinct) | lost | duplicated | dropped | spool peak | "
          "spool empty after recovery | backend errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        errs = ", ".join(f"{k} {int(v or 0)}" for k, v in r["errors"].items() if v)
        print(f"| {r['mode']} | {r['sent']:,} | {r['distinct']:,} | {r['lost']} | "
              f"{r['duplicated']} | {r['dropped']} | {r['spool_peak']:,} | "
              f"{r['catch_up']:.1f} s | {errs} |")
    print("\n| outage | phase | calls | p50 ns | p99 ns | p99.9 ns | p99 / p99 before |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        base = percentile(r["costs"]["before"], 0.99)
        for phase, samples in r["costs"].items():
            p99 = percentile(samples, 0.99)
            print(f"| {r['mode']} | {phase} | {len(samples):,} | {median(samples):,.0f} | "
                  f"{p99:,.0f} | {percentile(samples, 0.999):,.0f} | {p99 / base:.2f} |")


if __name__ == "__main__":
    main()
