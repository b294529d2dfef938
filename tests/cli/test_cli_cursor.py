"""A cursor whose row id overflows 64 bits is a bad cursor, not a database error (issue 9, 15)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cli_helpers import run, seed, serving

from agenttier_router.storage import AuditFilter, InvalidQuery, format_ts
from agenttier_router.storage.filters import decode_cursor, encode_cursor

TS = format_ts(datetime(2026, 11, 26, 17, tzinfo=UTC))
OVERFLOW = [encode_cursor(TS, 2**63), encode_cursor(TS, 2**64 + 5), encode_cursor(TS, 10**40)]
ADMIN_KEY = "admin-key-0123456789abcdef"


def test_the_largest_row_id_is_a_cursor_and_one_more_is_not() -> None:
    assert decode_cursor(encode_cursor(TS, 2**63 - 1)) == (TS, 2**63 - 1)
    for cursor in OVERFLOW:
        with pytest.raises(InvalidQuery, match="cursor"):
            AuditFilter(cursor=cursor)


def test_the_cli_refuses_an_overflowing_cursor_in_one_line(store_url: str) -> None:
    seed(store_url)
    for command in (["records", "audit"], ["records", "sandbox-events"], ["records", "costs"]):
        for cursor in OVERFLOW:
            result = run(*command, "--dsn", store_url, "--cursor", cursor)
            assert result.code == 2, result.stderr
            assert result.stdout == ""
            assert len(result.error_lines) == 1, result.stderr
            assert "'--cursor'" in result.error_lines[0]
            assert "malformed cursor" in result.error_lines[0]


def test_the_api_answers_400_naming_cursor(store_url: str, tmp_path: Path) -> None:
    seed(store_url)
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"- key: {ADMIN_KEY}\n  subject: carol\n  groups: [agenttier-admins]\n",
                    encoding="utf-8")
    with serving(tmp_path, "--api-keys", str(keys), "--storage", store_url) as served:
        for path in ("audit/events", "records/sandbox-events", "records/costs"):
            for cursor in OVERFLOW:
                response = httpx.get(f"{served.url}/api/v1/{path}", params={"cursor": cursor},
                                     headers={"X-API-Key": ADMIN_KEY}, timeout=30)
                assert response.status_code == 400, (path, response.text)
                assert "cursor" in response.json()["error"]
