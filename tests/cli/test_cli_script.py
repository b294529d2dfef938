"""The installed console script, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import seed

SCRIPT = shutil.which("agenttier-router", path=str(Path(sys.executable).parent))


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``agenttier-router`` with no storage variables but those in ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    environ.update(env or {})
    assert SCRIPT is not None
    return subprocess.run(
        [SCRIPT, *args], env=environ, capture_output=True, text=True, timeout=60, check=False
    )


pytestmark = pytest.mark.skipif(SCRIPT is None, reason="agenttier-router is not in the venv")


@pytest.fixture
def seeded(store_url: str) -> str:
    """The URL of a fresh database on each backend, holding the seed records."""
    return seed(store_url)


def test_installed_script_reads_records_back(seeded: str) -> None:
    result = script("records", "audit", "--actor", "alice", "--format", "json",
                    env={"STORAGE_DSN": seeded})

    assert result.returncode == 0, result.stderr
    assert [row["event_id"] for row in json.loads(result.stdout)] == ["a1", "a3"]
    assert result.stderr == ""


def test_installed_script_bad_flag_is_one_line_and_exit_2() -> None:
    result = script("records", "audit", "--since", "2026-01-01T00:00:00",
                    env={"STORAGE_DSN": "sqlite://"})

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("agenttier-router: error: Invalid value for '--since'")


def test_installed_script_never_prints_the_password(tmp_path: Path) -> None:
    result = script("db", "check", "--dsn", "postgresql://u:s3cret@127.0.0.1:1/x")

    assert result.returncode == 1
    assert "s3cret" not in result.stdout + result.stderr
    assert "u:***@" in result.stderr
    assert result.stderr.count("\n") == 1


def test_python_dash_m_runs_the_same_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agenttier_router.cli", "db", "upgrade",
         "--dsn", f"sqlite:///{tmp_path / 'm.db'}"],
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "upgraded from none" in result.stdout
