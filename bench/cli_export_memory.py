"""CLI export memory: peak RSS of ``records audit --all`` by format, at two table sizes.

Issue 9 measured ``--all --format table`` at 195 MB for 200k rows: the table
held every row to lay it out. Every format now streams (a table is laid out
from its first 1,000 rows), so peak memory should not grow with the row count.

Loads ``--rows`` audit events (default 20,000 and 200,000) into SQLite files
under ``bench/.data/`` through ``backend.write_batch`` (reused when they hold
exactly that many rows), each with a 200-character ``details``. Then runs
``python -m agenttier_router.cli records audit --all --limit 1000 --format F``
as a separate process, stdout to /dev/null and stderr a pipe (no progress
line), ``--repeat`` times per (side, format, size), all interleaved, and
reads each child's peak resident set size from ``wait4``. Prints the medians
and the ratio of the large to the small size: 1.0 is flat.

The sides: ``now``, this checkout; with ``--before-src DIR``, also
``before``, the package's ``src`` at an older commit, put first on
``PYTHONPATH`` (make it with ``git archive COMMIT src | tar -x -C DIR``).

Run from the repo root::

    .venv/bin/python bench/cli_export_memory.py
    mkdir -p /tmp/before && git archive e52ee77 src | tar -x -C /tmp/before
    .venv/bin/python bench/cli_export_memory.py --before-src /tmp/before/src
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ACTIONS, DATA_DIR, machine, median, print_table

from agenttier_router.storage import AuditEvent, open_backend

FORMATS = ("table", "csv", "json")


def _load(path: Path, rows: int) -> str:
    """A SQLite file holding exactly ``rows`` audit events; built once, then reused."""
    url = f"sqlite:///{path}"
    if path.exists():
        if _count(path) == rows:
            return url
        path.unlink()
    backend = open_backend(url)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        batch = 5000
        for first in range(0, rows, batch):
            backend.write_batch([
                AuditEvent(actor=f"actor-{n % 1000:04d}", action=ACTIONS[n % len(ACTIONS)],
                           sandbox_id=f"sb-{n % 20000:05d}", namespace=f"team-{n % 50}",
                           details={"command": "x" * 180, "n": n},
                           time=start - timedelta(seconds=n))
                for n in range(first, min(rows, first + batch))
            ])
    finally:
        backend.close()
    return url


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM audit_events").fetchone()[0])
    except sqlite3.Error:
        return -1
    finally:
        conn.close()


def _peak_rss_mb(url: str, fmt: str, src: str | None) -> tuple[float, float]:
    """Run one export with the package from ``src`` (None: this checkout); (peak MB, seconds)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STORAGE_", "COLUMNS", "PYTHONPATH"))}
    if src is not None:
        env["PYTHONPATH"] = src
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttier_router.cli", "records", "audit", "--dsn", url,
         "--all", "--limit", "1000", "--format", fmt],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    assert proc.stderr is not None
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}): {errors.decode()}")
    return usage.ru_maxrss / 1024, elapsed  # ru_maxrss is in KiB on Linux


def main() -> None:
    """Load, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="20000,200000",
                        help="comma-separated table sizes (default 20000,200000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before-src", help="an older checkout's src directory to compare")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    sides: dict[str, str | None] = {"now": None}
    if args.before_src:
        sides["before"] = os.path.abspath(args.before_src)
    formats = [f for f in args.formats.split(",") if f]
    sizes = [int(r) for r in args.rows.split(",")]
    DATA_DIR.mkdir(exist_ok=True)
    urls = {n: _load(DATA_DIR / f"cli_export_{n}.db", n) for n in sizes}

    rss: dict[tuple[str, str, int], list[float]] = {}
    secs: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.repeat):
        for fmt in formats:
            for n in sizes:
                for side, src in sides.items():
                    mb, s = _peak_rss_mb(urls[n], fmt, src)
                    rss.setdefault((side, fmt, n), []).append(mb)
                    secs.setdefault((side, fmt, n), []).append(s)

    print(machine(["SQLite " + sqlite3.sqlite_version]), f"; {args.repeat} runs each, medians")
    headers = ["side", "format", *(f"peak RSS, {n:,} rows (MB)" for n in sizes),
               *(f"time, {n:,} rows (s)" for n in sizes), f"RSS ratio {sizes[-1]:,}/{sizes[0]:,}"]
    rows = []
    for fmt in formats:
        for side in sides:
            peaks = [median(rss[(side, fmt, n)]) for n in sizes]
            rows.append([side, fmt, *(f"{p:.1f}" for p in peaks),
                         *(f"{median(secs[(side, fmt, n)]):.1f}" for n in sizes),
                         f"{peaks[-1] / peaks[0]:.2f}"])
    print_table(headers, rows)


if __name__ == "__main__":
    main()
