"""Keyless callers cannot flood the history (issue 9, item 6).

Their denials are still recorded, but the fields they chose are capped, and
repeats are folded: per source address and reason, the first attempt of an
interval is recorded at once, the rest as one record with a count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from router_helpers import config_for, eventually, running_router, stored_audit, wait_phase

from agenttier_router.service.anonymous import FIELD_LIMIT


def test_a_keyless_flood_leaves_two_records_with_the_count(
    tmp_path: Path, store_url: str
) -> None:
    config = config_for(tmp_path, store_url, anonymous_interval=3600.0)
    with running_router(config) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-f")
        wait_phase(alice, "sb-f")
        anonymous = router.http()
        long_name = "sb-" + "x" * 240
        for _ in range(60):
            assert anonymous.post("/sandboxes/sb-f/exec",
                                  json={"command": "x" * 5000}).status_code == 401
            assert anonymous.get("/audit/events").status_code == 401
            assert anonymous.delete(f"/sandboxes/{long_name}").status_code == 401
        router.state.recorder.flush(10)
        [first] = stored_audit(store_url, actor="anonymous")
        assert first.action == "exec" and json.loads(first.details)["source"] == "127.0.0.1"
        # Authenticated denials are never folded.
        for _ in range(3):
            assert router.http("bob").get("/audit/events").status_code == 403
        router.state.recorder.flush(10)
        assert len(stored_audit(store_url, actor="bob")) == 3
    # Shutting down records what was folded.
    records = stored_audit(store_url, actor="anonymous")
    assert len(records) == 2
    folded = json.loads(records[1].details)
    assert folded["count"] == 179 and folded["folded"] is True
    assert folded["actions"] == {"exec": 59, "read": 60, "delete": 60}
    assert (folded["source"], folded["reason"]) == ("127.0.0.1", "no valid API key")
    for record in records:
        assert len(record.details) < 1000
        assert all(len(v) <= FIELD_LIMIT for v in json.loads(record.details).values()
                   if isinstance(v, str))


def test_each_interval_gets_its_own_records(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'i.db'}"
    with running_router(config_for(tmp_path, store, anonymous_interval=1.0)) as router:
        anonymous = router.http()
        for _ in range(10):
            anonymous.get("/records/costs")
        time.sleep(1.1)
        anonymous.get("/records/costs")  # opens the next window; the last one is recorded
        router.state.recorder.flush(10)
        counts = eventually(
            lambda: [json.loads(r.details).get("count") for r in stored_audit(store)]
            if len(stored_audit(store)) == 3 else None, "3 records")
        assert sorted(counts, key=str) == [9, None, None]
