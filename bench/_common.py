"""What the bench scripts share: database URLs, raw driver connections, timing and tables.

Not a benchmark itself. The URLs default to the local servers; each script
takes ``--sqlite-path``, ``--pg-url`` and ``--mysql-url`` to point elsewhere.
Every benchmark works in its own database (``agenttier_bench``) or in SQLite
files under ``bench/.data/`` (git-ignored), never in a shared one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

__all__ = [
    "ACTIONS",
    "BACKENDS",
    "DATA_DIR",
    "RESET",
    "add_backend_flags",
    "backend_urls",
    "machine",
    "median",
    "p95",
    "print_table",
    "raw_connect",
    "server_version",
]

BACKENDS = ("sqlite", "postgresql", "mysql")
RESET = {
    "sqlite": ["DELETE FROM audit_events", "PRAGMA wal_checkpoint(TRUNCATE)"],
    "postgresql": ["TRUNCATE audit_events RESTART IDENTITY"],
    "mysql": ["TRUNCATE TABLE audit_events"],
}
"""Statements that empty ``audit_events`` between measurements, per backend."""
ACTIONS = ("create", "delete", "exec", "get", "list", "logs", "port-forward", "pause",
           "resume", "snapshot")
"""The audit actions the generated events draw from."""
DATA_DIR = Path(__file__).resolve().parent / ".data"
_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/agenttier_bench"
_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/agenttier_bench"


def add_backend_flags(parser: argparse.ArgumentParser, sqlite_name: str) -> None:
    """Add ``--backends`` and the three location flags to ``parser``."""
    parser.add_argument(
        "--backends", default=",".join(BACKENDS),
        help="comma-separated subset of sqlite,postgresql,mysql (default: all)",
    )
    parser.add_argument("--sqlite-path", default=str(DATA_DIR / sqlite_name))
    parser.add_argument("--pg-url", default=_PG_URL)
    parser.add_argument("--mysql-url", default=_MYSQL_URL)


def backend_urls(args: argparse.Namespace) -> dict[str, str]:
    """Return {kind: storage URL} for the backends ``--backends`` chose, in a fixed order."""
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backend(s): {', '.join(sorted(unknown))}")
    DATA_DIR.mkdir(exist_ok=True)
    urls = {
        "sqlite": f"sqlite:///{os.path.abspath(args.sqlite_path)}",
        "postgresql": args.pg_url,
        "mysql": args.mysql_url,
    }
    return {kind: urls[kind] for kind in BACKENDS if kind in chosen}


def raw_connect(kind: str, url: str) -> Any:
    """Open a plain DB-API connection (no SQLAlchemy) to the database a storage URL names.

    SQLite gets the library's own settings (WAL, ``synchronous=FULL``, explicit
    transactions), so that the two sides of a comparison pay for the same durability.
    """
    u = make_url(url)
    if kind == "sqlite":
        if u.database and not os.path.exists(u.database):  # private, as the library makes it
            os.close(os.open(u.database, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(u.database or ":memory:", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn
    if kind == "postgresql":
        import psycopg

        return psycopg.connect(
            host=u.host, port=u.port or 5432, user=u.username, password=u.password,
            dbname=u.database,
        )
    import pymysql

    return pymysql.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
        database=u.database, charset="utf8mb4",
    )


def server_version(kind: str, conn: Any) -> str:
    """Return the database's version string, read through a raw connection."""
    if kind == "sqlite":
        return "SQLite " + sqlite3.sqlite_version
    cur = conn.cursor()
    cur.execute("SELECT version()")
    version = str(cur.fetchone()[0])
    cur.close()
    return version.split(" on ")[0] if kind == "postgresql" else "MariaDB/MySQL " + version


def machine(versions: Sequence[str]) -> str:
    """Describe the machine in one line: cores, Python, and the database versions."""
    return (
        f"nproc={os.cpu_count()}, Python {platform.python_version()}, "
        + ", ".join(versions)
    )


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``."""
    return statistics.median(samples)


def p95(samples: Sequence[float]) -> float:
    """The 95th percentile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` as a Markdown table, so that it can be pasted into BENCHMARKS.md."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
