"""Sustained ingest: records/s through the Recorder against the raw driver's batched insert.

Per backend, ``--rows`` realistic audit events, built before any timing,
into the library's own ``audit_events`` (every index, the unique
``event_id`` one included), emptied before each measurement. Sides:

- recorder: ``recorder.record(e)`` for every event, then ``recorder.flush()``;
  timed from the first ``record`` until ``flush`` returns True, with the
  default batching (1000 records or 0.2 s) and a queue big enough for the
  whole run (so nothing is dropped: this measures the write path, not a
  producer outrunning it). Includes turning records into rows, the pool,
  BEGIN/COMMIT, the writer thread and the deadline thread.
- raw executemany: a plain driver connection, already open, row tuples built
  before the timer; per 1000 rows BEGIN, ``executemany`` of the idempotent
  insert, COMMIT. (PostgreSQL: psycopg 3's executemany, which pipelines.)
- PostgreSQL only, to locate the gap: raw unnest (the backend's own
  ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING``, on a plain
  connection) and raw COPY+merge (``COPY`` into a temporary staging table,
  then ``INSERT … SELECT … ON CONFLICT DO NOTHING``: idempotent too).

Each round runs both sides in a rotated order; the table gives medians over
rounds and the ratio recorder / raw. Targets (issue 3): at least 0.7 on SQLite
and MySQL, at least 1.5 on PostgreSQL. Run from the repo root::

    .venv/bin/python bench/recorder_ingest.py
    .venv/bin/python bench/recorder_ingest.py --backends sqlite --rows 50000 --rounds 3
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from prometheus_client import CollectorRegistry
from recorder_common import make_records, median, prepare, raw_connect, reset

from agenttier_router.storage import Recorder, RecorderConfig, open_backend
from agenttier_router.storage.sql.rows import group_rows
from agenttier_router.storage.sql.schema import WRITE_COLUMNS

COLUMNS = ", ".join(WRITE_COLUMNS["audit_events"])
N = len(WRITE_COLUMNS["audit_events"])
RAW_INSERT = {
    "sqlite": f"INSERT INTO audit_events ({COLUMNS}) VALUES ({', '.join('?' * N)}) "
    "ON CONFLICT (event_id) DO NOTHING",
    "postgresql": f"INSERT INTO audit_events ({COLUMNS}) VALUES ({', '.join(['%s'] * N)}) "
    "ON CONFLICT (event_id) DO NOTHING",
    "mysql": f"INSERT INTO audit_events ({COLUMNS}) VALUES ({', '.join(['%s'] * N)}) "
    "ON DUPLICATE KEY UPDATE event_id = event_id",
}
BATCH = 1000


def through_recorder(url: str, records: list[Any]) -> float:
    backend = open_backend(url)
    backend.upgrade()  # type: ignore[attr-defined]
    recorder = Recorder(backend, config=RecorderConfig(queue_size=len(records) + 1),
                        registry=CollectorRegistry())
    started = time.perf_counter()
    for r in records:
        recorder.record(r)
    assert recorder.flush(600), "flush timed out"
    elapsed = time.perf_counter() - started
    assert recorder.metrics.dropped_total() == 0
    recorder.close(30)
    backend.close()
    return len(records) / elapsed


def raw_batched(kind: str, url: str, rows: list[Any]) -> float:
    conn = raw_connect(kind, url)
    cur = conn.cursor()
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        if kind == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
        cur.executemany(RAW_INSERT[kind], rows[i:i + BATCH])
        if kind == "sqlite":
            cur.execute("COMMIT")
        else:
            conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def raw_copy_merge(url: str, rows: list[Any]) -> float:
    """COPY into a temp stage, then INSERT … ON CONFLICT: what the library does, on a raw link."""
    conn = raw_connect("postgresql", url)
    stage = ", ".join(c + " text" for c in WRITE_COLUMNS["audit_events"])
    conn.execute(f"CREATE TEMP TABLE stage_audit ({stage}) ON COMMIT DELETE ROWS")
    conn.commit()
    cur = conn.cursor()
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with cur.copy(f"COPY stage_audit ({COLUMNS}) FROM STDIN") as pipe:
            for row in rows[i:i + BATCH]:
                pipe.write_row(row)
        cur.execute(f"INSERT INTO audit_events ({COLUMNS}) SELECT {COLUMNS} FROM stage_audit "
                    "ON CONFLICT (event_id) DO NOTHING")
        conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    args = parser.parse_args()

    records = make_records(args.rows)
    rows = group_rows(records)["audit_events"]
    table = []
    extra: list[tuple[str, str, float]] = []
    for kind in args.backends.split(","):
        url = prepare(kind)
        sides = {
            "recorder": lambda url=url: through_recorder(url, records),
            "raw executemany": lambda kind=kind, url=url: raw_batched(kind, url, rows),
        }
        if kind == "postgresql":
            sides["raw COPY+merge"] = lambda url=url: raw_copy_merge(url, rows)
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for rnd in range(args.rounds):
            names = list(sides)[rnd % len(sides):] + list(sides)[: rnd % len(sides)]
            for name in names:
                reset(kind, url)
                rates[name].append(sides[name]())
            print(f"  {kind} round {rnd + 1}: "
                  + ", ".join(f"{n} {rates[n][-1]:,.0f}/s" for n in sides), flush=True)
        reset(kind, url)
        ours, raw = median(rates["recorder"]), median(rates["raw executemany"])
        table.append((kind, ours, raw, min(rates["recorder"]), max(rates["recorder"])))
        extra.extend((kind, name, median(v)) for name, v in rates.items()
                     if name not in ("recorder", "raw executemany"))

    print(f"\n{args.rows:,} audit events per measurement, {args.rounds} rounds, medians\n")
    print("| backend | recorder rec/s | raw executemany rec/s | recorder / raw | "
          "recorder range |")
    print("|---|---|---|---|---|")
    for kind, ours, raw, lo, hi in table:
        print(f"| {kind} | {ours:,.0f} | {raw:,.0f} | {ours / raw:.2f} | {lo:,.0f}-{hi:,.0f} |")
    if extra:
        print("\n| backend | other raw side | rec/s | / raw executemany |")
        print("|---|---|---|---|")
        raws = {kind: raw for kind, _, raw, _, _ in table}
        for kind, name, rate in extra:
            print(f"| {kind} | {name} | {rate:,.0f} | {rate / raws[kind]:.2f} |")


if __name__ == "__main__":
    main()
