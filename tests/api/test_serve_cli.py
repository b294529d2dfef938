"""``agenttier-router serve``, run as users run it: the installed console script, in a subprocess.

It is driven with the SDK, stopped with SIGTERM (as Kubernetes stops it), and
the records are then read from the database it wrote to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import agenttier
import httpx
from agenttier.auth import APIKeyAuth
from router_helpers import (
    KEYS,
    PEOPLE,
    eventually,
    free_port,
    stored_audit,
    stored_costs,
    stored_sandbox_events,
)

SCRIPT = Path(sys.executable).with_name("agenttier-router")


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STORAGE_", "AGENTTIER_"))}
    env.update(extra)
    return env


@contextmanager
def _serving(tmp_path: Path, *args: str, env: dict[str, str] | None = None
             ) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """Run ``serve ARGS`` on a free port until it answers /healthz; kill it if still running."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             *args],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=tmp_path,
            env=env or _environment(),
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(healthy, "serve to answer /healthz", timeout=30)
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    """SIGTERM, as Kubernetes sends it: the Router shuts down cleanly and exits of its own accord.

    uvicorn re-raises the signal once it has shut down, so the status says
    "terminated by SIGTERM" (as ``drain_on_sigterm`` does); 0 is fine too.
    """
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) in (0, -signal.SIGTERM), log.read_text()
    output = log.read_text()
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    return output


def test_serve_with_dev_auth_records_into_the_database(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'serve.db'}"
    with _serving(tmp_path, "--dev-auth", "--storage", store, "--cost-interval", "60") as (
            proc, url, log):
        with agenttier.AgentTierClient(url, auth=APIKeyAuth("anything")) as client:
            assert client.current_user().is_admin
            sandbox = client.create_sandbox("general-coding", "sb-cli")
            eventually(lambda: sandbox.status().status == "Running", "sb-cli to run")
            result = sandbox.exec("echo from the cli")
            assert (result.stdout, result.exit_code) == ("from the cli\n", 0)
        output = _stop(proc, log)
    assert "--dev-auth: EVERY request is treated as an admin" in output
    assert "beyond loopback" not in output
    events = stored_audit(store)
    assert [(e.actor, e.action, e.outcome) for e in events] == [
        ("dev", "create", "success"), ("dev", "exec", "success")]
    assert json.loads(events[1].details)["command"] == "echo from the cli"
    # Shutting down stops the sandbox (it comes back Stopped at the next start): the
    # transition and the last cost snapshot are written before the process exits.
    assert [e.reason for e in stored_sandbox_events(store)] == [
        "Created", "Started", "RouterShutdown"]
    assert 1 <= len(stored_costs(store, sandbox_id="sb-cli")) <= 2  # one per minute it ran in


def test_serve_with_api_keys_from_the_environment_never_logs_a_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("".join(
        f"- key: {p['key']}\n  subject: {who}\n  email: {p['email']}\n  groups: {p['groups']}\n"
        for who, p in PEOPLE.items()), encoding="utf-8")
    database = tmp_path / "env.db"
    env = _environment(STORAGE_SQLITE_PATH=str(database), AGENTTIER_API_KEYS=str(keys))
    with _serving(tmp_path, "--log-level", "debug", env=env) as (proc, url, log):
        with agenttier.AgentTierClient(url, auth=APIKeyAuth(KEYS["alice"])) as alice:
            alice.create_sandbox("minimal", "sb-keys")
        bad = httpx.post(f"{url}/api/v1/sandboxes/sb-keys/stop",
                         headers={"X-API-Key": "wrong-key-do-not-log-me"})
        assert bad.status_code == 401
        ready = httpx.get(f"{url}/readyz", headers={"X-API-Key": KEYS["alice"]}).json()
        assert ready["storage"]["url"] == f"sqlite:///{database}"
        output = _stop(proc, log)
    for key in [*KEYS.values(), "wrong-key-do-not-log-me"]:
        assert key not in output
    assert "--dev-auth" not in output
    events = stored_audit(f"sqlite:///{database}")
    assert [(e.actor, e.action, e.outcome) for e in events] == [
        ("alice", "create", "success"), ("anonymous", "stop", "denied")]


def test_serve_without_auth_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(SCRIPT), "serve", "--port", str(free_port())], cwd=tmp_path,
                          env=_environment(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("agenttier-router: error: pass --api-keys FILE and/or "
                               "--oidc-issuer URL, or --dev-auth")


def test_dev_auth_beyond_loopback_warns(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve", "--dev-auth", "--host", "0.0.0.0", "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=tmp_path,
            env=_environment(),
        )
    try:
        eventually(lambda: "beyond loopback" in log.read_text() or proc.poll() is not None,
                   "the warning", timeout=30)
    finally:
        proc.terminate()
        proc.wait(30)
    output = log.read_text()
    warning = next(line for line in output.splitlines() if "beyond loopback" in line)
    assert " WARNING " in warning
    assert "binds to 0.0.0.0" in warning
    assert "anyone who can reach it can create sandboxes and run commands" in warning
