"""What the recorder bench scripts share; not a benchmark itself.

Every recorder benchmark works in its own database, ``agenttier_recorder_bench``
(created if missing), on the local PostgreSQL and MariaDB, and in SQLite files
under ``bench/.data/`` (git-ignored). Outages go through ``tests/tcpproxy.py``:
the shared servers are never stopped.
"""

from __future__ import annotations

import os
import platform
import random
import sqlite3
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import ACTIONS, RESET
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agenttier_router.storage import AuditEvent, open_backend

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / ".data"
sys.path.insert(0, str(ROOT / "tests"))  # for tcpproxy, the tests' fault injector

BENCH_DB = "agenttier_recorder_bench"
URLS = {
    "sqlite": f"sqlite:///{DATA_DIR / 'recorder_bench.db'}",
    "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:5432/{BENCH_DB}",
    "mysql": f"mysql+pymysql://root@127.0.0.1:3306/{BENCH_DB}",
}


def prepare(kind: str, path: str | None = None) -> str:
    """Create the bench database (and schema) for ``kind``; return its storage URL."""
    DATA_DIR.mkdir(exist_ok=True)
    url = f"sqlite:///{path}" if path else URLS[kind]
    if kind != "sqlite":
        admin_db = "test"
        admin = create_engine(make_url(url).set(database=admin_db), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if kind == "postgresql":
                exists = conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": BENCH_DB}
                ).scalar()
                if not exists:
                    conn.execute(text(f"CREATE DATABASE {BENCH_DB}"))
            else:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS {BENCH_DB} "
                                  "CHARACTER SET utf8mb4"))
        admin.dispose()
    backend = open_backend(url)
    backend.upgrade()  # type: ignore[attr-defined]
    backend.close()
    return url


def raw_connect(kind: str, url: str) -> Any:
    """A plain DB-API connection; SQLite gets the library's pragmas (WAL, synchronous=FULL)."""
    u = make_url(url)
    if kind == "sqlite":
        conn = sqlite3.connect(u.database or ":memory:", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn
    if kind == "postgresql":
        import psycopg

        return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username,
                               dbname=u.database)
    import pymysql

    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username,
                           password=u.password or "", database=u.database, charset="utf8mb4")


def reset(kind: str, url: str) -> None:
    """Empty ``audit_events``."""
    conn = raw_connect(kind, url)
    cur = conn.cursor()
    for statement in RESET[kind]:
        cur.execute(statement)
    if kind != "sqlite":
        conn.commit()
    conn.close()


def count_rows(kind: str, url: str, prefix: str = "") -> tuple[int, int]:
    """(rows, distinct event ids) in ``audit_events`` whose event id starts with ``prefix``."""
    conn = raw_connect(kind, url)
    cur = conn.cursor()
    mark = "?" if kind == "sqlite" else "%s"
    cur.execute(
        f"SELECT count(*), count(DISTINCT event_id) FROM audit_events WHERE event_id LIKE {mark}",
        (prefix + "%",),
    )
    rows, distinct = cur.fetchone()
    conn.close()
    return int(rows), int(distinct)


def make_event(rng: random.Random, i: int, **fields: Any) -> AuditEvent:
    """One realistic audit event."""
    return AuditEvent(
        actor=f"user-{rng.randrange(1000):04d}@example.com",
        action=ACTIONS[i % len(ACTIONS)],
        sandbox_id=f"sb-{rng.randrange(20000):05d}",
        namespace=f"team-{rng.randrange(20):02d}",
        outcome="success",
        details={"exitCode": 0, "command": "python train.py", "durationMs": i % 5000},
        **fields,
    )


def make_records(n: int, seed: int = 7) -> list[AuditEvent]:
    """``n`` realistic audit events, oldest first."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    return [make_event(rng, i, time=start + timedelta(microseconds=i * 37)) for i in range(n)]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``."""
    return statistics.median(samples)


def machine() -> str:
    """One line: cores, Python, SQLite."""
    return (f"nproc={os.cpu_count()}, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}")
