"""Exec through the Router, as the SDK runs it: where it runs, what it sees, how it ends.

The local control plane runs commands with ``/bin/sh -c`` in the sandbox's own
working directory, under the timeout, with a scrubbed environment; the audit
event keeps the command (head and tail of a long one, its length and SHA-256)
and how it ended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'exec.db'}"


@pytest.fixture
def router(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Router]:
    monkeypatch.setenv("AGENTTIER_TEST_SECRET", "hunter2-do-not-leak")
    with running_router(config_for(tmp_path, store)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-x")
        wait_phase(alice, "sb-x")
        yield router


def test_exec_runs_in_the_sandbox_directory(router: Router, tmp_path: Path, store: str) -> None:
    sandbox = router.client("alice").get_sandbox("sb-x")
    workdir = (tmp_path / "data" / "default" / "sb-x").resolve()
    assert sandbox.exec("pwd").stdout == f"{workdir}\n"
    assert sandbox.exec("echo kept > file; cat file").stdout == "kept\n"
    assert (workdir / "file").read_text() == "kept\n"
    long = "echo " + "x" * 5000
    assert len(sandbox.exec(long).stdout) == 5001
    router.state.recorder.flush(10)
    commands = [json.loads(e.details)["command"] for e in stored_audit(store, action="exec")]
    assert commands[:2] == ["pwd", "echo kept > file; cat file"]
    assert commands[2].startswith(long[:512]) and commands[2].endswith(long[-512:])
    assert "…[3981 characters left out]…" in commands[2]


def test_a_padded_command_keeps_its_tail_length_and_digest(
    tmp_path: Path, store_url: str
) -> None:
    # Issue 9, item 7: padding once pushed "; echo PAYLOAD > file" out of the record.
    command = "echo harmless" + " " * 3000 + "; echo PAYLOAD > file"
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-p")
        wait_phase(alice, "sb-p")
        assert alice.get_sandbox("sb-p").exec(command).exit_code == 0
        router.state.recorder.flush(10)
        [event] = stored_audit(store_url, action="exec")
    details = json.loads(event.details)
    assert details["command"].startswith("echo harmless")
    assert details["command"].endswith("; echo PAYLOAD > file")
    assert details["commandLength"] == len(command)
    assert details["commandSha256"] == hashlib.sha256(command.encode()).hexdigest()
    assert details["commandTruncated"] is True
    assert len(details["command"]) < 1100


def test_exec_timeout_is_exit_124_and_recorded(router: Router, store: str) -> None:
    sandbox = router.client("alice").get_sandbox("sb-x")
    result = sandbox.exec("echo started; sleep 3", timeout=1)
    assert result.exit_code == 124
    assert result.stdout == "started\n"
    assert "timed out after 1 s" in result.stderr
    router.state.recorder.flush(10)
    [event] = stored_audit(store, action="exec")
    details = json.loads(event.details)
    assert (details["exitCode"], details["timedOut"], details["timeout"]) == (124, True, 1)
    assert event.outcome == "success"


def test_exec_timeout_kills_the_command(router: Router, tmp_path: Path) -> None:
    sandbox = router.client("alice").get_sandbox("sb-x")
    assert sandbox.exec("sleep 3; touch late", timeout=1).exit_code == 124
    # Killed at the timeout, the command never gets as far as creating the file.
    assert not (tmp_path / "data" / "default" / "sb-x" / "late").exists()


def test_exec_environment_is_scrubbed(router: Router) -> None:
    sandbox = router.client("alice").get_sandbox("sb-x")
    output = sandbox.exec("env").stdout
    assert "hunter2-do-not-leak" not in output
    names = {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_", "OLDPWD"}
