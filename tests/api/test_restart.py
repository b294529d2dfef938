"""A Router restarted on the same data dir: its sandboxes come back, and its history is whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from router_helpers import (
    config_for,
    running_router,
    stored_costs,
    stored_sandbox_events,
    wait_phase,
)

from agenttier_router.controlplane import DEFAULT_TEMPLATES


def test_sandboxes_and_their_history_survive_a_restart(store_url: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, store_url)
    with running_router(config) as router:
        alice = router.client("alice")
        alice.create_sandbox(template="general-coding", name="keeps")
        wait_phase(alice, "keeps")
        router.http("alice").post("/sandboxes/keeps/exec",
                                  json={"command": "echo hi > kept.txt", "timeout": 10})
    phases = [(e.phase, e.reason) for e in stored_sandbox_events(store_url, sandbox_id="keeps")]
    assert phases[-1] == ("Stopped", "RouterShutdown")
    events = stored_sandbox_events(store_url, sandbox_id="keeps")
    ran = (events[-1].time - next(e.time for e in events if e.phase == "Running"))
    template = DEFAULT_TEMPLATES["general-coding"]
    costs = stored_costs(store_url, sandbox_id="keeps")
    assert costs, "the shutdown wrote the final cost snapshot"
    assert sum(c.cpu_hours for c in costs) == pytest.approx(
        template.cpu * ran.total_seconds() / 3600, rel=1e-9)

    with running_router(config) as router:
        http = router.http("alice")
        [listed] = http.get("/sandboxes").json()["sandboxes"]
        assert (listed["name"], listed["status"]) == ("keeps", "Stopped")
        assert http.post("/sandboxes/keeps/resume").status_code == 200
        wait_phase(router.client("alice"), "keeps")
        out = http.post("/sandboxes/keeps/exec", json={"command": "cat kept.txt", "timeout": 10})
        assert out.json()["stdout"] == "hi\n"
