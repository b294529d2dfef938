"""Every storage URL that cannot be used is one line naming the expected forms (issue 9).

``serve --storage sqlite://agenttier.db`` (two slashes, a common typo) used to
crash with a traceback; the CLI's reading commands did the same.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cli_helpers import run, serving

from agenttier_router.storage import InvalidURL, open_backend

BAD_URLS = [
    pytest.param("sqlite://agenttier.db", "two slashes", id="sqlite-two-slashes"),
    pytest.param("sqlite://./agenttier.db", "two slashes", id="sqlite-dot"),
    pytest.param("sqlite://:memory:", "sqlite:///", id="sqlite-memory-typo"),
    pytest.param("sqlite:///x.db?timeout=abc", "query value", id="sqlite-bad-query"),
    pytest.param("mysql://u:S3cret@h/db?connect_timeout=abc", "query value", id="mysql-bad-query"),
    pytest.param("postgresql://u:S3cret@h:99999/db", "out of range", id="pg-port-range"),
    pytest.param("postgresql://u:S3cret@h:port/db", "port", id="pg-port-text"),
    pytest.param("postgresql://u:S3cret@h", "names no database", id="pg-no-database"),
    pytest.param("oracle://u:S3cret@h/db", "sqlite:///", id="unknown-scheme"),
]


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
def test_open_backend_raises_invalid_url_naming_the_forms(url: str, says: str) -> None:
    with pytest.raises(InvalidURL) as raised:
        open_backend(url)
    message = str(raised.value)
    assert says in message
    assert "\n" not in message
    assert "S3cret" not in message
    assert "sqlite:///" in message or "://user" in message  # the expected form


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
def test_the_cli_says_so_in_one_line(url: str, says: str) -> None:
    for command in (["db", "check"], ["records", "audit"]):
        flag = run(*command, "--dsn", url)
        env = run(*command, env={"STORAGE_DSN": url})
        assert (flag.code, env.code) == (2, 1), flag.stderr + env.stderr
        for result in (flag, env):
            assert len(result.error_lines) == 1, result.stderr
            assert says in result.stderr
            assert "S3cret" not in result.stderr
            assert "Traceback" not in result.stderr


def test_serve_with_a_two_slash_sqlite_url_serves_and_reports_storage(tmp_path: Path) -> None:
    with serving(tmp_path, "--dev-auth", "--storage", "sqlite://agenttier.db") as served:
        ready = httpx.get(f"{served.url}/readyz", timeout=10)
        log = served.log()
    assert "two slashes" in ready.text
    assert ready.status_code == 200  # the Router serves on
    assert ready.json()["storage"]["state"] in ("misconfigured", "failing")
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "two slashes" in line]
    assert len(lines) == 1 and "sqlite:////absolute/file.db" in lines[0]
    assert not (tmp_path / "agenttier.db").exists()
