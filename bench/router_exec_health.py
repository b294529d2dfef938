"""``/healthz`` latency while 40 long execs run: before and after issue 9's item 3.

Starts two real Routers side by side (``serve --dev-auth``, storage off): the
code before the fix (commit ``BASE_COMMIT``, where every handler shared
Starlette's thread pool) and this tree (exec on its own pool, health async;
``--max-execs-per-user 40`` so that one caller may run all 40). On each, one
sandbox; 40 threads each run ``sleep SECONDS`` in it; meanwhile ``/healthz`` is
probed one request at a time and each answer timed. Also timed: the same
probes with nothing running. Reports p50/p99/max in ms; target: p99 < 50 ms.

    .venv/bin/python bench/router_exec_health.py --seconds 20 --probes 300
"""

from __future__ import annotations

import argparse
import threading
import time

import httpx
from router_common import Router, base_source, pct


def _probe(url: str, count: int, until: float | None = None) -> list[float]:
    samples = []
    with httpx.Client(timeout=120) as client:
        for _ in range(count):
            if until is not None and time.monotonic() > until:
                break
            t0 = time.perf_counter()
            assert client.get(url + "/healthz").status_code == 200
            samples.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    return samples


def _side(router: Router, seconds: float, probes: int, execs: int) -> dict[str, list[float]]:
    router.wait_ready()
    api = router.url + "/api/v1"
    with httpx.Client(timeout=30) as client:
        created = client.post(api + "/sandboxes",
                              json={"name": "sb-h", "templateRef": {"name": "minimal"}})
        assert created.status_code == 201, created.text
        while client.get(api + "/sandboxes/sb-h").json()["status"] != "Running":
            time.sleep(0.05)
    idle = _probe(router.url, probes)
    results: list[int] = []

    def run() -> None:
        with httpx.Client(timeout=seconds + 120) as client:
            response = client.post(api + "/sandboxes/sb-h/exec",
                                   json={"command": f"sleep {seconds}", "timeout": 3600})
            results.append(response.status_code)

    threads = [threading.Thread(target=run) for _ in range(execs)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let them all reach the Router
    loaded = _probe(router.url, probes, until=started + seconds - 1.0)
    for thread in threads:
        thread.join()
    assert results.count(200) == execs, results
    return {"idle": idle, "40 execs": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--execs", type=int, default=40)
    args = parser.parse_args()
    sides = {
        "before": Router("health-before", None, source=base_source()),
        "after": Router("health-after", None, flags=("--max-execs-per-user", str(args.execs))),
    }
    print(f"{args.execs} x 'sleep {args.seconds:g}' execs; /healthz probed one at a time")
    print(f"{'side':8} {'load':9} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, router in sides.items():
        with router:
            for load, samples in _side(router, args.seconds, args.probes, args.execs).items():
                print(f"{name:8} {load:9} {len(samples):5d} {pct(samples, 50):9.1f} "
                      f"{pct(samples, 99):9.1f} {max(samples):9.1f}", flush=True)


if __name__ == "__main__":
    main()
