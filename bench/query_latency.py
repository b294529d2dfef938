"""Query latency: the first page of a filtered audit listing at 1M rows, with and without indexes.

Loads ``--rows`` audit events (default 1,000,000) into each backend's
``audit_events`` through ``backend.write_batch`` in large batches, unless the
table already holds exactly that many rows (then it is reused). The data:
90 days ending 2026-11-01T00:00Z, time-ordered as a Router writes it; 1,000
actors with Zipf(1) activity (``actor-0001`` is the busiest, about 13% of all
events; ``actor-0100`` has about 100 events a week; ``actor-1000`` about 10);
20,000 sandboxes and 10 actions, uniform.

It then times, warm, newest first, limit 100, the first page of: one actor
(busiest, typical, rarest), one sandbox, and no filter, each over the last 7
days; then later pages through a cursor: page 2 (the first page's
``next_cursor``), and deep pages (the cursor ``encode_cursor`` makes for the
row just before them, found with OFFSET); then two combined filters (actor
and action, actor and outcome) over all 90 days. The sides:

- lib: ``backend.list_audit_events(AuditFilter(...))``, everything a caller
  pays: SQLAlchemy, the pool, the driver, the round trip, rows made into records;
- raw: the same SQL the library sends, on a plain autocommit driver
  connection (one statement, one round trip), fetchall: the floor;
- Go: the Go Router's layout (``go_ddl()`` from migration 0001, no index but
  the primary key), holding a copy of the same rows, queried with the same
  WHERE and ``ORDER BY ts DESC LIMIT 100``: a full scan.

Each round runs every query ``--reps`` times per side, the sides interleaved,
except the Go side, once per round; the table shows medians and p95s over all
rounds, in milliseconds.

After loading, PostgreSQL gets ``VACUUM ANALYZE`` and MySQL ``ANALYZE TABLE``
(what their background statistics do by themselves, done now so the numbers
do not depend on timing). SQLite gets only what the library does itself: its
fixed planner statistics, written when a store is opened.
Run from the repo root (the first load takes a few minutes; later runs reuse it)::

    .venv/bin/python bench/query_latency.py
    .venv/bin/python bench/query_latency.py --backends sqlite --explain
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import (
    add_backend_flags,
    backend_urls,
    machine,
    median,
    p95,
    print_table,
    raw_connect,
    server_version,
)

from agenttier_router.storage import AuditEvent, AuditFilter, open_backend
from agenttier_router.storage._time import format_ts
from agenttier_router.storage.filters import decode_cursor, encode_cursor

go_ddl = importlib.import_module(
    "agenttier_router.storage.migrations.versions.0001_go_baseline"
).go_ddl

END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
ACTORS = [f"actor-{rank:04d}" for rank in range(1, 1001)]
CUM_WEIGHTS = list(itertools.accumulate(1 / rank for rank in range(1, 1001)))
ACTIONS = ("create", "delete", "exec", "get", "list", "logs", "port-forward", "pause",
           "resume", "snapshot")
GO_COLUMNS = "id, ts, actor, action, resource, sandbox_id, details"

# name -> (filters, window in days, rows before the page)
Query = tuple[dict[str, str], int, int]
QUERIES: dict[str, Query] = {
    "actor-0001 (busiest) + 7d": ({"actor": "actor-0001"}, 7, 0),
    "actor-0100 (typical) + 7d": ({"actor": "actor-0100"}, 7, 0),
    "actor-1000 (rarest) + 7d": ({"actor": "actor-1000"}, 7, 0),
    "sandbox + 7d": ({"sandbox_id": "sb-00042"}, 7, 0),
    "7d window only": ({}, 7, 0),
    "actor-0001 + 7d, page 2": ({"actor": "actor-0001"}, 7, 100),
    "7d window only, page 2": ({}, 7, 100),
    "7d window only, page 501": ({}, 7, 50_000),
    "90d window only, page 9001": ({}, 90, 900_000),
    "actor-1000 + action + 90d": ({"actor": "actor-1000", "action": "exec"}, 90, 0),
    "actor-0100 + outcome + 90d": ({"actor": "actor-0100", "outcome": "denied"}, 90, 0),
}
SIDES = ("lib", "raw", "go")


def generate(rows: int, batch: int, seed: int = 1) -> Any:
    """Yield lists of ``batch`` audit events, oldest first, evenly spread over SPAN."""
    rng = random.Random(seed)
    step = SPAN / rows
    start = END - SPAN
    for first in range(0, rows, batch):
        n = min(batch, rows - first)
        actors = rng.choices(ACTORS, cum_weights=CUM_WEIGHTS, k=n)
        yield [
            AuditEvent(
                actor=actors[k],
                action=rng.choice(ACTIONS),
                sandbox_id=f"sb-{rng.randrange(20000):05d}",
                namespace=f"team-{rng.randrange(20):02d}",
                outcome="success" if rng.random() < 0.95 else "denied",
                details='{"exitCode":0,"command":"python train.py"}',
                time=start + step * (first + k + rng.random()),
            )
            for k in range(n)
        ]


def scalar(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    cur.execute(sql)
    value = cur.fetchone()[0]
    cur.close()
    return value


def execute(kind: str, conn: Any, *statements: str) -> None:
    cur = conn.cursor()
    for sql in statements:
        cur.execute(sql)
        if kind == "mysql":
            cur.fetchall()  # ANALYZE TABLE returns a result set
    cur.close()
    if kind != "sqlite":
        conn.commit()


def load(kind: str, url: str, conn: Any, rows: int, batch: int) -> str:
    """Fill audit_events and go_audit_events with ``rows`` rows unless they already hold them."""
    backend = open_backend(url)
    backend.upgrade()  # type: ignore[attr-defined]
    note = "reused"
    if scalar(conn, "SELECT count(*) FROM audit_events") != rows:
        execute(kind, conn, "DELETE FROM audit_events" if kind == "sqlite" else
                "TRUNCATE TABLE audit_events")
        started = time.perf_counter()
        for records in generate(rows, batch):
            backend.write_batch(records)
        elapsed = time.perf_counter() - started
        note = f"loaded in {elapsed:.0f} s ({rows / elapsed:,.0f} records/s, batches of {batch:,})"
        print(f"  {kind}: {note}", flush=True)
    backend.close()
    has_go = scalar(conn, {
        "sqlite": "SELECT count(*) FROM sqlite_master WHERE name = 'go_audit_events'",
        "postgresql": "SELECT count(*) FROM pg_tables WHERE tablename = 'go_audit_events'",
        "mysql": "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'go_audit_events'",
    }[kind])
    stale = note != "reused" or not has_go
    if stale or scalar(conn, "SELECT count(*) FROM go_audit_events") != rows:
        ddl = next(s for s in go_ddl(kind) if " audit_events (" in s)
        execute(kind, conn, "DROP TABLE IF EXISTS go_audit_events",
                ddl.replace(" audit_events (", " go_audit_events ("),
                f"INSERT INTO go_audit_events ({GO_COLUMNS}) "
                f"SELECT {GO_COLUMNS} FROM audit_events")
        note += "; Go copy rebuilt"
    if kind == "postgresql":
        execute(kind, conn, "VACUUM ANALYZE audit_events", "VACUUM ANALYZE go_audit_events")
    elif kind == "mysql":
        execute(kind, conn, "ANALYZE TABLE audit_events", "ANALYZE TABLE go_audit_events")
    return note


def raw_sql(table: str, columns: list[str], cursor: bool, until: bool, order: str) -> str:
    """The SQL for one page, with ``%s`` placeholders: filters, window, keyset, order, limit.

    With a cursor the library sends only the keyset's upper bound on ``ts``
    (``until=False`` here), as ``SQLBackend._where`` does.
    """
    where = [f"{column} = %s" for column in columns]
    where += ["ts >= %s", "ts < %s"] if until else ["ts >= %s"]
    if cursor:
        where.append("ts <= %s AND (ts < %s OR id < %s)")
    limit = 101 if table == "audit_events" else 100
    return f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {limit}"


def sides(kind: str, backend: Any, conn: Any, query: Query) -> Any:
    """Return (rows on page, {side: zero-argument query function}, (SQL, params)) for one query.

    Page 2 uses the first page's ``next_cursor``; a deeper page uses the cursor
    ``encode_cursor`` makes for the row just before it, found with OFFSET.
    """
    filters, days, skip = query
    columns, values = list(filters), list(filters.values())
    since = END - timedelta(days=days)
    window = [format_ts(since), format_ts(END)]
    mark = "?" if kind == "sqlite" else "%s"
    cur = conn.cursor()
    cursor = None
    if skip == 100:
        first = AuditFilter(since=since, until=END, **filters)
        cursor = backend.list_audit_events(first).next_cursor
    elif skip:
        cur.execute(raw_sql("audit_events", columns, False, True, "ts DESC, id DESC")
                    .replace("LIMIT 101", f"LIMIT 1 OFFSET {skip - 1}")
                    .replace("%s", mark), values + window)
        cursor = encode_cursor(*cur.fetchone()[1::-1])
    keyset: list[Any] = []
    if cursor:
        ts, row_id = decode_cursor(cursor)
        keyset = [ts, ts, row_id]
    ours = raw_sql("audit_events", columns, bool(cursor), not cursor, "ts DESC, id DESC")
    go = raw_sql("go_audit_events", columns, bool(cursor), True, "ts DESC")
    params = values + window + keyset
    ours_params = values + (window[:1] if cursor else window) + keyset

    def lib() -> Any:
        return backend.list_audit_events(
            AuditFilter(since=since, until=END, cursor=cursor, **filters)
        )

    def raw(sql: str, params: list[Any]) -> Any:
        cur.execute(sql.replace("%s", mark), params)
        return cur.fetchall()

    run = {"lib": lib, "raw": lambda: raw(ours, ours_params)}
    if set(columns) <= set(GO_COLUMNS.split(", ")):  # the Go table has no outcome column
        run["go"] = lambda: raw(go, params)
    return len(lib().items), run, (ours.replace("%s", mark), ours_params)


def explain(kind: str, conn: Any, sql: str, params: list[Any]) -> str:
    prefix = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN (ANALYZE, BUFFERS) ",
              "mysql": "EXPLAIN "}[kind]
    cur = conn.cursor()
    cur.execute(prefix + sql, params)
    lines = [" | ".join(str(c) for c in row) for row in cur.fetchall()]
    if kind != "sqlite":
        conn.rollback()
    return "\n      ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=40, help="lib/raw runs per query per round")
    parser.add_argument("--load-batch", type=int, default=20_000)
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    add_backend_flags(parser, "query_latency.db")
    args = parser.parse_args()

    versions, notes, table, plans = [], [], [], []
    for kind, url in backend_urls(args).items():
        conn = raw_connect(kind, url)
        if kind == "postgresql":
            conn.autocommit = True  # the raw side is one statement, one round trip
        elif kind == "mysql":
            conn.autocommit(True)
        versions.append(server_version(kind, conn))
        note = load(kind, url, conn, args.rows, args.load_batch)
        if kind == "sqlite":
            stats = scalar(conn, "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            note += "; sqlite_stat1: " + ("present" if stats else "none")
        notes.append(f"{kind}: {note}")
        backend = open_backend(url)
        backend.upgrade()  # type: ignore[attr-defined]  # an SQLBackend
        if kind == "sqlite":  # reopen, so the raw side plans with the statistics just written
            conn.close()
            conn = raw_connect(kind, url)
        prepared = {name: sides(kind, backend, conn, q) for name, q in QUERIES.items()}
        samples: dict[tuple[str, str], list[float]] = {
            (name, side): [] for name in QUERIES for side in SIDES
        }
        for _ in range(args.rounds):
            for name, (_, run, _) in prepared.items():
                for rep in range(args.reps):
                    for side in run:
                        if side == "go" and rep:
                            continue  # a full scan: once per round is enough
                        started = time.perf_counter()
                        run[side]()
                        samples[name, side].append((time.perf_counter() - started) * 1000)
            print(f"  {kind}: round done", flush=True)
        for name, (shown, _, (sql, params)) in prepared.items():
            lib, raw, go = (samples[name, s] for s in SIDES)
            table.append([
                kind, name, shown, f"{median(lib):.2f}", f"{p95(lib):.2f}",
                f"{median(raw):.2f}", f"{p95(raw):.2f}",
                f"{median(go):,.0f}" if go else "-",
                f"{median(go) / median(lib):,.0f}x" if go else "-",
            ])
            if args.explain:
                plans.append(f"  {kind} / {name}:\n      {explain(kind, conn, sql, params)}")
        backend.close()
        conn.close()

    print(f"\nmachine: {machine(versions)}")
    print("\n".join(notes))
    print(f"{args.rows:,} rows; {args.rounds} rounds x {args.reps} reps (Go: 1 per round); "
          "milliseconds\n")
    print_table(
        ["backend", "query", "rows", "lib median", "lib p95", "raw median", "raw p95",
         "Go no-index", "Go/lib"],
        table,
    )
    if plans:
        print("\nplans (our schema, the SQL the library sends):")
        print("\n".join(plans))


if __name__ == "__main__":
    main()
