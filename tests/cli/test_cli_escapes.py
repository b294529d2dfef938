"""Stored fields never reach an admin's terminal raw: control and bidi characters are escaped.

Issue 9, item 17: an actor, a command or a message holding ``ESC [2J`` (clear
the screen), a C1 CSI, a carriage return or U+202E (right-to-left override)
went through the table and CSV as it was.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from cli_helpers import ago, run, write

from agenttier_router.storage import AuditEvent, SandboxEvent

HOSTILE = "ev\x1b[2J\x9b31m\x07il\rok \u202etxt.exe\u2066x\u2069"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile(store_url: str) -> str:
    """A database holding records whose text fields carry terminal escapes and bidi controls."""
    write(store_url, [
        AuditEvent(actor=HOSTILE, action="exec", sandbox_id="sb-1", namespace="ns",
                   details={"command": HOSTILE}, time=ago(minutes=1), event_id="h1"),
        SandboxEvent(sandbox_id="sb-1", namespace="ns", phase="Running", reason=HOSTILE,
                     message=HOSTILE, time=ago(minutes=2), event_id="h2"),
    ])
    return store_url


@pytest.mark.parametrize("command", [["records", "audit"], ["records", "sandbox-events"]])
@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_no_control_character_reaches_the_terminal(
    hostile: str, command: list[str], fmt: str
) -> None:
    result = run(*command, "--dsn", hostile, "--format", fmt, "--wide")

    assert result.code == 0, result.stderr
    assert not RAW.search(result.stdout), repr(result.stdout)
    assert "\\x1b[2J" in result.stdout or "\\u001b[2J" in result.stdout
    assert "\\u202e" in result.stdout


def test_the_escapes_are_readable_and_json_parses_back(hostile: str) -> None:
    table = run("records", "audit", "--dsn", hostile)
    assert "ev\\x1b[2J\\x9b31m\\x07il ok \\u202e" in table.stdout  # the cell is cut after

    rows = list(csv.DictReader(io.StringIO(
        run("records", "audit", "--dsn", hostile, "--format", "csv").stdout)))
    assert rows[0]["actor"] == "ev\\x1b[2J\\x9b31m\\x07il\\x0dok \\u202etxt.exe\\u2066x\\u2069"

    # JSON escapes are JSON's own: the value parses back exactly as stored.
    parsed = json.loads(run("records", "audit", "--dsn", hostile, "--format", "json").stdout)
    assert parsed[0]["actor"] == HOSTILE


def test_an_error_message_quoting_a_value_is_escaped_too() -> None:
    result = run("records", "audit", "--dsn", "sqlite:///no\x1b[2J\u202edir/x.db")
    assert result.code == 1
    assert "no SQLite database at" in result.stderr
    assert not RAW.search(result.stderr), repr(result.stderr)
    assert "no\\x1b[2J\\u202edir" in result.stderr
