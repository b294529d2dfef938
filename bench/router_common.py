"""What the Router bench scripts share: real Routers in subprocesses, percentiles, /metrics.

Not a benchmark itself. Each Router is the ``agenttier-router serve --dev-auth``
command (run as ``python -m agenttier_router.cli``, which is what the console
script calls), in its own process, so that it does not share a GIL with the
client. It binds to 127.0.0.1 on a free port, logs at ``warning`` (no access
log line per request) into ``bench/.data/<name>.log``, and keeps its
sandboxes and spool in ``bench/.data/<name>-data/``. Storage comes from
``--storage`` only: the environment's ``STORAGE_*`` variables are removed,
so a Router without a URL really runs with storage off.

``bench/router_server.py`` is the same command with one optional change, for
measuring what the change costs (see its docstring).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agenttier_router.storage import open_backend

__all__ = [
    "BASE_COMMIT",
    "DATA_DIR",
    "PG_ADMIN_URL",
    "Router",
    "base_source",
    "count_rows",
    "ensure_pg_database",
    "fresh_sqlite",
    "metric",
    "pct",
    "prepare_store",
]

BENCH = Path(__file__).resolve().parent
DATA_DIR = BENCH / ".data"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_SCRUBBED = ("STORAGE_DSN", "STORAGE_SQLITE_PATH", "AGENTTIER_API_KEYS", "AGENTTIER_DATA_DIR",
             "AGENTTIER_SPOOL_DIR", "AGENTTIER_TEMPLATES", "AGENTTIER_ADMIN_GROUP")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Router:
    """One Router in a subprocess; use as a context manager (SIGTERM, then wait, on exit).

    ``extra`` goes before ``serve`` when ``script`` is set (``router_server.py``'s flags).
    ``auth`` replaces ``--dev-auth`` (``--api-keys FILE``), ``flags`` go after ``serve``,
    and ``source`` runs the package from another source tree (an earlier commit's
    ``src``, for before/after comparisons).
    """

    name: str
    storage_url: str | None
    script: Path | None = None
    extra: Sequence[str] = ()
    auth: Sequence[str] = ("--dev-auth",)
    flags: Sequence[str] = ()
    source: Path | None = None
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Router:
        data = DATA_DIR / f"{self.name}-data"
        shutil.rmtree(data, ignore_errors=True)
        head = [sys.executable, str(self.script), *self.extra] if self.script else [
            sys.executable, "-m", "agenttier_router.cli"]
        cmd = [*head, "serve", *self.auth, "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(data), "--log-level", "warning", *self.flags]
        if self.storage_url:
            cmd += ["--storage", self.storage_url]
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        log = open(DATA_DIR / f"{self.name}.log", "wb")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``/healthz`` answers; raise if the process died or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name}: the Router exited ({self.proc.returncode}); "
                                 f"see {DATA_DIR / (self.name + '.log')}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name}: no /healthz after {timeout:.0f} s")

    def rss_mib(self) -> float:
        """The Router process's resident memory, in MiB (from /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int | None:
        """SIGTERM (the lifespan drains the recorder), then wait; SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> Router:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


BASE_COMMIT = "05c06ca"
"""The commit before issue 9's HTTP hardening: the "before" side of its benchmarks."""


def base_source(commit: str = BASE_COMMIT) -> Path:
    """The ``src`` tree of ``commit``, exported once into ``bench/.data`` (for PYTHONPATH)."""
    target = DATA_DIR / f"src-{commit}"
    if not (target / "src").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=BENCH.parent,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def fresh_sqlite(path: Path) -> str:
    """Remove an SQLite file and its WAL/SHM; return its storage URL."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def ensure_pg_database(name: str) -> str:
    """Create the PostgreSQL database ``name`` on the local server if missing; return its URL."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


_TABLES = ("audit_events", "sandbox_events", "cost_snapshots")


def prepare_store(url: str, *, empty: bool) -> None:
    """Create the schema through the library (so the Router's first write does not) and,
    with ``empty``, delete every record in it."""
    backend = open_backend(url)
    backend.upgrade()  # type: ignore[attr-defined]  # an SQLBackend
    backend.close()
    if empty:
        engine = create_engine(url)
        with engine.begin() as conn:
            for table in _TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
        engine.dispose()


def count_rows(url: str) -> dict[str, int]:
    """{table: rows} for the three record tables."""
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() or 0)
                  for t in _TABLES}
    engine.dispose()
    return counts


def pct(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")  # values may hold "}"


def metric(text: str, name: str, **labels: str) -> float:
    """Sum the samples of metric ``name`` in Prometheus ``text`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total
