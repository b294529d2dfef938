"""Export of 10M audit rows as CSV: rows/s and peak memory, over HTTP and through the CLI.

Per backend, a store of its own (see ``audit_fill.py``) gets ``--rows``
audit events (default 1,000,000; the issue's figure is 10,000,000), made
with SQL, ten a second from 2026-10-01. Each size in ``--sizes`` (default:
a tenth of ``--rows``, then all of it; ``--cli-sizes`` for the CLI sides)
is the newest N rows, chosen with
``since`` (so both sizes read the same table through the same query), and
is exported by each side in ``--sides``:

- ``http``: a real Router in its own process (``serve --api-keys FILE``,
  started fresh for each export, so that its peak is this export's), and
  ``GET /api/v1/records/audit/export?format=csv&since=…`` with an admin's
  ``X-API-Key`` through httpx, streaming and counting lines. The Router's
  resident memory is read from ``/proc/<pid>/status``: VmRSS after
  start-up and one empty export, and VmHWM (its peak) after the export.
- ``cli``: ``agenttier-router records audit --dsn URL --all --limit 1000
  --format csv --since …`` in its own process, stdout read and counted;
  the peak is the child's ``ru_maxrss`` (from ``wait4``).
- ``cli-url``: the same command with ``--url`` (the Router's list endpoint,
  page after page) instead of ``--dsn``; the peak is the CLI's, the
  Router's VmHWM is printed too.

If memory is flat, the peak at the larger size equals the peak at the
smaller one. Rows counted are checked against the size (the exports' own
audit events, written while they run, may add a few).

Run from the repo root (Linux only, for ``/proc``)::

    .venv/bin/python bench/export_10m.py --rows 100000
    .venv/bin/python bench/export_10m.py --backends sqlite,postgresql --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
from _common import DATA_DIR, machine, print_table
from audit_fill import drop_store, fill, fresh_store, version
from router_common import Router

from agenttier_router.storage._time import format_ts

START = datetime(2026, 10, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=100)
KEY = "bench10-export-admin-key-0123456789"
_EXPORT = "/api/v1/records/audit/export"


def status_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return handle.read().split()[0]


def count_lines(chunks: Iterator[bytes]) -> tuple[int, int]:
    lines = size = 0
    for chunk in chunks:
        lines += chunk.count(b"\n")
        size += len(chunk)
    return lines, size


def router(kind: str, url: str) -> Router:
    keys = DATA_DIR / "export_10m-keys.json"
    keys.write_text(json.dumps([{"key": KEY, "subject": "bench-admin",
                                 "groups": ["agenttier-admins"]}]))
    os.chmod(keys, 0o600)
    return Router(f"export_10m-{kind}", url, auth=("--api-keys", str(keys)))


def over_http(kind: str, url: str, since: str) -> tuple[int, float, int, float, float]:
    """(lines, seconds, bytes, Router MiB after start, Router peak MiB)."""
    with router(kind, url) as r:
        r.wait_ready()
        assert r.proc is not None
        headers = {"X-API-Key": KEY}
        httpx.get(r.url + _EXPORT, params={"format": "csv", "actor": "none"},
                  headers=headers, timeout=60).raise_for_status()
        start = status_kb(r.proc.pid, "VmRSS")
        began = time.perf_counter()
        with httpx.stream("GET", r.url + _EXPORT, params={"format": "csv", "since": since},
                          headers=headers, timeout=3600) as response:
            response.raise_for_status()
            lines, size = count_lines(response.iter_bytes())
        elapsed = time.perf_counter() - began
        peak = status_kb(r.proc.pid, "VmHWM")
    return lines, elapsed, size, start / 1024, peak / 1024


def through_cli(kind: str, url: str, since: str, remote: bool
                ) -> tuple[int, float, int, float, float]:
    """(lines, seconds, bytes, Router peak MiB or 0, CLI peak MiB)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STORAGE_", "COLUMNS", "AGENTTIER_"))}
    cmd = [sys.executable, "-m", "agenttier_router.cli", "records", "audit", "--all",
           "--limit", "1000", "--format", "csv", "--since", since]

    def run(source: list[str]) -> tuple[int, float, int, float]:
        began = time.perf_counter()
        proc = subprocess.Popen([*cmd, *source], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
        assert proc.stdout is not None
        lines, size = count_lines(iter(lambda: proc.stdout.read(1 << 16), b""))  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the CLI export failed ({status})")
        return lines, elapsed, size, usage.ru_maxrss / 1024

    if not remote:
        lines, elapsed, size, cli_peak = run(["--dsn", url])
        return lines, elapsed, size, 0.0, cli_peak
    with router(kind, url) as r:
        r.wait_ready()
        assert r.proc is not None
        env["AGENTTIER_API_KEY"] = KEY
        lines, elapsed, size, cli_peak = run(["--url", r.url])
        peak = status_kb(r.proc.pid, "VmHWM")
    return lines, elapsed, size, peak / 1024, cli_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sizes", help="comma-separated sizes (default: rows/10,rows)")
    parser.add_argument("--sides", default="http,cli")
    parser.add_argument("--cli-sizes", help="sizes for the cli sides (default: --sizes)")
    parser.add_argument("--db", default="bench10", help="the server databases' name")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    args = parser.parse_args()
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [args.rows // 10, args.rows])
    cli_sizes = [int(s) for s in args.cli_sizes.split(",")] if args.cli_sizes else sizes
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    DATA_DIR.mkdir(exist_ok=True)
    table, versions = [], []
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        url = fresh_store(kind, "export_10m", args.db)
        print(f"{kind}: loading {args.rows:,} rows", flush=True)
        print(f"  loaded in {fill(kind, url, args.rows, START, STEP):.0f} s", flush=True)
        versions.append(version(url))
        try:
            for side in sides:
                for size in sizes if side == "http" else cli_sizes:
                    since = format_ts(START + STEP * (args.rows - size))
                    load = loadavg()
                    if side == "http":
                        lines, s, size_b, start, peak = over_http(kind, url, since)
                        memory = (f"{start:.0f}", f"{peak:.0f}", "")
                    else:
                        lines, s, size_b, router_peak, cli_peak = through_cli(
                            kind, url, since, remote=side == "cli-url")
                        memory = ("", f"{router_peak:.0f}" if router_peak else "",
                                  f"{cli_peak:.0f}")
                    rows = lines - 1  # the header
                    assert size <= rows <= size + 5, (rows, size)
                    table.append((kind, side, f"{size:,}", f"{s:.1f}", f"{rows / s:,.0f}",
                                  f"{size_b / s / 1e6:.1f}", *memory, load))
                    print("  " + " | ".join(table[-1]), flush=True)
        finally:
            if not args.keep:
                drop_store(kind, url)
    print()
    print(machine(versions))
    print()
    print_table(["backend", "side", "rows", "seconds", "rows/s", "MB/s",
                 "Router RSS after start (MiB)", "Router peak RSS (MiB)", "CLI peak RSS (MiB)",
                 "load avg at start"], table)


if __name__ == "__main__":
    main()
