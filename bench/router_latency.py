"""Router request latency with storage on against storage off, side by side in one run.

Starts one real Router per side (``agenttier-router serve --dev-auth``, each in
its own process; see ``router_common.py``): ``off`` (no storage URL: the no-op
backend), ``sqlite`` (a fresh file, ``bench/.data/router_latency.db``), and,
when asked, ``postgresql`` (database ``agenttier_router_bench`` on the local
server, created if missing, emptied) and ``off-b`` (a second storage-off
Router: an A/A control that shows how far two identical Routers differ).
Each Router gets one sandbox, ``bench`` (template ``minimal``), Running.

One client (httpx, keep-alive, one connection per Router) then runs
``--warmup`` untimed and ``--n`` timed iterations; each iteration does, for each
action in turn, that action once on every side, the sides' order rotated each
iteration: ``POST /sandboxes/bench/stop``, ``POST /sandboxes/bench/resume``,
``POST /sandboxes/bench/exec`` with ``{"command": "true"}``. Every request is
timed alone (``perf_counter`` around the call, body read included) and must
answer 200 with the expected phase or exit code 0.

It prints, per action and side, p50/p95/p99 in milliseconds, the server-side
mean from the Router's own ``agenttier_http_request_seconds`` histogram, and
the p50 ratio to ``off`` with a bootstrap 95% interval; then what each
storage-on Router's recorder did (batches, mean batch write, records, drops);
then checks, after a SIGTERM drain, that the store holds one audit event per
action taken. Run from the repo root (about 25 s; about 1 minute with four sides)::

    .venv/bin/python bench/router_latency.py
    .venv/bin/python bench/router_latency.py --sides off,off-b,sqlite,postgresql
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import print_table
from router_common import (
    DATA_DIR,
    Router,
    count_rows,
    ensure_pg_database,
    fresh_sqlite,
    metric,
    pct,
    prepare_store,
)

SIDES = ("off", "off-b", "sqlite", "postgresql")
ACTIONS = ("stop", "resume", "exec")
ROUTES = {a: f"/api/v1/sandboxes/{{sandbox_id}}/{a}" for a in ACTIONS}
PG_DB = "agenttier_router_bench"
SANDBOX = "bench"


def request(client: httpx.Client, base: str, action: str, command: str
            ) -> Callable[[], httpx.Response]:
    url = f"{base}/api/v1/sandboxes/{SANDBOX}/{action}"
    body = {"command": command, "timeout": 10} if action == "exec" else None
    return lambda: client.post(url, json=body)


def check(action: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{action}: HTTP {response.status_code}: {response.text[:200]}")
    data = response.json()
    expected = {"stop": ("status", "Stopped"), "resume": ("status", "Running"),
                "exec": ("exitCode", 0)}[action]
    if data.get(expected[0]) != expected[1]:
        raise SystemExit(f"{action}: unexpected answer {data}")


def create_sandbox(client: httpx.Client, base: str) -> None:
    r = client.post(f"{base}/api/v1/sandboxes",
                    json={"name": SANDBOX, "templateRef": {"name": "minimal"}})
    if r.status_code != 201:
        raise SystemExit(f"create: HTTP {r.status_code}: {r.text[:200]}")
    deadline = time.monotonic() + 10
    while client.get(f"{base}/api/v1/sandboxes/{SANDBOX}").json()["status"] != "Running":
        if time.monotonic() > deadline:
            raise SystemExit("the sandbox did not reach Running in 10 s")
        time.sleep(0.05)


def ratio_ci(on: list[float], off: list[float], resamples: int, rng: random.Random
             ) -> tuple[float, float]:
    """A bootstrap 95% interval for median(on) / median(off), resampling each side."""
    if resamples <= 0:
        return float("nan"), float("nan")
    ratios = sorted(
        statistics.median(rng.choices(on, k=len(on)))
        / statistics.median(rng.choices(off, k=len(off)))
        for _ in range(resamples)
    )
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


def server_means(routers: dict[str, Router], client: httpx.Client) -> dict[tuple[str, str],
                                                                              tuple[float, float]]:
    """{(side, action): (sum of seconds, count)} from each Router's HTTP histogram."""
    out = {}
    for side, router in routers.items():
        text = client.get(router.url + "/metrics").text
        for action in ACTIONS:
            labels = {"method": "POST", "route": ROUTES[action]}
            out[side, action] = (metric(text, "agenttier_http_request_seconds_sum", **labels),
                                 metric(text, "agenttier_http_request_seconds_count", **labels))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="timed requests per side per action")
    parser.add_argument("--warmup", type=int, default=200, help="untimed iterations first")
    parser.add_argument("--sides", default="off,sqlite",
                        help=f"comma-separated, from {','.join(SIDES)}; 'off' is required")
    parser.add_argument("--command", default="true", help="what exec runs")
    parser.add_argument("--sqlite-path", default=str(DATA_DIR / "router_latency.db"))
    parser.add_argument("--pg-url", default=None,
                        help=f"default: database {PG_DB} on 127.0.0.1:5432, created if missing")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="resamples for the ratio's 95%% interval (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if "off" not in sides or set(sides) - set(SIDES) or len(set(sides)) != len(sides):
        raise SystemExit(f"--sides: 'off' plus any of {', '.join(SIDES[1:])}, each once")
    started = time.monotonic()

    DATA_DIR.mkdir(exist_ok=True)
    urls: dict[str, str | None] = {"off": None, "off-b": None}
    if "sqlite" in sides:
        urls["sqlite"] = fresh_sqlite(Path(args.sqlite_path).absolute())
    if "postgresql" in sides:
        urls["postgresql"] = args.pg_url or ensure_pg_database(PG_DB)
    for side in sides:
        if urls[side]:
            prepare_store(urls[side] or "", empty=True)

    routers = {side: Router(f"router_latency-{side}", urls[side]) for side in sides}
    samples: dict[tuple[str, str], list[float]] = {(s, a): [] for s in sides for a in ACTIONS}
    try:
        for router in routers.values():
            router.start()
        for router in routers.values():
            router.wait_ready()
        limits = httpx.Limits(max_keepalive_connections=len(sides), max_connections=len(sides))
        with httpx.Client(limits=limits, timeout=30.0) as client:
            for router in routers.values():
                create_sandbox(client, router.url)
            calls = {(s, a): request(client, routers[s].url, a, args.command)
                     for s in sides for a in ACTIONS}
            timer = time.perf_counter
            before: dict[tuple[str, str], tuple[float, float]] = {}
            for i in range(args.warmup + args.n):
                if i == args.warmup:
                    before = server_means(routers, client)
                    print(f"  warm-up done ({args.warmup} iterations)", flush=True)
                shift = i % len(sides)
                order = sides[shift:] + sides[:shift]
                for action in ACTIONS:
                    for side in order:
                        t0 = timer()
                        response = calls[side, action]()
                        elapsed = timer() - t0
                        check(action, response)
                        if i >= args.warmup:
                            samples[side, action].append(elapsed * 1000)
                if i > args.warmup and (i - args.warmup) % 500 == 0:
                    print(f"  {i - args.warmup} iterations", flush=True)
            after = server_means(routers, client)
            recorder = {}
            for side in sides:
                if urls[side]:
                    text = client.get(routers[side].url + "/metrics").text
                    ready = client.get(routers[side].url + "/readyz").json()["storage"]
                    recorder[side] = (
                        metric(text, "agenttier_recorder_batch_write_seconds_count"),
                        metric(text, "agenttier_recorder_batch_write_seconds_sum"),
                        metric(text, "agenttier_recorder_records_written_total"),
                        metric(text, "agenttier_recorder_records_dropped_total"),
                        ready["state"], ready["queued"], ready["spooled"],
                    )
    finally:
        codes = {side: router.stop() for side, router in routers.items()}
    measured = time.monotonic() - started

    rng = random.Random(args.seed)
    rows = []
    for action in ACTIONS:
        off = samples["off", action]
        for side in sides:
            s = samples[side, action]
            total, count = (a - b for a, b in zip(after[side, action], before[side, action],
                                                  strict=True))
            ratio = statistics.median(s) / statistics.median(off)
            lo, hi = ratio_ci(s, off, args.bootstrap, rng) if side != "off" else (0, 0)
            rows.append([
                action, side, len(s), f"{statistics.median(s):.3f}", f"{pct(s, 95):.3f}",
                f"{pct(s, 99):.3f}", f"{total / count * 1000:.3f}" if count else "-",
                "—" if side == "off" else f"{ratio:.3f}",
                "—" if side == "off" else f"{lo:.3f}-{hi:.3f}",
            ])

    print(f"\n{args.n} timed requests per side per action after {args.warmup} warm-up "
          f"iterations; exec runs {args.command!r}; milliseconds; run took {measured:.0f} s\n")
    print_table(["action", "side", "n", "p50", "p95", "p99", "server mean", "p50 / off",
                 "95% CI"], rows)

    if recorder:
        print("\nrecorder, over the whole run (warm-up included):\n")
        print_table(
            ["side", "batches", "mean batch write ms", "records written", "dropped",
             "storage state", "queued", "spooled"],
            [[side, f"{b:.0f}", f"{sec / b * 1000:.2f}" if b else "-", f"{w:.0f}", f"{d:.0f}",
              state, q, sp] for side, (b, sec, w, d, state, q, sp) in recorder.items()],
        )
        iterations = args.warmup + args.n
        expected = 1 + len(ACTIONS) * iterations  # create + every action
        print(f"\nstored after SIGTERM (expected {expected:,} audit events, "
              f"{2 + 2 * iterations:,} sandbox events):")
        for side in recorder:
            counts = count_rows(urls[side] or "")
            verdict = "ok" if counts["audit_events"] == expected else "MISMATCH"
            print(f"  {side}: exit {codes[side]}, {counts}: {verdict}")


if __name__ == "__main__":
    main()
