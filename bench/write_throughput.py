"""Write throughput: ``backend.write_batch`` against the raw driver's batched insert.

For each backend, writes ``--rows`` audit events in batches of each
``--batch-sizes`` size, one transaction per batch, into the library's own
``audit_events`` table (all its indexes, the unique ``event_id`` index
included), truncated before every measurement. The sides:

- ours: ``backend.write_batch(records)``. The timed region includes turning
  records into safe row tuples (NUL removal, length caps, timestamp format),
  the pool checkout (with its pre-ping on PostgreSQL and MySQL), BEGIN, the
  insert and COMMIT: everything the library does per batch.
- raw: a plain driver connection, already open, with the same row tuples built
  before the timer starts; per batch BEGIN, ``executemany`` of the idempotent
  insert, COMMIT. SQLite: ``INSERT … ON CONFLICT(event_id) DO NOTHING`` with
  the library's pragmas (WAL, synchronous=FULL); PostgreSQL (psycopg 3):
  ``INSERT … ON CONFLICT (event_id) DO NOTHING``; MySQL (PyMySQL):
  ``INSERT … ON DUPLICATE KEY UPDATE event_id=event_id``.
- raw COPY (PostgreSQL only): ``COPY audit_events FROM STDIN`` per batch. Not
  idempotent, so not a drop-in alternative; shown as the ceiling.
- raw unnest (PostgreSQL only): the statement the library sends (one
  ``INSERT … SELECT FROM unnest(%s::text[], …) ON CONFLICT DO NOTHING`` per
  batch, the columns passed as arrays), on the raw connection: it separates the
  cost of that strategy from the rest of the library.
- raw COPY+merge (PostgreSQL only): COPY into a session temp table, then
  ``INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING``: the idempotent way to
  get most of COPY's speed, measured as a candidate for the library.

A separate line reports the records-to-rows conversion alone (``group_rows``),
the part of ours that the raw sides do not pay.

Records are audit events only (the record type that dominates), built before
any timing. Each round runs every side once per batch size, in a rotated
order, and the table reports medians over rounds. It empties ``audit_events``
in ``agenttier_bench``, so ``query_latency.py`` reloads its 1M rows on its next
run (about 35 s per server). Run from the repo root::

    .venv/bin/python bench/write_throughput.py                 # all backends
    .venv/bin/python bench/write_throughput.py --backends sqlite --rounds 3
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import (
    ACTIONS,
    RESET,
    add_backend_flags,
    backend_urls,
    machine,
    median,
    print_table,
    raw_connect,
    server_version,
)

from agenttier_router.storage import AuditEvent, open_backend
from agenttier_router.storage.sql.rows import group_rows
from agenttier_router.storage.sql.schema import WRITE_COLUMNS

COLUMNS = WRITE_COLUMNS["audit_events"]
_COLS = ", ".join(COLUMNS)
_QS = ", ".join("?" * len(COLUMNS))
_PS = ", ".join(["%s"] * len(COLUMNS))
RAW_INSERT = {
    "sqlite": f"INSERT INTO audit_events ({_COLS}) VALUES ({_QS}) "
    "ON CONFLICT(event_id) DO NOTHING",
    "postgresql": f"INSERT INTO audit_events ({_COLS}) VALUES ({_PS}) "
    "ON CONFLICT (event_id) DO NOTHING",
    "mysql": f"INSERT INTO audit_events ({_COLS}) VALUES ({_PS}) "
    "ON DUPLICATE KEY UPDATE event_id=event_id",
}
STAGE = (
    f"CREATE TEMP TABLE stage_audit ({', '.join(c + ' text' for c in COLUMNS)}) "
    "ON COMMIT DELETE ROWS"
)
UNNEST = (  # as sql/postgres.py builds it; every audit column is text
    f"INSERT INTO audit_events ({_COLS}) SELECT * FROM unnest("
    + ", ".join(["%s::text[]"] * len(COLUMNS))
    + ") ON CONFLICT (event_id) DO NOTHING"
)
MERGE = (
    f"INSERT INTO audit_events ({_COLS}) SELECT {_COLS} FROM stage_audit "
    "ON CONFLICT (event_id) DO NOTHING"
)


def make_records(n: int, seed: int = 7) -> list[AuditEvent]:
    """``n`` realistic audit events, one microsecond-distinct time each, oldest first."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        AuditEvent(
            actor=f"user-{rng.randrange(1000):04d}@example.com",
            action=rng.choice(ACTIONS),
            sandbox_id=f"sb-{rng.randrange(20000):05d}",
            namespace=f"team-{rng.randrange(20):02d}",
            outcome="success" if rng.random() < 0.95 else "denied",
            details={"exitCode": 0, "command": "python train.py", "durationMs": i % 5000},
            time=start + timedelta(microseconds=i * 37),
        )
        for i in range(n)
    ]


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def sides(kind: str, backend: Any, conn: Any) -> dict[str, Callable[[list[Any], list[Any]], None]]:
    """{side name: write(record batches, tuple batches)} for one backend."""
    backend.upgrade()

    def ours(record_batches: list[Any], _: list[Any]) -> None:
        for batch in record_batches:
            backend.write_batch(batch)

    def raw(_: list[Any], row_batches: list[Any]) -> None:
        cur = conn.cursor()
        for rows in row_batches:
            if kind == "sqlite":  # explicit, as the library does (isolation_level=None)
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany(RAW_INSERT[kind], rows)
                cur.execute("COMMIT")
            else:
                cur.executemany(RAW_INSERT[kind], rows)
                conn.commit()

    def unnest(_: list[Any], row_batches: list[Any]) -> None:
        cur = conn.cursor()
        for rows in row_batches:
            cur.execute(UNNEST, [list(column) for column in zip(*rows, strict=True)])
            conn.commit()

    def copy(_: list[Any], row_batches: list[Any], table: str = "audit_events") -> None:
        cur = conn.cursor()
        for rows in row_batches:
            with cur.copy(f"COPY {table} ({_COLS}) FROM STDIN") as pipe:
                for row in rows:
                    pipe.write_row(row)
            if table != "audit_events":
                cur.execute(MERGE)
            conn.commit()

    found = {"ours write_batch": ours, "raw executemany": raw}
    if kind == "postgresql":
        conn.execute(STAGE)
        found["raw unnest"] = unnest
        found["raw COPY"] = copy
        found["raw COPY+merge"] = lambda r, rows: copy(r, rows, table="stage_audit")
    return found


