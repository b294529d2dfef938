"""``/metrics`` size and Router memory after 20,000 requests with random methods.

Issue 9, item 1: with the raw method as a label, 20,000 requests with random
200-character methods grew ``/metrics`` from 58 KB to 112 MB. Starts two real
Routers side by side (``serve --dev-auth``, storage off): the code before the
fix (``BASE_COMMIT``) and this tree (method labels from a closed set). Each
gets one such request, then ``--requests`` more from 4 client threads (to
``/healthz``, answered 405); ``/metrics`` size and the Router's RSS are taken
after the first and after all.

    .venv/bin/python bench/router_metrics_cardinality.py --requests 20000
"""

from __future__ import annotations

import argparse
import random
import string
import threading

import httpx
from router_common import Router, base_source


def _methods(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(string.ascii_uppercase, k=200)) for _ in range(count)]


def _flood(url: str, count: int, threads: int = 4) -> None:
    def run(seed: int) -> None:
        with httpx.Client(timeout=60) as client:
            for method in _methods(seed, count // threads):
                client.request(method, url + "/healthz")

    workers = [threading.Thread(target=run, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _measure(router: Router) -> tuple[int, float]:
    with httpx.Client(timeout=300) as client:
        size = len(client.get(router.url + "/metrics").content)
    return size, router.rss_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    sides = {"before": Router("metrics-before", None, source=base_source()),
             "after": Router("metrics-after", None)}
    print(f"{'side':8} {'/metrics after 1':>17} {'after ' + str(args.requests):>14} "
          f"{'RSS after 1':>12} {'RSS after all':>14}")
    for name, router in sides.items():
        with router:
            router.wait_ready()
            _flood(router.url, 1, threads=1)
            _measure(router)  # /metrics's own series
            size1, rss1 = _measure(router)
            _flood(router.url, args.requests)
            size2, rss2 = _measure(router)
            print(f"{name:8} {size1 / 1024:14.1f} KB {size2 / 1024:11.1f} KB "
                  f"{rss1:8.1f} MiB {rss2:10.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
