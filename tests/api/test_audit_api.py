"""``GET /api/v1/audit/events``: the SDK's AuditEvent shape, from the store, newest first.

Every test runs against a fresh database on each backend, with a small history
made through the API: alice's two sandboxes in two namespaces, an exec, a stop,
bob's denied exec and carol's sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from agenttier.models import AuditEvent as SdkAuditEvent
from router_helpers import Router, config_for, running_router, wait_phase

from agenttier_router.storage import AuditEvent, open_backend, parse_ts

HISTORY = [  # (actor, action, sandbox, namespace, outcome), oldest first
    ("alice", "create", "sb-a", "default", "success"),
    ("alice", "create", "sb-b", "team-a", "success"),
    ("alice", "exec", "sb-a", "default", "success"),
    ("alice", "stop", "sb-b", "team-a", "success"),
    ("bob", "exec", "sb-a", "", "denied"),
    ("carol", "create", "sb-c", "default", "success"),
]


@dataclass
class History:
    router: Router
    admin: httpx.Client
    store_url: str

    def events(self, **params: Any) -> list[dict[str, Any]]:
        response = self.admin.get("/audit/events", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"events", "nextCursor"}
        events: list[dict[str, Any]] = body["events"]
        return events


def _key(event: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (event["actor"], event["eventType"], event["sandboxId"], event["namespace"],
            event["outcome"])


@pytest.fixture
def history(store_url: str, tmp_path: Path) -> Iterator[History]:
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("general-coding", "sb-a")
        alice.create_sandbox("minimal", "sb-b", namespace="team-a")
        wait_phase(alice, "sb-a")
        wait_phase(alice, "sb-b")
        alice.get_sandbox("sb-a").exec("echo one")
        alice.get_sandbox("sb-b").stop()
        bob = router.http("bob")
        assert bob.post("/sandboxes/sb-a/exec", json={"command": "id"}).status_code == 404
        router.client("carol").create_sandbox("minimal", "sb-c")
        # Reads wait only briefly for records still queued; on a loaded machine, more.
        assert router.state.recorder.flush(10)
        yield History(router, router.http("carol"), store_url)


def test_shape_order_and_contents(history: History) -> None:
    events = history.events()
    assert [_key(e) for e in events] == list(reversed(HISTORY))
    for event in events:
        parsed = SdkAuditEvent.model_validate(event)
        assert parsed.timestamp is not None and parsed.timestamp.tzinfo is not None
        assert parsed.event_type == event["eventType"]
        assert parsed.sandbox_id == parsed.sandbox_name == event["sandboxId"]
        assert isinstance(parsed.details, dict)
        assert parsed.user_email == f"{event['actor']}@example.com"
        assert parsed.details["email"] == parsed.user_email
        assert event["resource"] == "sandbox"
        assert len(event["eventId"]) > 0
    times = [parse_ts(e["timestamp"]) for e in events]
    assert times == sorted(times, reverse=True)
    by_action = {(e["actor"], e["eventType"]): e["details"] for e in events}
    assert by_action["alice", "exec"]["command"] == "echo one"
    assert by_action["alice", "exec"]["exitCode"] == 0
    assert by_action["carol", "create"]["template"] == "minimal"
    assert by_action["bob", "exec"]["reason"] == "sandbox 'sb-a' not found"


FILTERS: list[tuple[dict[str, str], list[tuple[str, ...]]]] = [
    ({"actor": "alice"}, [h for h in HISTORY if h[0] == "alice"]),
    ({"sandbox": "sb-a"}, [h for h in HISTORY if h[2] == "sb-a"]),
    ({"action": "create"}, [h for h in HISTORY if h[1] == "create"]),
    ({"namespace": "team-a"}, [h for h in HISTORY if h[3] == "team-a"]),
    ({"outcome": "denied"}, [h for h in HISTORY if h[4] == "denied"]),
    ({"actor": "alice", "action": "exec", "sandbox": "sb-a"}, [HISTORY[2]]),
    ({"actor": "nobody"}, []),
]


def test_filters(history: History) -> None:
    for params, expected in FILTERS:
        assert [_key(e) for e in history.events(**params)] == list(reversed(expected)), params


def test_since_is_inclusive_and_until_exclusive(history: History) -> None:
    events = list(reversed(history.events()))  # oldest first
    middle = events[2]["timestamp"]
    assert [_key(e) for e in history.events(since=middle)] == list(reversed(HISTORY[2:]))
    assert [_key(e) for e in history.events(until=middle)] == list(reversed(HISTORY[:2]))
    window = history.events(since=events[1]["timestamp"], until=events[4]["timestamp"])
    assert [_key(e) for e in window] == list(reversed(HISTORY[1:4]))
    offset = parse_ts(middle).astimezone(timezone(timedelta(hours=2)))
    assert len(history.events(since=offset.isoformat())) == 4  # any zone is accepted


def test_limit_and_cursor_page_through_everything_once(history: History) -> None:
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = history.admin.get("/audit/events", params=params).json()
        assert len(body["events"]) <= 4
        seen += body["events"]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 2
    assert seen == history.events()
    filtered = history.admin.get("/audit/events", params={"actor": "alice", "limit": 2}).json()
    rest = history.admin.get("/audit/events", params={
        "actor": "alice", "limit": 2, "cursor": filtered["nextCursor"]}).json()
    assert [_key(e) for e in filtered["events"] + rest["events"]] == [
        _key(e) for e in history.events(actor="alice")]


def test_a_read_right_after_an_action_sees_it(history: History) -> None:
    sandbox = history.router.client("alice").get_sandbox("sb-a")
    for number in range(5):
        sandbox.exec(f"echo {number}")
        newest = history.events(limit=1)[0]  # no sleep: the read waits for the recorder
        assert (newest["eventType"], newest["details"]["command"]) == ("exec", f"echo {number}")
    http = history.router.http("alice")
    assert http.post("/sandboxes/sb-b/resume").status_code == 200
    assert _key(history.events(limit=1)[0]) == ("alice", "resume", "sb-b", "team-a", "success")


def test_details_that_are_not_json_come_back_as_text(history: History) -> None:
    backend = open_backend(history.store_url)
    try:
        backend.write_batch([
            AuditEvent(actor="go-router", action="create", sandbox_id="sb-old",
                       details="created by the Go Router"),
            AuditEvent(actor="go-router", action="exec", sandbox_id="sb-old", details="[1, 2]"),
            AuditEvent(actor="go-router", action="stop", sandbox_id="sb-old", details=""),
        ])
    finally:
        backend.close()
    events = {e["eventType"]: e for e in history.events(actor="go-router")}
    assert events["create"]["details"] == {"text": "created by the Go Router"}
    assert events["exec"]["details"] == {"text": "[1, 2]"}
    assert events["stop"]["details"] == {}
    assert events["create"]["userEmail"] == ""
    for event in events.values():
        SdkAuditEvent.model_validate(event)


BAD_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-01-01T00:00:00"}, "until"),  # no zone
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"outcome": "maybe"}, "outcome"),
    ({"actor": ""}, "actor"),
    ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # before year 1 in UTC
    ({"until": "9999-12-31T23:59:59-01:00"}, "until"),  # after year 9999 in UTC
]


def test_bad_filters_are_4xx_naming_the_field(history: History) -> None:
    for params, field in BAD_FILTERS:
        response = history.admin.get("/audit/events", params=params)
        assert 400 <= response.status_code < 500, (params, response.text)
        assert field in response.json()["error"], (params, response.text)
