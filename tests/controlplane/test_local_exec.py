"""Exec in the local control plane: real /bin/sh processes in each sandbox's directory."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cp_helpers import NS, StepClock, running, wait_for

from agenttier_router.controlplane import (
    DEFAULT_TEMPLATES,
    ExecResult,
    InvalidRequest,
    LocalControlPlane,
    Phase,
    SandboxConflict,
)

MIB = 1 << 20


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs: absent, or a zombie nobody has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] in ("Z", "X")


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_output_and_exit_code(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    result = plane.exec("sb", NS, "printf out; printf err >&2; exit 7", 10)
    assert result == ExecResult(stdout="out", stderr="err", exit_code=7, timed_out=False)


def test_runs_in_the_sandbox_directory(plane: LocalControlPlane, root: Path) -> None:
    running(plane, "sb")
    running(plane, "other")
    plane.exec("sb", NS, "echo mine > file.txt", 10)
    assert plane.exec("sb", NS, "pwd", 10).stdout.strip() == str((root / NS / "sb").absolute())
    assert (root / NS / "sb" / "file.txt").read_text() == "mine\n"
    assert plane.exec("other", NS, "ls -A", 10).stdout == ""


def test_environment_is_scrubbed(plane: LocalControlPlane, monkeypatch: pytest.MonkeyPatch,
                                 root: Path) -> None:
    monkeypatch.setenv("AGENTTIER_TEST_SECRET", "hunter2-do-not-leak")
    running(plane, "sb")
    output = plane.exec("sb", NS, "env", 10).stdout
    assert "hunter2" not in output
    assert "AGENTTIER_TEST_SECRET" not in output
    env = dict(line.split("=", 1) for line in output.splitlines())
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["HOME"] == str((root / NS / "sb").absolute())
    assert env["LANG"] == "C.UTF-8" and env["TERM"] == "dumb"
    assert set(env) <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_", "OLDPWD"}


def test_stdin_is_empty(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    assert plane.exec("sb", NS, "cat; echo done", 10).stdout == "done\n"


def test_a_signal_gives_128_plus_its_number(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    assert plane.exec("sb", NS, "kill -TERM $$", 10).exit_code == 128 + 15


def test_undecodable_output_is_replaced(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    assert plane.exec("sb", NS, r"printf '\377ok'", 10).stdout == "\ufffdok"


@needs_proc
def test_timeout_kills_the_whole_group(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    # Were only the shell killed, or none, the background sleep would outlive the exec.
    result = plane.exec("sb", NS, "sleep 60 & echo $!; sleep 2", 0.5)
    assert result.timed_out and result.exit_code == 124
    assert "timed out" in result.stderr
    background = int(result.stdout)  # what was captured before the timeout
    wait_for(lambda: _gone(background), "the background sleep to die")


@needs_proc
def test_background_processes_neither_hold_the_exec_nor_outlive_it(
    plane: LocalControlPlane,
) -> None:
    running(plane, "sb")
    # The background sleep keeps stdout open; waiting for end of file would time out.
    result = plane.exec("sb", NS, "sleep 30 & echo $!", 20)
    assert not result.timed_out and result.exit_code == 0
    wait_for(lambda: _gone(int(result.stdout)), "the background sleep to die")


def test_output_is_capped_at_one_mib_per_stream(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    result = plane.exec(
        "sb", NS, "head -c 3000000 /dev/zero | tr '\\0' a; head -c 1500000 /dev/zero >&2", 20
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("a" * MIB)
    assert result.stdout[MIB:] == f"\n[agenttier: stdout truncated at 1 MiB; {3000000 - MIB} " \
        "more bytes dropped]\n"
    assert result.stderr.startswith("\0" * MIB)
    assert "stderr truncated at 1 MiB" in result.stderr[MIB:]
    exact = plane.exec("sb", NS, f"head -c {MIB} /dev/zero | tr '\\0' b", 20)
    assert exact.stdout == "b" * MIB  # exactly at the cap: nothing dropped, no marker


def test_concurrent_execs_run_at_once(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    # Each command waits until all four have started: run one at a time, they would time out.
    command = 'touch "m$N"; while [ "$(ls m* | wc -l)" -lt 4 ]; do sleep 0.01; done; echo "$N"'
    results: dict[int, ExecResult] = {}

    def run(n: int) -> None:
        results[n] = plane.exec("sb", NS, f"N={n}; {command}", 20)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {n: (r.stdout, r.exit_code, r.timed_out) for n, r in results.items()} == {
        n: (f"{n}\n", 0, False) for n in range(4)
    }


@pytest.mark.parametrize("action", ["stop", "delete", "close"])
def test_stop_delete_and_close_kill_a_running_exec(
    plane: LocalControlPlane, root: Path, action: str
) -> None:
    running(plane, "sb")
    marker = root / NS / "sb" / "started"
    results: list[ExecResult] = []
    worker = threading.Thread(
        target=lambda: results.append(plane.exec("sb", NS, "touch started; sleep 30", 60))
    )
    worker.start()
    wait_for(marker.exists, "the command to start")
    getattr(plane, action)(*(("sb", NS) if action != "close" else ()))
    worker.join(20)
    assert not worker.is_alive()
    [result] = results
    assert result.exit_code == 128 + 9 and not result.timed_out
    assert "[agenttier: killed: " in result.stderr


def test_exec_needs_running(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    plane.stop("sb", NS)
    with pytest.raises(SandboxConflict, match="it is Stopped, not Running"):
        plane.exec("sb", NS, "true", 10)
    plane.resume("sb", NS)
    assert plane.exec("sb", NS, "true", 10).exit_code == 0


@pytest.mark.parametrize("timeout", [
    pytest.param(0, id="zero"), pytest.param(-1, id="negative"),
    pytest.param(3600.5, id="over-an-hour"), pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"), pytest.param(True, id="bool"),
    pytest.param("5", id="str"),
])
def test_bad_timeouts(plane: LocalControlPlane, timeout: object) -> None:
    running(plane, "sb")
    with pytest.raises(InvalidRequest, match="timeout must be"):
        plane.exec("sb", NS, "true", timeout)  # type: ignore[arg-type]


def test_an_hour_is_allowed(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    assert plane.exec("sb", NS, "true", 3600).exit_code == 0


@pytest.mark.parametrize(("command", "message"), [
    pytest.param("", "non-empty", id="empty"),
    pytest.param("  \n", "non-empty", id="blank"),
    pytest.param(None, "non-empty", id="not-a-str"),
    pytest.param("echo a\0b", "NUL", id="nul"),
    pytest.param("echo \ud800", "valid Unicode", id="lone-surrogate"),
    pytest.param("#" * 200_000, "too long", id="too-long"),
])
def test_bad_commands(plane: LocalControlPlane, command: object, message: str) -> None:
    running(plane, "sb")
    with pytest.raises(InvalidRequest, match=message):
        plane.exec("sb", NS, command, 10)  # type: ignore[arg-type]


def test_exec_updates_last_activity(root: Path) -> None:
    clock = StepClock()
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, lambda t: None, clock=clock)
    try:
        before = running(plane, "sb")
        plane.exec("sb", NS, "true", 10)
        after = plane.get("sb", NS)
    finally:
        plane.close()
    assert after.phase is Phase.RUNNING
    assert after.last_activity_at >= before.last_activity_at + timedelta(seconds=1)
    assert after.created_at == before.created_at


def test_files_a_command_creates_are_private(plane: LocalControlPlane, root: Path) -> None:
    running(plane, "sb")
    plane.exec("sb", NS, "echo x > f", 10)
    assert os.stat(root / NS / "sb" / "f").st_mode & 0o077 == 0
