"""``serve``'s start-up refusals: a taken port, and keys with --dev-auth (issue 9)."""

from __future__ import annotations

import socket
from pathlib import Path

from cli_helpers import free_port, script_env, serve_once, serving

KEYS = "- key: admin-key-0123456789abcdef\n  subject: carol\n  groups: [agenttier-admins]\n"


def test_a_second_router_on_the_same_port_says_the_port_is_taken(tmp_path: Path) -> None:
    with serving(tmp_path, "--dev-auth") as served:
        port = served.url.rsplit(":", 1)[1]
        # The same data dir too: the spool's lock used to be the first (misleading) error.
        second = serve_once(tmp_path, "--dev-auth", "--port", port, "--storage",
                            f"sqlite:///{tmp_path / 'x.db'}", timeout=30)
    assert second.returncode == 1
    lines = [line for line in second.stderr.splitlines() if "agenttier-router:" in line]
    assert lines == [f"agenttier-router: port {port} on 127.0.0.1 is already in use (another "
                     "Router, or another program, listens there): stop it, or pass another --port"]
    assert "spool" not in second.stderr
    assert "Traceback" not in second.stderr


def test_a_port_another_program_holds_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = serve_once(tmp_path, "--dev-auth", "--port", str(port), timeout=30)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_api_keys_with_dev_auth_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(KEYS, encoding="utf-8")
    port = str(free_port())

    flag = serve_once(tmp_path, "--dev-auth", "--api-keys", str(keys), "--port", port,
                      timeout=30)
    env = serve_once(tmp_path, "--dev-auth", "--port", port, timeout=30,
                     env=script_env(AGENTTIER_API_KEYS=str(keys)))

    for result, named in ((flag, "--api-keys"), (env, "$AGENTTIER_API_KEYS")):
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"agenttier-router: error: {named} and --dev-auth exclude "
                                   "each other")


def test_a_retention_shorter_than_a_rollup_bucket_is_refused_at_start(tmp_path: Path) -> None:
    flag = serve_once(tmp_path, "--dev-auth", "--retention-audit", "30m",
                      "--port", str(free_port()), timeout=30)
    env = serve_once(tmp_path, "--dev-auth", "--port", str(free_port()), timeout=30,
                     env=script_env(AGENTTIER_RETENTION_COSTS="-1d"))
    for result, says in ((flag, "shorter than one rollup bucket"), (env, "negative")):
        assert result.returncode == 2, result.stderr
        assert says in result.stderr
        assert "Traceback" not in result.stderr
