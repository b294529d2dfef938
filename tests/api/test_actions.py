"""Every action a user takes with the SDK leaves exactly the expected records in the database.

Each test runs a real Router on a real port against a fresh database on each
backend, drives it with the published ``agenttier`` SDK (plain HTTP for
sharing, which the SDK lacks), shuts the Router down so its recorder drains,
and then reads the database directly with the storage backend.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from agenttier.exceptions import NotFoundError
from router_helpers import (
    config_for,
    eventually,
    running_router,
    stored_audit,
    stored_costs,
    stored_sandbox_events,
    wait_phase,
)

from agenttier_router.costs import PriceTable

HOUR = timedelta(hours=1)
GENERAL = (0.5, 1.0)  # general-coding: vCPU, GiB
PRICES = PriceTable()


def _hours(delta: timedelta) -> float:
    return delta / HOUR


def test_every_action_is_recorded_once_with_its_details(store_url: str, tmp_path: Path) -> None:
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        sandbox = alice.create_sandbox("general-coding", "sb-actions")
        wait_phase(alice, "sb-actions")
        result = sandbox.exec("echo hello; echo oops >&2; exit 3")
        assert (result.stdout, result.stderr, result.exit_code) == ("hello\n", "oops\n", 3)
        sandbox.stop()
        assert sandbox.status().status == "Stopped"
        sandbox.resume()
        assert sandbox.status().status == "Running"
        http = router.http("alice")
        shared = http.post("/sandboxes/sb-actions/share",
                           json={"identity": "bob", "level": "viewer", "kind": "user"})
        assert shared.status_code == 200, shared.text
        assert shared.json() == {"users": [{"identity": "bob", "level": "viewer"}],
                                 "groups": [], "shareLinks": []}
        unshared = http.delete("/sandboxes/sb-actions/share/bob")
        assert unshared.status_code == 200, unshared.text
        assert unshared.json()["users"] == []
        sandbox.terminate()
        with pytest.raises(NotFoundError):
            alice.get_sandbox("sb-actions")

    # The Router has shut down, so its recorder has drained into the database.
    events = stored_audit(store_url)
    assert [(e.action, e.outcome) for e in events] == [
        ("create", "success"), ("exec", "success"), ("stop", "success"),
        ("resume", "success"), ("share", "success"), ("unshare", "success"),
        ("delete", "success"),
    ]
    details = {}
    for event in events:
        assert (event.actor, event.sandbox_id, event.namespace, event.resource) == (
            "alice", "sb-actions", "default", "sandbox")
        details[event.action] = json.loads(event.details)
        assert details[event.action]["email"] == "alice@example.com"
    assert details["create"]["template"] == "general-coding"
    assert details["exec"]["command"] == "echo hello; echo oops >&2; exit 3"
    assert details["exec"]["exitCode"] == 3
    assert details["share"] == {"email": "alice@example.com", "identity": "bob",
                                "level": "viewer", "kind": "user"}
    assert details["unshare"]["identity"] == "bob"
    assert len({e.event_id for e in events}) == len(events)

    transitions = stored_sandbox_events(store_url, sandbox_id="sb-actions")
    assert [(t.phase, t.reason) for t in transitions] == [
        ("Creating", "Created"), ("Running", "Started"), ("Stopped", "Stopped"),
        ("Running", "Resumed"), ("Deleting", "Deleting"), ("Deleting", "Deleted"),
    ]
    assert all(t.namespace == "default" and t.sandbox_name == "sb-actions" for t in transitions)
    _, started, stopped, resumed, deleting, _ = transitions

    # Buckets of 60 s, aligned on the minute: each running stretch gets one snapshot per
    # minute it touches (one, or two across a minute's edge), the last one ending when the
    # sandbox stops or is deleted; together, exactly its running time x rates.
    costs = stored_costs(store_url, sandbox_id="sb-actions")
    first = [c for c in costs if c.time <= stopped.time]
    second = [c for c in costs if c.time > stopped.time]
    assert first[-1].time == stopped.time and second[-1].time == deleting.time
    assert 1 <= len(first) <= 2 and 1 <= len(second) <= 2
    for pieces, (begin, end) in zip((first, second), [(started, stopped), (resumed, deleting)],
                                    strict=True):
        hours = _hours(end.time - begin.time)
        assert all(c.namespace == "default" for c in pieces)
        cpu = sum(c.cpu_hours for c in pieces)
        assert cpu == pytest.approx(GENERAL[0] * hours, rel=1e-9, abs=0)
        assert sum(c.mem_gb_hours for c in pieces) == pytest.approx(GENERAL[1] * hours,
                                                                     rel=1e-9, abs=0)
        usd = (GENERAL[0] * PRICES.cpu_per_vcpu_hour + GENERAL[1] * PRICES.memory_per_gib_hour)
        assert sum(c.estimated_usd for c in pieces) == pytest.approx(usd * hours,
                                                                      rel=1e-9, abs=0)


def test_periodic_cost_snapshots_add_up_to_the_running_time(
    store_url: str, tmp_path: Path
) -> None:
    with running_router(config_for(tmp_path, store_url, cost_interval=0.05)) as router:
        alice = router.client("alice")
        sandbox = alice.create_sandbox("minimal", "sb-ticks")
        wait_phase(alice, "sb-ticks")
        carol = router.http("carol")

        def three_snapshots() -> bool:
            page = carol.get("/records/costs", params={"sandbox": "sb-ticks"}).json()
            return len(page["snapshots"]) >= 3

        eventually(three_snapshots, "three periodic cost snapshots")
        sandbox.stop()
        assert router.state.recorder.flush(10)
        after_stop = len(stored_costs(store_url, sandbox_id="sb-ticks"))
    # Stopped: no more snapshots for it, even though the sampler kept ticking until shutdown.
    costs = stored_costs(store_url, sandbox_id="sb-ticks")
    assert len(costs) == after_stop
    transitions = stored_sandbox_events(store_url, sandbox_id="sb-ticks")
    started = next(t for t in transitions if t.phase == "Running")
    stopped = next(t for t in transitions if t.phase == "Stopped")
    # The snapshots are contiguous: each covers the time since the previous one.
    begin = started.time
    for snapshot in costs:
        hours = _hours(snapshot.time - begin)
        assert snapshot.cpu_hours == pytest.approx(0.25 * hours, rel=1e-9, abs=0)
        assert snapshot.mem_gb_hours == pytest.approx(0.25 * hours, rel=1e-9, abs=0)
        begin = snapshot.time
    # ... and they end at the stop (a tick racing the stop's delivery may end a hair later).
    assert costs[-1].time >= stopped.time
    total = sum(c.cpu_hours for c in costs)
    assert total == pytest.approx(0.25 * _hours(costs[-1].time - started.time), rel=1e-9, abs=0)


def test_a_sandbox_running_at_shutdown_gets_a_final_snapshot(
    store_url: str, tmp_path: Path
) -> None:
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("general-coding", "sb-left-running")
        wait_phase(alice, "sb-left-running")
    transitions = stored_sandbox_events(store_url, sandbox_id="sb-left-running")
    started = next(t for t in transitions if t.phase == "Running")
    costs = stored_costs(store_url, sandbox_id="sb-left-running")
    assert len(costs) == 1
    assert costs[0].time > started.time
    hours = _hours(costs[0].time - started.time)
    assert costs[0].cpu_hours == pytest.approx(0.5 * hours, rel=1e-9, abs=0)
