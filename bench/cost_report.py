"""Cost reports from the rollups against a raw scan, and the incremental rollup's cost.

Generates, with SQL in the database (``generate_series`` on PostgreSQL, a
recursive CTE on SQLite and MariaDB/MySQL), ``--sandboxes`` sandboxes (default
1,000) sampled every minute for ``--days`` days ending 2026-11-01T00:00Z:
50 namespaces, 200 owners, 10 templates. The secondary indexes are dropped
for the load and created again after it, so that loading does not dominate.
The rollups are then brought up to date to one hour before the end.

Measures, in one run per backend:

- **report**: ``summarize_costs`` over the whole span less 17 minutes at the
  start and 23 at the end (so both edges are mid-hour), grouped by namespace,
  owner, template and sandbox. Two sides, interleaved: *rollups* (as
  shipped: daily and hourly rollups, raw rows at the edges) and *raw* (the
  same call with the rollup watermark cleared, so everything comes from the
  raw rows: what a report without rollups costs). Medians over ``--reps``.
- **incremental rollup**: the watermark is set back one hour and
  ``roll_up(grace=0)`` recomputes that hour (``--sandboxes`` x 60 rows) and
  its day; then the same with the default 6-hour grace. Medians over ``--reps``.

Run from the repo root::

    .venv/bin/python bench/cost_report.py --days 3
    .venv/bin/python bench/cost_report.py --backends sqlite --days 30 --raw-reps 1  # 43.2M rows
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import DATA_DIR, add_backend_flags, machine, median, print_table
from sqlalchemy import create_engine, text

from agenttier_router.storage import CostFilter, SQLBackend, open_backend
from agenttier_router.storage.rollups import DEFAULT_GRACE, roll_up
from agenttier_router.storage.sql.schema import INDEXES

END = datetime(2026, 11, 1, tzinfo=UTC)
_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_MY = "mysql+pymysql://root@127.0.0.1:3306/test"
SCHEMA = "bench_costs"


def fresh_url(kind: str, args: argparse.Namespace) -> str:
    """An empty database of ``kind`` for this benchmark alone."""
    if kind == "sqlite":
        path = DATA_DIR / "cost_report.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.remove(f"{path}{suffix}")
        return f"sqlite:///{path}"
    admin = create_engine(args.pg if kind == "postgresql" else args.my,
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if kind == "postgresql":
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS {SCHEMA}"))
            conn.execute(text(f"CREATE DATABASE {SCHEMA} CHARACTER SET utf8mb4"))
    admin.dispose()
    if kind == "postgresql":
        return f"{args.pg}?options=-csearch_path%3D{SCHEMA}"
    return args.my.rsplit("/", 1)[0] + f"/{SCHEMA}"


def _generate(kind: str, day: int, sandboxes: int, days: int) -> str:
    """One day of snapshots for every sandbox, as one INSERT … SELECT."""
    first = day * 1440
    mod = "%" if kind == "sqlite" else "%%"  # the server drivers' paramstyle is format
    cpu = f"(1 + s {mod} 4) / 60.0"
    cols = ("ts, event_id, sandbox_id, namespace, owner, template, cpu_hours, mem_gb_hours, "
            "estimated_usd")
    values = (f"'sb-' || s, 'ns-' || (s {mod} 50), 'user-' || (s {mod} 200), "
              f"'tpl-' || (s {mod} 10), {cpu}, 2 * {cpu}, "
              f"{cpu} * 0.031611 + 2 * {cpu} * 0.004237")
    start = END - timedelta(days=days)
    if kind == "postgresql":
        return (f"INSERT INTO cost_snapshots ({cols}) SELECT "
                f"to_char(timestamp '{start:%Y-%m-%d}' + m * interval '1 minute', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS') || '.000000Z', "
                "lpad(to_hex(m), 14, '0') || lpad(to_hex(s), 18, '0'), "
                f"{values} FROM generate_series({first}, {first + 1439}) m, "
                f"generate_series(0, {sandboxes - 1}) s")
    if kind == "sqlite":
        return (f"WITH RECURSIVE m(m) AS (SELECT {first} UNION ALL SELECT m + 1 FROM m "
                f"WHERE m < {first + 1439}), sb(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM sb "
                f"WHERE s < {sandboxes - 1}) INSERT INTO cost_snapshots ({cols}) SELECT "
                f"strftime('%Y-%m-%dT%H:%M:%S', '{start:%Y-%m-%d}', '+' || m || ' minutes') "
                "|| '.000000Z', printf('%014x%018x', m, s), "
                f"{values} FROM m, sb")
    values = values.replace("'sb-' || s", "CONCAT('sb-', s)").replace(
        f"'ns-' || (s {mod} 50)", f"CONCAT('ns-', s {mod} 50)").replace(
        f"'user-' || (s {mod} 200)", f"CONCAT('user-', s {mod} 200)").replace(
        f"'tpl-' || (s {mod} 10)", f"CONCAT('tpl-', s {mod} 10)")
    return (f"INSERT INTO cost_snapshots ({cols}) WITH RECURSIVE m(m) AS (SELECT {first} "
            f"UNION ALL SELECT m + 1 FROM m WHERE m < {first + 1439}), sb(s) AS (SELECT 0 "
            f"UNION ALL SELECT s + 1 FROM sb WHERE s < {sandboxes - 1}) SELECT "
            f"DATE_FORMAT(TIMESTAMP '{start:%Y-%m-%d} 00:00:00' + INTERVAL m MINUTE, "
            "'%%Y-%%m-%%dT%%H:%%i:%%s.000000Z'), "
            "LOWER(CONCAT(LPAD(HEX(m), 14, '0'), LPAD(HEX(s), 18, '0'))), "
            f"{values} FROM m, sb")


def load(kind: str, url: str, sandboxes: int, days: int) -> float:
    """Create the schema, load the rows, rebuild the indexes; return the seconds it took."""
    backend = open_backend(url)
    assert isinstance(backend, SQLBackend)
    backend.upgrade()
    backend.close()
    began = time.perf_counter()
    engine = create_engine(url)
    indexes = [(f"ix_cost_snapshots_{cols[0]}", cols) for cols in INDEXES["cost_snapshots"]]
    indexes.append(("ux_cost_snapshots_event_id", ("event_id",)))
    with engine.begin() as conn:
        for name, _ in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name} ON cost_snapshots" if kind == "mysql"
                                 else f"DROP INDEX {name}")
    for day in range(days):
        with engine.begin() as conn:
            if kind == "mysql":  # MariaDB's name; MySQL 8 calls it cte_max_recursion_depth
                variable = ("max_recursive_iterations" if "MariaDB" in str(
                    conn.exec_driver_sql("SELECT version()").scalar()) else
                    "cte_max_recursion_depth")
                conn.exec_driver_sql(f"SET SESSION {variable} = 100000")
            conn.exec_driver_sql(_generate(kind, day, sandboxes, days))
        print(f"  {kind}: loaded day {day + 1}/{days}", flush=True)
    with engine.begin() as conn:
        for name, cols in indexes:
            unique = "UNIQUE " if name.startswith("ux_") else ""
            conn.exec_driver_sql(f"CREATE {unique}INDEX {name} ON cost_snapshots "
                                 f"({', '.join(cols)})")
        if kind == "postgresql":
            conn.exec_driver_sql("ANALYZE cost_snapshots")
        elif kind == "mysql":
            conn.exec_driver_sql("ANALYZE TABLE cost_snapshots")
    engine.dispose()
    return time.perf_counter() - began


def set_watermark(url: str, value: datetime | None) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE agenttier_maintenance SET value = :v "
                          "WHERE name = 'rollup_watermark'"),
                     {"v": value.strftime("%Y-%m-%dT%H:%M:%S.000000Z") if value else None})
    engine.dispose()


def timed(call: Any, *args: Any, **kwargs: Any) -> float:
    began = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backend_flags(parser, "cost_report.db")
    parser.add_argument("--pg", default=_PG, help="PostgreSQL server (a schema is made in it)")
    parser.add_argument("--my", default=_MY, help="MySQL server (a database is made in it)")
    parser.add_argument("--sandboxes", type=int, default=1000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--raw-reps", type=int, default=None,
                        help="reps of the raw scan (default: --reps); fewer for a big table")
    args = parser.parse_args()
    DATA_DIR.mkdir(exist_ok=True)
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    reports, rollups, versions = [], [], []
    rows = args.sandboxes * args.days * 1440
    for kind in kinds:
        url = fresh_url(kind, args)
        print(f"{kind}: loading {rows:,} rows", flush=True)
        load_s = load(kind, url, args.sandboxes, args.days)
        backend = open_backend(url)
        assert isinstance(backend, SQLBackend)
        with backend.connection("version") as conn:
            versions.append(f"{kind} " + str(conn.exec_driver_sql(
                "SELECT sqlite_version()" if kind == "sqlite" else "SELECT version()"
            ).scalar()).split(" on ")[0])
        first = timed(roll_up, backend, now=END - timedelta(hours=1))
        print(f"  {kind}: load {load_s:.0f} s, first full rollup {first:.1f} s", flush=True)
        window = CostFilter(since=END - timedelta(days=args.days) + timedelta(minutes=17),
                            until=END - timedelta(minutes=23))
        mark = END - timedelta(hours=1)
        for group in ("namespace", "owner", "template", "sandbox"):
            with_rollups, raw = [], []
            raw_reps = args.reps if args.raw_reps is None else args.raw_reps
            for rep in range(args.reps):
                set_watermark(url, mark)
                with_rollups.append(timed(backend.summarize_costs, window, group))
                if rep < raw_reps:
                    set_watermark(url, None)
                    raw.append(timed(backend.summarize_costs, window, group))
            set_watermark(url, mark)
            a, b = median(with_rollups), median(raw)
            reports.append((kind, f"{rows:,}", group, f"{a * 1000:.0f}", f"{b * 1000:.0f}",
                            f"{b / a:.0f}x"))
            print("  " + " | ".join(reports[-1]), flush=True)
        for grace in (timedelta(0), DEFAULT_GRACE):
            samples = []
            for _ in range(args.reps):
                set_watermark(url, END - timedelta(hours=1))
                samples.append(timed(roll_up, backend, now=END, grace=grace))
            hours = 1 + int(grace / timedelta(hours=1))
            rollups.append((kind, f"{hours} ({hours * args.sandboxes * 60:,} rows)",
                            f"{median(samples) * 1000:.0f}", f"{max(samples) * 1000:.0f}"))
            print("  " + " | ".join(rollups[-1]), flush=True)
        backend.close()
    print()
    print(machine(versions))
    print()
    print_table(["backend", "raw rows", "group by", "rollups ms (median)", "raw scan ms (median)",
                 "raw / rollups"], reports)
    print()
    print_table(["backend", "hours recomputed", "rollup ms (median)", "max ms"], rollups)


if __name__ == "__main__":
    main()
