"""``/records/sandbox-events``, ``/records/costs`` (and ``?groupBy=``) and ``/analytics/costs``.

The history: alice's ``sb-a`` (general-coding, namespace default) and ``sb-b``
(minimal, namespace team-a) each run and stop once, so each has exactly one
cost snapshot, whose value the tests recompute from the stored transitions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from router_helpers import (
    Router,
    config_for,
    running_router,
    stored_costs,
    stored_sandbox_events,
    wait_phase,
)

from agenttier_router.storage import parse_ts

LIFE = [("Creating", "Created"), ("Running", "Started"), ("Stopped", "Stopped")]


@dataclass
class History:
    router: Router
    admin: httpx.Client
    store_url: str

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.admin.get(path, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def history(store_url: str, tmp_path: Path) -> Iterator[History]:
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("general-coding", "sb-a")
        alice.create_sandbox("minimal", "sb-b", namespace="team-a")
        for name in ("sb-a", "sb-b"):
            wait_phase(alice, name)
            alice.get_sandbox(name).stop()
        # Reads wait only briefly for records still queued; on a loaded machine, more.
        assert router.state.recorder.flush(10)
        yield History(router, router.http("carol"), store_url)


def test_sandbox_events(history: History) -> None:
    body = history.get("/records/sandbox-events", sandbox="sb-a")
    assert body["nextCursor"] is None
    events = body["events"]
    assert [(e["phase"], e["reason"]) for e in reversed(events)] == LIFE
    stored = stored_sandbox_events(history.store_url, sandbox_id="sb-a")
    assert [e["eventId"] for e in reversed(events)] == [e.event_id for e in stored]
    for event in events:
        assert (event["sandboxId"], event["sandboxName"], event["namespace"]) == (
            "sb-a", "sb-a", "default")
        assert event["message"] == ""
    everything = history.get("/records/sandbox-events")["events"]
    assert len(everything) == 6
    times = [parse_ts(e["timestamp"]) for e in everything]
    assert times == sorted(times, reverse=True)
    team = history.get("/records/sandbox-events", namespace="team-a")["events"]
    assert {e["sandboxId"] for e in team} == {"sb-b"} and len(team) == 3
    running = history.get("/records/sandbox-events", phase="Running")["events"]
    assert sorted(e["sandboxId"] for e in running) == ["sb-a", "sb-b"]
    since = events[1]["timestamp"]  # sb-a's Started
    later = history.get("/records/sandbox-events", sandbox="sb-a", since=since)["events"]
    assert [e["reason"] for e in later] == ["Stopped", "Started"]
    earlier = history.get("/records/sandbox-events", sandbox="sb-a", until=since)["events"]
    assert [e["reason"] for e in earlier] == ["Created"]
    first = history.get("/records/sandbox-events", limit=4)
    second = history.get("/records/sandbox-events", limit=4, cursor=first["nextCursor"])
    assert second["nextCursor"] is None
    assert first["events"] + second["events"] == everything


def _expected_cpu_hours(history: History, name: str, cpu: float) -> float:
    stored = stored_sandbox_events(history.store_url, sandbox_id=name)
    started = next(e for e in stored if e.phase == "Running")
    stopped = next(e for e in stored if e.phase == "Stopped")
    return cpu * ((stopped.time - started.time) / timedelta(hours=1))


def test_cost_snapshots(history: History) -> None:
    body = history.get("/records/costs")
    assert body["nextCursor"] is None
    # One snapshot per minute-aligned bucket a sandbox ran in: one, or two across a minute.
    shown = body["snapshots"]
    assert {s["sandboxId"] for s in shown} == {"sb-a", "sb-b"}
    assert {s["namespace"] for s in shown if s["sandboxId"] == "sb-b"} == {"team-a"}
    for name, cpu in (("sb-a", 0.5), ("sb-b", 0.25)):
        assert sum(s["cpuHours"] for s in shown if s["sandboxId"] == name) == pytest.approx(
            _expected_cpu_hours(history, name, cpu), rel=1e-9, abs=0)
    stored = {s.event_id: s for s in stored_costs(history.store_url)}
    assert {s["eventId"] for s in shown} == set(stored)
    for snapshot in shown:
        assert snapshot["estimatedUsd"] == stored[snapshot["eventId"]].estimated_usd
        assert snapshot["memGbHours"] == stored[snapshot["eventId"]].mem_gb_hours
    only = history.get("/records/costs", namespace="team-a")["snapshots"]
    assert [s["sandboxId"] for s in only] == ["sb-b"]
    first = history.get("/records/costs", limit=1)
    second = history.get("/records/costs", limit=1, cursor=first["nextCursor"])
    assert second["nextCursor"] is None
    assert first["snapshots"] + second["snapshots"] == body["snapshots"]


def test_cost_totals_by_sandbox_and_namespace(history: History) -> None:
    by_sandbox = history.get("/records/costs", groupBy="sandbox")  # waits for the recorder
    stored = stored_costs(history.store_url)  # one or two per sandbox (minute buckets)
    mine = {key: [s for s in stored if f"{s.namespace}/{s.sandbox_id}" == key]
            for key in ("default/sb-a", "team-a/sb-b")}
    assert by_sandbox["groupBy"] == "sandbox"
    assert (by_sandbox["since"], by_sandbox["until"]) == (None, None)
    totals = {t["key"]: t for t in by_sandbox["totals"]}
    assert set(totals) == set(mine)
    for name, total in totals.items():
        assert total["samples"] == len(mine[name])
        assert total["cpuHours"] == pytest.approx(sum(s.cpu_hours for s in mine[name]),
                                                  rel=1e-12)
        assert total["estimatedUsd"] == pytest.approx(sum(s.estimated_usd for s in mine[name]),
                                                      rel=1e-12)
    usd = sum(s.estimated_usd for s in stored)
    assert by_sandbox["totalUsd"] == pytest.approx(usd, rel=1e-12)
    # The most expensive first: general-coding costs more than minimal over similar times.
    costs = [t["estimatedUsd"] for t in by_sandbox["totals"]]
    assert costs == sorted(costs, reverse=True)

    by_namespace = history.get("/records/costs", groupBy="namespace", sandbox="sb-b")
    assert [t["key"] for t in by_namespace["totals"]] == ["team-a"]
    # The Router fills in whom and what each cost belongs to.
    by_owner = history.get("/records/costs", groupBy="owner")
    assert {t["key"] for t in by_owner["totals"]} == {s.owner for s in stored}
    assert "" not in {s.owner for s in stored}
    sb_b = mine["team-a/sb-b"][0]
    by_template = history.get("/records/costs", groupBy="template", owner=sb_b.owner,
                              namespace="team-a")
    assert [t["key"] for t in by_template["totals"]] == [sb_b.template]
    future = history.get("/records/costs", groupBy="sandbox", since="2999-01-01T00:00:00Z")
    assert (future["totals"], future["totalUsd"]) == ([], 0)
    paged = history.admin.get("/records/costs", params={"groupBy": "sandbox",
                                                       "cursor": "abc"})
    assert paged.status_code == 400
    assert "cursor" in paged.json()["error"]
    bad = history.admin.get("/records/costs", params={"groupBy": "pod"})
    assert bad.status_code == 400
    assert "groupBy" in bad.json()["error"]


def test_cost_analytics(history: History) -> None:
    body = history.get("/analytics/costs")  # waits for the recorder
    snapshots = stored_costs(history.store_url)
    assert body["groupBy"] == "sandbox"
    assert body["since"] is not None and body["until"] is None  # the last 30 days by default
    assert {t["key"] for t in body["totals"]} == {"default/sb-a", "team-a/sb-b"}
    assert body["totalUsd"] == pytest.approx(sum(s.estimated_usd for s in snapshots), rel=1e-12)
    namespaces = history.get("/analytics/costs", groupBy="namespace")
    per_namespace = Counter(s.namespace for s in snapshots)  # one or two per sandbox
    assert {t["key"]: t["samples"] for t in namespaces["totals"]} == dict(per_namespace)
    team = history.get("/analytics/costs", namespace="team-a")
    assert [t["key"] for t in team["totals"]] == ["team-a/sb-b"]
    old = history.get("/analytics/costs", until="2000-01-01T00:00:00Z")
    assert old["totals"] == []
    # The default window starts 30 days before `until`, or at the start of time.
    ancient = history.get("/analytics/costs", until="0001-01-05T00:00:00Z")
    assert (ancient["since"], ancient["totals"]) == ("0001-01-01T00:00:00.000000Z", [])
    for since in ("last week", "0001-01-01T00:00:00+01:00"):  # the latter is before year 1
        bad = history.admin.get("/analytics/costs", params={"since": since})
        assert bad.status_code == 400, bad.text
        assert "since" in bad.json()["error"]
