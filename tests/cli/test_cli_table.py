"""Tables fit the terminal, and every format streams with a progress line on a terminal (issue 9).

``records audit`` printed 146 columns at ``COLUMNS=80``, and ``--all`` held
every row of a table in memory (195 MB at 200k rows) with no sign of progress.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import SCRIPT, ago, run, script_env, seed, write

from agenttier_router.cli import output
from agenttier_router.storage import AuditEvent

AUDIT_HEADER = ["TIME", "ACTOR", "ACTION", "RESOURCE", "SANDBOX_ID", "NAMESPACE", "OUTCOME",
                "DETAILS"]


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    """A SQLite database holding the seed records (the layout does not depend on the backend)."""
    return seed(f"sqlite:///{tmp_path / 'seeded.db'}")


@pytest.mark.parametrize(("columns", "header"), [
    ("200", AUDIT_HEADER),
    ("80", ["TIME", "ACTOR", "ACTION", "SANDBOX_ID", "OUTCOME", "DETAILS"]),
    ("60", ["TIME", "ACTOR", "ACTION", "SANDBOX_ID", "OUTCOME"]),
    ("45", ["TIME", "ACTOR", "ACTION", "OUTCOME"]),
])
def test_audit_table_fits_the_terminal_dropping_columns_in_the_stated_order(
    seeded: str, columns: str, header: list[str]
) -> None:
    result = run("records", "audit", "--dsn", seeded, env={"COLUMNS": columns})

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == header
    assert max(len(line) for line in lines) <= int(columns)
    assert len(lines) == 5
    assert [line.split()[1] for line in lines[1:]] == ["alice", "bob", "alice", "carol"]
    if int(columns) < 146:  # times are shown to the second once the table is narrowed
        assert "." not in lines[1].split()[0]


def test_wide_shows_every_column_whatever_the_terminal(seeded: str) -> None:
    result = run("records", "audit", "--dsn", seeded, "--wide", env={"COLUMNS": "80"})

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == AUDIT_HEADER
    assert max(len(line) for line in lines) > 80


def test_the_help_states_the_order(seeded: str) -> None:
    text = " ".join(run("records", "audit", "--help").stdout.split())
    assert "--wide" in text
    assert "audit: RESOURCE, NAMESPACE, DETAILS, SANDBOX_ID" in text


@dataclass
class _Item:
    """A row for :func:`output.write`; counts, through ``pulled``, how many were read."""

    n: int

    @property
    def time(self) -> str:
        return f"2026-11-26T17:00:{self.n % 60:02d}.000000Z"

    @property
    def actor(self) -> str:
        return f"actor-{self.n}"


class _CountingStdout:
    """Stands in for stdout to see how far the writer had read its items at each line."""

    def __init__(self, pulled: list[int]) -> None:
        self.pulled = pulled
        self.ahead = 0
        self.lines = 0
        self.encoding = "utf-8"

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.ahead = max(self.ahead, self.pulled[0] - self.lines)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_every_format_streams_holding_at_most_one_layout_of_rows(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    pulled = [0]
    total = 5 * output.LAYOUT_ROWS

    def items():  # type: ignore[no-untyped-def]
        for n in range(total):
            pulled[0] += 1
            yield _Item(n)

    stdout = _CountingStdout(pulled)
    monkeypatch.setattr(sys, "stdout", stdout)
    columns = (output.Column("time"), output.Column("actor"))

    output.write(items(), columns, fmt, width=80)

    assert pulled[0] == total
    assert stdout.lines >= total
    # How many rows were read but not yet printed, at worst: one layout's worth for
    # the table (not all 5,000), one row (and a header line) for JSON and CSV.
    assert stdout.ahead <= (output.LAYOUT_ROWS + 1 if fmt == "table" else 2)


def test_all_follows_every_page_into_one_aligned_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    write(url, [AuditEvent(actor="a" * (1 + i % 7), action="exec", time=ago(seconds=i),
                           event_id=f"m{i:05d}") for i in range(2500)])

    result = run("records", "audit", "--dsn", url, "--all", "--limit", "1000", "--wide")

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2501
    column = lines[0].index("ACTION")
    assert {line[column:].split()[0] for line in lines[1:]} == {"exec"}
    assert "records" not in result.stderr  # no progress line: stderr is not a terminal


def _run_on_a_terminal(*args: str, env: dict[str, str]) -> tuple[str, str]:
    """Run the script with stderr on a pseudo-terminal; return (stdout, what the terminal saw)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=follower,
                              env=env, timeout=60, check=False)
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, seen
    return proc.stdout.decode(), seen.decode()


@pytest.mark.skipif(not SCRIPT.exists(), reason="agenttier-router is not in the venv")
def test_all_shows_progress_on_stderr_only_when_it_is_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'progress.db'}"
    write(url, [AuditEvent(actor="p", action="exec", time=ago(seconds=i), event_id=f"p{i:03d}")
                for i in range(250)])
    env = script_env(STORAGE_DSN=url)
    for fmt in ("json", "csv", "table"):
        stdout, terminal = _run_on_a_terminal("records", "audit", "--all", "--limit", "100",
                                              "--format", fmt, env=env)
        assert "100 records so far" in terminal and "250 records" in terminal, terminal
        assert "so far" not in stdout
        if fmt == "json":
            assert len(json.loads(stdout)) == 250  # stdout holds the records alone
    piped = subprocess.run([str(SCRIPT), "records", "audit", "--all", "--limit", "100",
                            "--format", "csv"], capture_output=True, text=True, env=env,
                           timeout=60, check=False)
    assert piped.returncode == 0
    assert piped.stderr == ""
