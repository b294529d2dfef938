"""Page timings in Chromium: the activity page's first rows at 1M audit rows, and first-load bytes.

Data: the 1,000,000 audit events of ``query_latency.py`` (90 days ending
2026-11-01T00:00Z, 1,000 Zipf actors, 20,000 sandboxes) in
``bench/.data/ui_pages.db``, prepared as ``router_audit_reads.py`` does
(reused, copied from ``query_latency.db``, or loaded with ``write_batch``).

The Router is ``agenttier-router serve --dev-auth`` on that file, in its own
process (``router_common.Router``). Debian's Chromium (headless, through
Playwright) opens each page ``--reps`` times, each in a fresh browser context
(cold cache, new connection), the pages' order rotated each round. Reported,
from the browser's own Navigation and Paint Timing (milliseconds after
navigation start): the first byte, the end of the HTML, and the first
contentful paint, which is when the first rows show (they are in the
server-rendered HTML, not fetched by script); and from this process, the
wall time from ``page.goto`` until the first row is in the DOM. Beside them,
the same query through ``GET /api/v1/audit/events`` (limit 50) with httpx:
what the page adds to the JSON endpoint. The floor, in the same rotation:
the same page for an actor with no events (no rows, same CSS and JS). Then
the bytes of a first load (HTML + CSS + JS, headers included, from
Playwright's ``request.sizes()``).
Run from the repo root::

    .venv/bin/python bench/ui_pages.py
    .venv/bin/python bench/ui_pages.py --reps 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from _common import print_table
from router_audit_reads import prepare_data
from router_common import DATA_DIR, Router, pct
from ui_common import chromium

PAGES: dict[str, tuple[str, dict[str, str]]] = {
    "newest 50, no filter": ("/ui/activity", {}),
    "actor-0100, last 7d of data": ("/ui/activity?actor=actor-0100&from=2026-10-25T00:00"
                                    "&to=2026-11-01T00:00",
                                    {"actor": "actor-0100", "since": "2026-10-25T00:00:00Z",
                                     "until": "2026-11-01T00:00:00Z"}),
    "sandbox sb-00042": ("/ui/activity?sandbox=sb-00042", {"sandbox": "sb-00042"}),
    "outcome denied": ("/ui/activity?outcome=denied", {"outcome": "denied"}),
}
FLOOR = "floor: an actor with no events (no rows)"
"""The floor: what Chromium takes for the same page with no rows (one indexed lookup)."""

_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {ttfb: n.responseStart, html: n.responseEnd, dcl: n.domContentLoadedEventEnd,
          fcp: fcp ? fcp.startTime : null};
}"""


def visit(browser: Any, url: str, ready: str = "table.activity tbody tr.event") -> dict[str, float]:
    """Open ``url`` in a fresh context; the browser's timings, the wall time, and bytes."""
    context = browser.new_context()
    page = context.new_page()
    sizes: list[tuple[str, int]] = []
    page.on("requestfinished", lambda request: sizes.append(
        (request.resource_type, sum(request.sizes()[k] for k in
                                    ("responseBodySize", "responseHeadersSize")))))
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.locator(ready).first.wait_for()
    wall = (time.perf_counter() - t0) * 1000
    page.wait_for_load_state("load")
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length")
    timing = page.evaluate(_TIMING)
    context.close()
    result = {**timing, "wall": wall, "bytes": float(sum(b for _, b in sizes))}
    for kind in ("document", "stylesheet", "script"):
        result[f"bytes:{kind}"] = float(sum(b for k, b in sizes if k == kind))
    return result


def api_ms(base: str, params: dict[str, str], reps: int) -> list[float]:
    """The same query through the JSON endpoint, on one keep-alive connection."""
    out = []
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get("/api/v1/audit/events", params={**params, "limit": 50}).raise_for_status()
        for _ in range(reps):
            t0 = time.perf_counter()
            client.get("/api/v1/audit/events", params={**params, "limit": 50}).raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="visits per page")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--load-batch", type=int, default=20_000)
    parser.add_argument("--sqlite-path", default=str(DATA_DIR / "ui_pages.db"))
    parser.add_argument("--source", default=str(DATA_DIR / "query_latency.db"))
    args = parser.parse_args()
    DATA_DIR.mkdir(exist_ok=True)
    target = Path(args.sqlite_path).absolute()
    print(f"  data: {prepare_data(target, Path(args.source), args.rows, args.load_batch)}",
          flush=True)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in PAGES}
    api: dict[str, list[float]] = {}
    with Router("ui_pages", f"sqlite:///{target}") as router, chromium() as browser:
        router.wait_ready()
        names = list(PAGES)
        for name in names:  # warm the Router's pool and the OS page cache, untimed
            visit(browser, router.url + PAGES[name][0])
        samples[FLOOR] = []
        order = [*names, FLOOR]
        for rep in range(args.reps):
            for name in order[rep % len(order):] + order[:rep % len(order)]:
                if name == FLOOR:
                    empty = router.url + "/ui/activity?actor=no-such-actor"
                    samples[FLOOR].append(visit(browser, empty, ready="main h1"))
                else:
                    samples[name].append(visit(browser, router.url + PAGES[name][0]))
        for name in names:
            api[name] = api_ms(router.url, PAGES[name][1], args.reps * 4)
    rows = []
    for name in [*names, FLOOR]:
        got = samples[name]

        def med(key: str, got: list[dict[str, float]] = got) -> str:
            return f"{statistics.median(s[key] for s in got):.0f}"

        walls = [s["wall"] for s in got]
        rows.append([name, med("ttfb"), med("html"), med("fcp"), med("wall"),
                     f"{pct(walls, 95):.0f}",
                     f"{statistics.median(api[name]):.1f}" if name in api else "-"])
    print(f"\nActivity page at {args.rows:,} audit rows, {args.reps} cold visits each "
          "(ms after navigation start; medians)\n")
    print_table(["page", "first byte", "HTML done", "first rows painted (FCP)",
                 "goto → first row (wall)", "wall p95", "JSON API, same query"], rows)
    first = samples[names[0]][0]
    print("\nFirst load of /ui/activity (bytes on the wire, headers included)\n")
    print_table(["HTML", "CSS", "JS", "total"],
                [[f"{first['bytes:document']:,.0f}", f"{first['bytes:stylesheet']:,.0f}",
                  f"{first['bytes:script']:,.0f}", f"{first['bytes']:,.0f}"]])


if __name__ == "__main__":
    main()
