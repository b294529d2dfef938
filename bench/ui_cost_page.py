"""The 30-day costs page for 1,000 sandboxes in Chromium: raw snapshots, then with rollups.

Data: 1,000 sandboxes (20 namespaces, 50 owners, 4 templates), one cost
snapshot per sandbox per hour for the 30 days before the run (720,000 rows),
plus the 30 days before those (the previous window the page compares with),
written with ``write_batch`` into ``bench/.data/ui_cost_page.db`` (remade
each run: the window ends now).

The Router is ``agenttier-router serve --dev-auth`` on that file, in its own
process. Chromium opens ``/ui/costs?window=30d`` grouped by namespace and by
sandbox (a 1,000-row table; the chart shows the 8 dearest and sums the rest)
``--reps`` times each, each in a fresh context, first with only raw snapshots
(no rollup has run), then after ``roll_up`` has filled the hourly and daily
rollups, which the series and totals read for whole buckets. Reported (ms,
medians): the HTML's end and the first contentful paint after navigation
start, the wall time from ``page.goto`` until the table is in the DOM, and the
HTML's size. Run from the repo root::

    .venv/bin/python bench/ui_cost_page.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import print_table
from router_common import DATA_DIR, Router, fresh_sqlite, pct
from ui_common import chromium

from agenttier_router.storage import CostSnapshot, SQLBackend, open_backend
from agenttier_router.storage.rollups import roll_up

PAGES = {"30d by namespace": "/ui/costs?window=30d&groupBy=namespace",
         "30d by sandbox (1,000 rows)": "/ui/costs?window=30d&groupBy=sandbox"}
_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {html: n.responseEnd, fcp: fcp ? fcp.startTime : null, size: n.transferSize};
}"""


def load(url: str, sandboxes: int, days: int, now: datetime) -> int:
    """Write hourly snapshots for ``sandboxes`` over ``2 * days`` days before ``now``."""
    rng = random.Random(3)
    backend = open_backend(url)
    backend.upgrade()  # type: ignore[attr-defined]
    who = [(f"team-{i % 20:02d}", f"user-{rng.randrange(50):02d}",
            rng.choice(["minimal", "general-coding", "gpu-large", "data"]),
            rng.choice([0.5, 1, 2, 4])) for i in range(sandboxes)]
    written = 0
    for h in range(1, 24 * days * 2 + 1):
        at = now - timedelta(hours=h, minutes=1)
        batch = [CostSnapshot(sandbox_id=f"sb-{i:04d}", namespace=ns, owner=owner,
                              template=template, cpu_hours=cpu, mem_gb_hours=cpu * 2,
                              estimated_usd=cpu * 0.031611 + cpu * 2 * 0.004237, time=at)
                 for i, (ns, owner, template, cpu) in enumerate(who)]
        backend.write_batch(batch)
        written += len(batch)
    backend.close()
    return written


def visit(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context()
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.locator("table.costs tbody tr").first.wait_for()
    wall = (time.perf_counter() - t0) * 1000
    page.wait_for_load_state("load")
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length")
    timing = page.evaluate(_TIMING)
    context.close()
    return {**timing, "wall": wall}


def measure(browser: Any, base: str, reps: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {name: [] for name in PAGES}
    for path in PAGES.values():
        visit(browser, base + path)  # warm, untimed
    for rep in range(reps):
        names = list(PAGES)[rep % 2:] + list(PAGES)[:rep % 2]
        for name in names:
            out[name].append(visit(browser, base + PAGES[name]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--sandboxes", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    DATA_DIR.mkdir(exist_ok=True)
    url = fresh_sqlite(DATA_DIR / "ui_cost_page.db")
    now = datetime.now(UTC)
    started = time.perf_counter()
    rows = load(url, args.sandboxes, args.days, now)
    print(f"  data: {rows:,} snapshots in {time.perf_counter() - started:.0f} s", flush=True)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with chromium() as browser:
        for variant in ("raw snapshots", "with rollups"):
            if variant == "with rollups":
                backend = open_backend(url)
                assert isinstance(backend, SQLBackend)
                t0 = time.perf_counter()
                roll_up(backend)
                print(f"  roll_up: {time.perf_counter() - t0:.0f} s", flush=True)
                backend.close()
            with Router("ui_cost_page", url) as router:
                router.wait_ready()
                results[variant] = measure(browser, router.url, args.reps)
    table = []
    for variant, pages in results.items():
        for name, got in pages.items():
            walls = [g["wall"] for g in got]
            table.append([variant, name, f"{statistics.median(g['html'] for g in got):.0f}",
                          f"{statistics.median(g['fcp'] for g in got):.0f}",
                          f"{statistics.median(walls):.0f}", f"{pct(walls, 95):.0f}",
                          f"{got[0]['size']:,.0f}"])
    print(f"\nCosts page, {args.sandboxes:,} sandboxes, {args.reps} cold visits each "
          "(ms after navigation start; medians)\n")
    print_table(["store", "page", "HTML done", "FCP", "goto → table (wall)", "wall p95",
                 "HTML bytes"], table)


if __name__ == "__main__":
    main()
