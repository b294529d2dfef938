"""``agenttier-router db upgrade|check`` on every backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli_helpers import AUDIT, run, seed, touch_sqlite_file, write

from agenttier_router.storage import CostSnapshot

# The table Alembic keeps the revision in (storage/sql/schema.py's VERSION_TABLE).
VERSION_TABLE = "agenttier_schema_version"


def field(stdout: str, name: str) -> str:
    """The value of a ``name: value`` line."""
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name!r} line in {stdout!r}")


def test_check_upgrade_check(store_url: str, database: Any) -> None:
    touch_sqlite_file(store_url)  # an empty file: reading commands refuse a missing one
    empty = run("db", "check", "--dsn", store_url)
    assert empty.code == 1
    assert field(empty.stdout, "current") == "none"
    head = field(empty.stdout, "head")
    assert head
    assert "agenttier-router db upgrade" in field(empty.stdout, "status")

    upgraded = run("db", "upgrade", "--dsn", store_url)
    assert upgraded.code == 0, upgraded.stderr
    assert field(upgraded.stdout, "revision") == f"{head} (upgraded from none)"

    again = run("db", "upgrade", "--dsn", store_url)
    assert again.code == 0
    assert field(again.stdout, "revision") == f"{head} (already up to date)"

    current = run("db", "check", "--dsn", store_url)
    assert current.code == 0, current.stdout
    assert field(current.stdout, "current") == head
    assert field(current.stdout, "status") == "up to date"
    assert current.stderr == ""


def test_a_schema_newer_than_the_code_fails_both_commands(
    store_url: str, database: Any
) -> None:
    assert run("db", "upgrade", "--dsn", store_url).code == 0
    database.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'")

    for command in ("check", "upgrade"):
        result = run("db", command, "--dsn", store_url)
        assert result.code == 1, command
        assert result.stdout == ""
        assert len(result.error_lines) == 1, result.stderr
        assert result.error_lines[0].startswith("agenttier-router: ")
        assert "9999_future" in result.stderr and "newer" in result.stderr


def test_storage_sqlite_path_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "from-env.db"

    result = run("db", "upgrade", env={"STORAGE_SQLITE_PATH": str(path)})

    assert result.code == 0, result.stderr
    assert path.exists()
    assert str(path) in field(result.stdout, "database")
    assert run("db", "check", env={"STORAGE_SQLITE_PATH": str(path)}).code == 0


def test_storage_dsn_wins_over_the_sqlite_path(tmp_path: Path) -> None:
    dsn_file, path_file = tmp_path / "dsn.db", tmp_path / "path.db"

    result = run(
        "db", "upgrade",
        env={"STORAGE_DSN": f"sqlite:///{dsn_file}", "STORAGE_SQLITE_PATH": str(path_file)},
    )

    assert result.code == 0, result.stderr
    assert dsn_file.exists() and not path_file.exists()


def test_the_dsn_flag_wins_over_the_environment(tmp_path: Path) -> None:
    flag_file, env_file = tmp_path / "flag.db", tmp_path / "env.db"

    result = run("db", "upgrade", "--dsn", f"sqlite:///{flag_file}",
                 env={"STORAGE_DSN": f"sqlite:///{env_file}"})

    assert result.code == 0, result.stderr
    assert flag_file.exists() and not env_file.exists()


def test_rollup_reports_and_check_shows_the_watermark(store_url: str) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write(store_url, [CostSnapshot(sandbox_id="sb", namespace="ns", estimated_usd=1.0,
                                   time=hour - timedelta(hours=2, minutes=30))])
    before = run("db", "check", "--dsn", store_url)
    assert field(before.stdout, "rollups") == "none yet (run 'agenttier-router db rollup')"

    first = run("db", "rollup", "--dsn", store_url)
    assert first.code == 0, first.stderr
    assert field(first.stdout, "hours") == "3 recomputed"
    assert field(first.stdout, "rows") == "1 rollup rows written"
    mark = hour.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert first.stdout.splitlines()[-1] == f"watermark: none -> {mark}"
    again = run("db", "rollup", "--dsn", store_url, "--grace", "0")
    assert field(again.stdout, "hours") == "0 recomputed"
    assert field(run("db", "check", "--dsn", store_url).stdout, "rollups") == f"up to {mark}"


def test_purge_dry_run_purge_and_its_audit_event(store_url: str) -> None:
    seed(store_url)
    oldest = min(AUDIT.values(), key=lambda e: e.time)
    nothing = run("db", "purge", "--dsn", store_url)
    assert nothing.code == 0 and "nothing to purge" in nothing.stdout

    dry = run("db", "purge", "--dsn", store_url, "--retention-audit", "5d", "--dry-run")
    assert dry.code == 0, dry.stderr
    line = next(x for x in dry.stdout.splitlines() if x.startswith("audit_events:"))
    assert line.startswith("audit_events: would delete 1 rows before ")
    listed = run("records", "audit", "--dsn", store_url, "--format", "json")
    assert len(json.loads(listed.stdout)) == len(AUDIT)

    slow = run("db", "purge", "--dsn", store_url, "--retention-audit", "5d", "--pause", "-1")
    assert slow.code == 2 and "--pause" in slow.stderr
    done = run("db", "purge", "--dsn", store_url, "--pause", "0",
               env={"AGENTTIER_RETENTION_AUDIT": "5d"})
    assert done.code == 0, done.stderr
    assert "audit_events: deleted 1 rows before " in done.stdout
    events = json.loads(run("records", "audit", "--dsn", store_url, "--format", "json").stdout)
    ids = {e["event_id"] for e in events}
    assert oldest.event_id not in ids
    [purged] = [e for e in events if e["action"] == "purge"]
    assert purged["actor"] == "system" and purged["resource"] == "audit_events"
    assert purged["details"]["rows"] == 1  # details are an object in JSON output

    for bad, message in (("-1d", "negative"), ("soon", "not a duration"),
                         ("30m", "shorter than one rollup bucket")):
        refused = run("db", "purge", "--dsn", store_url, "--retention-audit", bad)
        assert refused.code == 2, bad
        assert message in refused.stderr and "--retention-audit" in refused.stderr
