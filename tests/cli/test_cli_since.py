"""The API's ``since`` and ``until`` read the same relative forms as the CLI's (issue 9).

``records audit --since 24h`` worked, and ``GET /audit/events?since=24h`` was a 422.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cli_helpers import run, seed, serving

from agenttier_router.storage.filters import duration_before

ADMIN_KEY = "admin-key-0123456789abcdef"


def test_duration_before_reads_the_cli_forms() -> None:
    now = datetime(2026, 11, 26, 17, tzinfo=UTC)
    assert duration_before("24h", now) == now - timedelta(hours=24)
    assert duration_before(" 7D ", now) == now - timedelta(days=7)
    assert duration_before("90s", now) == now - timedelta(seconds=90)
    assert duration_before("2w", now) == now - timedelta(weeks=2)
    assert duration_before("2026-11-26T17:00:00Z", now) is None
    assert duration_before("-1h", now) is None
    with pytest.raises(ValueError, match="further back"):
        duration_before("99999999w", now)


def test_the_api_and_the_cli_read_since_24h_alike(tmp_path: Path) -> None:
    url = seed(f"sqlite:///{tmp_path / 'since.db'}")
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"- key: {ADMIN_KEY}\n  subject: carol\n  groups: [agenttier-admins]\n",
                    encoding="utf-8")
    with serving(tmp_path, "--api-keys", str(keys), "--storage", url) as served:
        def get(path: str, **params: str) -> httpx.Response:
            return httpx.get(f"{served.url}/api/v1/{path}", params=params,
                             headers={"X-API-Key": ADMIN_KEY}, timeout=30)

        day = get("audit/events", since="24h")
        week = get("audit/events", since="7d", until="1h")
        costs = get("analytics/costs", since="30d")
        events = get("records/sandbox-events", since="1h")
        too_far = get("audit/events", since="99999999w")
        garbage = get("audit/events", since="yesterday")

    assert day.status_code == 200, day.text
    assert [e["eventId"] for e in day.json()["events"]] == ["a1", "a2"]
    cli = run("records", "audit", "--dsn", url, "--since", "24h", "--format", "json")
    rows = json.loads(cli.stdout)
    # the GET /analytics/costs above is itself recorded (issue 12): the CLI sees it too
    assert [row["action"] for row in rows if row["event_id"] not in ("a1", "a2")] == [
        "analytics.costs"]
    assert [row["event_id"] for row in rows if row["action"] != "analytics.costs"] == ["a1", "a2"]
    assert [e["eventId"] for e in week.json()["events"]] == ["a2", "a3"]
    assert costs.status_code == 200 and costs.json()["totals"]
    assert [e["eventId"] for e in events.json()["events"]] == ["s1", "s2"]
    for refused in (too_far, garbage):
        assert refused.status_code == 400
        assert "since" in refused.json()["error"]
        assert "24h" in refused.json()["error"]  # says which forms it takes
