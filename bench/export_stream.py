"""Export throughput and the Router's peak memory: ``GET /records/audit/export?format=csv``.

For each size in ``--sizes`` (default 100,000 and 1,000,000 rows), fills a
fresh store's ``audit_events`` with SQL (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL; 1,000 actors, 20,000 sandboxes, a small
JSON ``details``), starts a Router on it in its own process
(``serve --dev-auth``, as ``router_common.Router``), and streams the whole
export as CSV through httpx, counting rows. Reports rows/s and, from
``/proc/<pid>/status``, the Router's resident memory after start-up (VmRSS)
and its peak over the whole export (VmHWM). If the export streams in
constant memory, the peak stays flat as the size grows tenfold.

Run from the repo root (Linux only, for ``/proc``)::

    .venv/bin/python bench/export_stream.py
    .venv/bin/python bench/export_stream.py --backends sqlite --sizes 100000,1000000,3000000
"""

from __future__ import annotations

import argparse
import os
import time

import httpx
from _common import DATA_DIR, machine, print_table
from router_common import Router
from sqlalchemy import create_engine, text

from agenttier_router.storage import SQLBackend, open_backend

_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = "bench_export"
T0 = "2026-10-01"


def fresh(kind: str, pg: str) -> str:
    if kind == "sqlite":
        path = DATA_DIR / "export_stream.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.remove(f"{path}{suffix}")
        return f"sqlite:///{path}"
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    admin.dispose()
    return f"{pg}?options=-csearch_path%3D{SCHEMA}"


def fill(kind: str, url: str, rows: int) -> None:
    backend = open_backend(url)
    assert isinstance(backend, SQLBackend)
    backend.upgrade()
    backend.close()
    cols = "ts, event_id, actor, action, resource, sandbox_id, namespace, outcome, details"
    if kind == "sqlite":
        sql = (f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < "
               f"{rows - 1}) INSERT INTO audit_events ({cols}) SELECT "
               f"strftime('%Y-%m-%dT%H:%M:%S', '{T0}', '+' || (i / 10) || ' seconds') || "
               "'.' || printf('%06d', (i % 10) * 100000) || 'Z', printf('%032x', i), "
               "'actor-' || (i % 1000), 'exec', 'sandbox', 'sb-' || (i % 20000), "
               "'ns-' || (i % 50), 'success', '{\"email\":\"a@example.com\",\"exitCode\":0}' "
               "FROM n")
    else:
        sql = (f"INSERT INTO audit_events ({cols}) SELECT "
               f"to_char(timestamp '{T0}' + (i / 10) * interval '1 second', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS') || '.' || lpad(((i %% 10) * 100000)::text, 6, '0') "
               "|| 'Z', lpad(to_hex(i), 32, '0'), 'actor-' || (i %% 1000), 'exec', 'sandbox', "
               "'sb-' || (i %% 20000), 'ns-' || (i %% 50), 'success', "
               "'{\"email\":\"a@example.com\",\"exitCode\":0}' "
               f"FROM generate_series(0, {rows - 1}) i")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
        if kind == "postgresql":
            conn.exec_driver_sql("ANALYZE audit_events")
    engine.dispose()


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--pg", default=_PG)
    args = parser.parse_args()
    DATA_DIR.mkdir(exist_ok=True)
    table, versions = [], []
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        for size in [int(s) for s in args.sizes.split(",")]:
            url = fresh(kind, args.pg)
            fill(kind, url, size)
            with Router(f"export-{kind}", url) as router:
                router.wait_ready()
                assert router.proc is not None
                pid = router.proc.pid
                httpx.get(router.url + "/api/v1/records/audit/export",
                          params={"format": "csv", "actor": "none"}, timeout=60)
                start_rss = status_kb(pid, "VmRSS")
                lines, size_bytes = 0, 0
                began = time.perf_counter()
                with httpx.stream("GET", router.url + "/api/v1/records/audit/export",
                                  params={"format": "csv"}, timeout=600) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        lines += chunk.count(b"\n")
                        size_bytes += len(chunk)
                elapsed = time.perf_counter() - began
                peak = status_kb(pid, "VmHWM")
            rows = lines - 1  # the header
            assert size <= rows <= size + 2, (rows, size)  # and the exports' own audit events
            table.append((kind, f"{size:,}", f"{elapsed:.1f}", f"{rows / elapsed:,.0f}",
                          f"{size_bytes / elapsed / 1e6:.1f}", f"{start_rss / 1024:.0f}",
                          f"{peak / 1024:.0f}"))
            print("  " + " | ".join(table[-1]), flush=True)
        versions.append(kind)
    print()
    print(machine(versions))
    print()
    print_table(["backend", "rows", "seconds", "rows/s", "MB/s", "RSS after start (MiB)",
                 "peak RSS (MiB)"], table)


if __name__ == "__main__":
    main()
