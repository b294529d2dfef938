"""Errors: a bad flag exits 2, a storage failure 1, each with one line and never a password."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from cli_helpers import run

from agenttier_router.cli import options
from agenttier_router.cli.options import Moment
from agenttier_router.storage import AuditEvent, AuditFilter, BackendUnavailable, Page

PREFIX = "agenttier-router: error: "

BAD_FLAGS = [
    pytest.param(["records", "audit", "--bogus"], "--bogus", id="unknown-flag"),
    pytest.param(["records", "audit", "--limit", "0"], "--limit", id="limit-0"),
    pytest.param(["records", "audit", "--limit", "5000"], "--limit", id="limit-5000"),
    pytest.param(["records", "audit", "--limit", "ten"], "--limit", id="limit-not-a-number"),
    pytest.param(["records", "audit", "--format", "xml"], "--format", id="format"),
    pytest.param(["records", "audit", "--outcome", "maybe"], "--outcome", id="outcome"),
    pytest.param(["records", "audit", "--since", "yesterday"], "--since", id="since-garbage"),
    pytest.param(["records", "audit", "--since", "2026-01-01T00:00:00"], "no time zone",
                 id="since-naive"),
    pytest.param(["records", "costs", "--until", "2026-01-01"], "no time zone", id="until-naive"),
    pytest.param(["records", "audit", "--since", "99999999w"], "--since", id="since-overflow"),
    pytest.param(["records", "audit", "--since", "1h", "--until", "2h"], "must be before",
                 id="since-after-until"),
    pytest.param(["records", "audit", "--cursor", "not-a-cursor"], "malformed cursor", id="cursor"),
    pytest.param(["records", "sandbox-events", "--actor", "alice"], "--actor",
                 id="actor-on-sandbox-events"),
    pytest.param(["records", "costs", "--phase", "Running"], "--phase", id="phase-on-costs"),
    pytest.param(["records", "audit", "--phase", "Running"], "--phase", id="phase-on-audit"),
    pytest.param(["records", "costs", "--group-by", "pod"], "--group-by", id="group-by-value"),
    pytest.param(["records", "costs", "--group-by", "sandbox", "--limit", "5"], "not paged",
                 id="group-by-with-limit"),
    pytest.param(["records", "costs", "--group-by", "sandbox", "--all"], "not paged",
                 id="group-by-with-all"),
    pytest.param(["records", "nope"], "nope", id="unknown-command"),
    pytest.param(["db", "check", "--dsn", "foo://u:s3cret@host/db"], "--dsn", id="dsn-scheme"),
    pytest.param(["db", "check", "--dsn", "postgresql://u:s3cret@host:notaport/db"], "--dsn",
                 id="dsn-malformed"),
]


@pytest.mark.parametrize(("args", "mentions"), BAD_FLAGS)
def test_a_bad_flag_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], mentions: str
) -> None:
    # Storage is configured, so the flag, not a missing URL, is what fails.
    result = run(*args, env={"STORAGE_DSN": f"sqlite:///{tmp_path / 'store.db'}"})

    assert result.code == 2
    assert result.stdout == ""
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert line.startswith(PREFIX)
    assert mentions in line
    assert "--help" in line  # points at the help of the command that was mistyped
    assert "no storage" not in line
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["db", "check"],
        ["db", "upgrade"],
        ["records", "audit"],
        ["records", "sandbox-events", "--format", "json"],
        ["records", "costs", "--group-by", "namespace"],
        ["records", "audit", "--dsn", ""],
    ],
    ids=lambda args: " ".join(args),
)
def test_no_storage_configured_is_one_clear_line(args: list[str]) -> None:
    result = run(*args)

    assert result.code == 2
    assert result.stdout == ""
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith(f"{PREFIX}no storage is configured")
    assert "STORAGE_DSN" in result.stderr


UNREACHABLE = [
    "postgresql://u:s3cret@127.0.0.1:1/x",
    "mysql://u:s3cret@127.0.0.1:1/x",
]
COMMANDS = [
    ["db", "check"],
    ["db", "upgrade"],
    ["records", "audit"],
    ["records", "sandbox-events", "--format", "csv"],
    ["records", "costs", "--group-by", "sandbox"],
]


@pytest.mark.parametrize("url", UNREACHABLE, ids=["postgresql", "mysql"])
def test_unreachable_database_fails_with_one_masked_line(url: str) -> None:
    for command in COMMANDS:
        for result in (run(*command, "--dsn", url), run(*command, env={"STORAGE_DSN": url})):
            assert result.code == 1, command
            assert "s3cret" not in result.stdout + result.stderr
            assert result.stdout == ""
            assert len(result.error_lines) == 1, result.stderr
            line = result.error_lines[0]
            assert line.startswith("agenttier-router: ")
            assert "u:***@127.0.0.1:1" in line
            assert "refused" in line.lower()


def test_a_malformed_url_in_the_environment_fails_with_exit_1() -> None:
    result = run("records", "audit", env={"STORAGE_DSN": "foo://u:s3cret@host/db"})

    assert result.code == 1
    assert len(result.error_lines) == 1
    assert "environment" in result.stderr and "unsupported storage URL scheme" in result.stderr
    assert "s3cret" not in result.stderr


def test_bare_group_prints_its_help() -> None:
    for args in ([], ["records"], ["db"]):
        result = run(*args)
        assert result.code == 2
        assert "Usage: agenttier-router" in result.stderr
        assert "Commands:" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.code == 0
    assert result.stdout.startswith("agenttier-router, version ")


def test_moment_reads_durations_and_zoned_rfc3339() -> None:
    moment = Moment()
    now = datetime.now(UTC)
    # Tolerance for a slow machine, not a timing assertion.
    for text, delta in [
        ("24h", timedelta(hours=24)),
        ("2W", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("7d", timedelta(days=7)),
    ]:
        assert abs(moment.convert(text, None, None) - (now - delta)) < timedelta(minutes=5)
    assert moment.convert("2026-11-26T17:00:00.5Z", None, None) == datetime(
        2026, 11, 26, 17, 0, 0, 500000, tzinfo=UTC
    )
    assert moment.convert("2026-11-26T19:00:00+02:00", None, None) == datetime(
        2026, 11, 26, 17, tzinfo=UTC
    )
    for bad in ("2026-11-26T17:00:00", "2026-11-26", "7 days", "-1h", ""):
        with pytest.raises(click.BadParameter):
            moment.convert(bad, None, None)


class _LeakyBackend:
    """A backend whose error carries a password and two lines, which no real backend does.

    A fake, because the point is the CLI's own guard against a library bug
    that the real backends (tested above) do not have.
    """

    def list_audit_events(self, query: AuditFilter) -> Page[AuditEvent]:
        raise BackendUnavailable("read: failed\nat postgresql://u:s3cret@db.example:5432/x")

    def close(self) -> None:
        """Nothing to release."""


def test_a_leaked_password_or_second_line_is_still_caught(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(options, "open_backend", lambda url: _LeakyBackend())

    result = run("records", "audit", "--dsn", "postgresql://u:s3cret@db.example:5432/x")

    assert result.code == 1
    assert "s3cret" not in result.stderr
    assert result.error_lines == [
        "agenttier-router: postgresql://u:***@db.example:5432/x: read: failed "
        "at postgresql://u:***@db.example:5432/x"
    ]


def test_a_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "agentier.db"
    for command in (["records", "audit"], ["records", "costs", "--group-by", "sandbox"],
                    ["db", "check"]):
        result = run(*command, "--dsn", f"sqlite:///{typo}")
        assert result.code == 1, command
        assert "no SQLite database at" in result.stderr
        assert not typo.exists(), command
    result = run("db", "upgrade", "--dsn", f"sqlite:///{typo}")
    assert result.code == 0, result.stderr
    assert typo.exists()
