"""Helpers for the CLI tests: run ``main()`` in click's isolation, and the seed records.

(Not a conftest.py: the storage tests import names from the top-level
``conftest``, which a second conftest module would shadow.)

``run`` calls :func:`agenttier_router.cli.main`, the function the console
script calls, inside :meth:`click.testing.CliRunner.isolation`, so the tests
see the one-line errors and exit statuses a user sees, with stdout and
stderr apart. The storage variables are cleared unless a test sets them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner

from agenttier_router.cli import main
from agenttier_router.storage import (
    AuditEvent,
    CostSnapshot,
    Record,
    SandboxEvent,
    open_backend,
    sqlite_path,
)


@dataclass(frozen=True)
class Outcome:
    """What one run of the CLI printed, and its exit status."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """The non-empty lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Outcome:
    """Run ``agenttier-router ARGS`` in-process and return what it printed."""
    environ: dict[str, str | None] = {"STORAGE_DSN": None, "STORAGE_SQLITE_PATH": None}
    environ.update(env or {})
    with CliRunner().isolation(env=environ) as streams:
        code = main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
    out, err = streams[0], streams[1]
    return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


NOW = datetime.now(UTC).replace(microsecond=123456)
"""The seed's reference time: 'now' as of the test session, give or take minutes."""


def ago(**delta: float) -> datetime:
    """A time before :data:`NOW`."""
    return NOW - timedelta(**delta)


LONG_DETAILS = "first line\nsecond line " + "x" * 300

AUDIT = {
    "a1": AuditEvent(
        actor="alice", action="create", sandbox_id="sb-1", namespace="ns-a",
        details=LONG_DETAILS, time=ago(minutes=10), event_id="a1",
    ),
    "a2": AuditEvent(
        actor="bob", action="exec", sandbox_id="sb-2", namespace="ns-b", outcome="denied",
        details={"command": "ls"}, time=ago(hours=2), event_id="a2",
    ),
    "a3": AuditEvent(
        actor="alice", action="delete", resource="template", sandbox_id="sb-2",
        namespace="ns-a", outcome="error", time=ago(days=3), event_id="a3",
    ),
    "a4": AuditEvent(
        actor="carol", action="exec", sandbox_id="sb-1", namespace="ns-b",
        time=ago(days=20), event_id="a4",
    ),
}
"""Seeded audit events by event id, newest first."""

SANDBOX_EVENTS = {
    "s1": SandboxEvent(
        sandbox_id="sb-1", sandbox_name="box-one", namespace="ns-a", phase="Running",
        reason="Started", message="container started", time=ago(minutes=5), event_id="s1",
    ),
    "s2": SandboxEvent(
        sandbox_id="sb-1", sandbox_name="box-one", namespace="ns-a", phase="Pending",
        reason="Scheduled", time=ago(minutes=6), event_id="s2",
    ),
    "s3": SandboxEvent(
        sandbox_id="sb-2", namespace="ns-b", phase="Failed", reason="OOMKilled",
        message="out of memory", time=ago(days=3), event_id="s3",
    ),
}
"""Seeded sandbox events by event id, newest first."""

COSTS = {
    "c1": CostSnapshot(
        sandbox_id="sb-1", namespace="ns-a", cpu_hours=1.5, mem_gb_hours=2.0,
        estimated_usd=0.25, time=ago(hours=1), event_id="c1",
    ),
    "c2": CostSnapshot(
        sandbox_id="sb-1", namespace="ns-a", cpu_hours=0.5, mem_gb_hours=1.0,
        estimated_usd=0.75, time=ago(hours=2), event_id="c2",
    ),
    "c3": CostSnapshot(
        sandbox_id="sb-2", namespace="ns-b", cpu_hours=4.0, mem_gb_hours=8.0,
        estimated_usd=2.0, time=ago(hours=3), event_id="c3",
    ),
    "c4": CostSnapshot(
        sandbox_id="sb-3", namespace="ns-a", cpu_hours=0.25, mem_gb_hours=0.5,
        estimated_usd=0.5, time=ago(days=10), event_id="c4",
    ),
}
"""Seeded cost snapshots by event id, newest first."""


def write(url: str, records: list[Record]) -> None:
    """Write ``records`` through the library, as the Router would."""
    backend = open_backend(url)
    try:
        backend.write_batch(records)
    finally:
        backend.close()


def seed(url: str) -> str:
    """Write the seed records above into the database at ``url``; return ``url``."""
    write(url, [*AUDIT.values(), *SANDBOX_EVENTS.values(), *COSTS.values()])
    return url


def touch_sqlite_file(url: str) -> None:
    """Create the empty file a ``sqlite:///`` URL names (a no-op for other URLs)."""
    path = sqlite_path(url)
    if path is not None:
        path.touch()


SCRIPT = Path(sys.executable).with_name("agenttier-router")
"""The installed console script, in this venv."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def script_env(**extra: str) -> dict[str, str]:
    """This process's environment without any storage or AgentTier variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AGENTTIER_"))}
    env.update(extra)
    return env


@dataclass
class Served:
    """A ``serve`` process started by :func:`serving`: its base URL and its log so far."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            argv_tail: Sequence[str] = ()) -> Iterator[Served]:
    """Run ``agenttier-router serve ARGS`` on a free port until /healthz answers; then stop it."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             *args, *argv_tail],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=tmp_path,
            env=env if env is not None else script_env(),
        )
    served = Served(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, served.log()
            try:
                if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not answer: {served.log()}"
            time.sleep(0.05)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def serve_once(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``agenttier-router serve ARGS`` expecting it to exit by itself; return what it did."""
    return subprocess.run(
        [str(SCRIPT), "serve", "--data-dir", str(tmp_path / "data"), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path,
        env=env if env is not None else script_env(), timeout=timeout, check=False,
    )