def reset(kind: str, conn: Any) -> None:
    cur = conn.cursor()
    for statement in RESET[kind]:
        cur.execute(statement)
    if kind != "sqlite":
        conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="records per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-sizes", default="500,5000")
    add_backend_flags(parser, "write_throughput.db")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    records = make_records(args.rows)
    rows = group_rows(records)["audit_events"]  # the raw side's tuples, built untimed
    convert = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        group_rows(records)
        convert.append((time.perf_counter() - started) / len(records))
    versions, table = [], []
    for kind, url in backend_urls(args).items():
        conn = raw_connect(kind, url)
        versions.append(server_version(kind, conn))
        backend = open_backend(url)
        writers = sides(kind, backend, conn)
        for size in sizes:
            record_batches, row_batches = chunks(records, size), chunks(rows, size)
            rates: dict[str, list[float]] = {name: [] for name in writers}
            for write in writers.values():  # warm-up: connections, caches, statements
                reset(kind, conn)
                write(record_batches[:1], row_batches[:1])
            for rnd in range(args.rounds):
                names = list(writers)
                names = names[rnd % len(names) :] + names[: rnd % len(names)]
                for name in names:
                    reset(kind, conn)
                    started = time.perf_counter()
                    writers[name](record_batches, row_batches)
                    rates[name].append(args.rows / (time.perf_counter() - started))
            ours = median(rates["ours write_batch"])
            for name, samples in rates.items():
                m = median(samples)
                table.append([
                    kind, size, name, f"{m:,.0f}", f"{min(samples):,.0f}-{max(samples):,.0f}",
                    "—" if name.startswith("ours") else f"{ours / m:.2f}",
                ])
            print(f"  {kind} batch={size}: done", flush=True)
        reset(kind, conn)
        backend.close()
        conn.close()

    print(f"\nmachine: {machine(versions)}")
    print(f"{args.rows:,} audit events per measurement, {args.rounds} rounds, medians")
    print(f"records -> rows conversion alone: {median(convert) * 1e6:.2f} us/record "
          f"({1 / median(convert):,.0f} records/s)\n")
    print_table(
        ["backend", "batch", "side", "records/s", "range", "ours/this"], table
    )


if __name__ == "__main__":
    main()
