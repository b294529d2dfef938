"""The local plane outlives its process: sandboxes come back, and what ran is ended and costed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from cp_helpers import NS, Transitions, running

from agenttier_router.controlplane import DEFAULT_TEMPLATES, LocalControlPlane, Phase
from agenttier_router.costs import CostSampler, PriceTable
from agenttier_router.storage import CostSnapshot


def test_a_clean_restart_brings_sandboxes_back_stopped(root: Path) -> None:
    first_seen = Transitions()
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, first_seen)
    ran = running(plane, "runs")
    running(plane, "rests")
    plane.stop("rests", NS)
    plane.share("runs", NS, "user", "bob", "collaborator")
    plane.exec("runs", NS, "echo kept > notes.txt", 10)
    plane.close()
    assert first_seen.of("runs")[-1] == (Phase.STOPPED, "RouterShutdown")

    again_seen = Transitions()
    again = LocalControlPlane(root, DEFAULT_TEMPLATES, again_seen)
    try:
        back = {s.name: s for s in again.list()}
        assert {n: s.phase for n, s in back.items()} == {"runs": Phase.STOPPED,
                                                          "rests": Phase.STOPPED}
        assert back["runs"].uid == ran.uid
        assert dict(back["runs"].shares.users) == {"bob": "collaborator"}
        assert again_seen.items == []  # nothing was left running: nothing to end
        again.resume("runs", NS)
        assert again.exec("runs", NS, "cat notes.txt", 10).stdout == "kept\n"
        # Transition ids go on from where the first process left them: none repeats.
        ids = [t.id for t in first_seen.items + again_seen.items if t.sandbox.name == "runs"]
        assert len(ids) == len(set(ids))
    finally:
        again.close()


def test_a_deleted_sandbox_stays_deleted(root: Path) -> None:
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, Transitions())
    running(plane, "gone")
    plane.delete("gone", NS)
    plane.close()
    again = LocalControlPlane(root, DEFAULT_TEMPLATES, Transitions())
    try:
        assert again.list() == []
    finally:
        again.close()


_KILLED = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from agenttier_router.controlplane import DEFAULT_TEMPLATES, LocalControlPlane, Phase
    from agenttier_router.controlplane import local
    local.HEARTBEAT = 0.05
    seen = []
    plane = LocalControlPlane(Path(sys.argv[1]), DEFAULT_TEMPLATES, seen.append)
    plane.create("sb", "team-a", "general-coding", "alice", "")
    while plane.get("sb", "team-a").phase is not Phase.RUNNING:
        time.sleep(0.01)
    started = next(t for t in seen if t.phase is Phase.RUNNING)
    time.sleep(0.3)  # a few heartbeats
    print(json.dumps({"id": started.id, "time": started.time.isoformat()}), flush=True)
    time.sleep(60)
""")


def test_after_a_kill_the_next_start_ends_the_stretch_and_costs_it(root: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", _KILLED, str(root)],
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            started = json.loads(child.stdout.readline())
        finally:
            os.kill(child.pid, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL

    snapshots: list[CostSnapshot] = []
    sampler = CostSampler(snapshots.append, PriceTable(), interval=3600)
    seen = Transitions()

    def sink(transition: object) -> None:
        seen(transition)  # type: ignore[arg-type]
        sampler.observe(transition)  # type: ignore[arg-type]

    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, sink)
    try:
        assert plane.get("sb", NS).phase is Phase.STOPPED
    finally:
        plane.close()
        sampler.close()
    again, stopped = seen.items
    # The running stretch is announced again under its own id (stored once), then ended.
    assert (again.phase, again.id) == (Phase.RUNNING, started["id"])
    assert again.time == datetime.fromisoformat(started["time"])
    assert (stopped.phase, stopped.reason) == (Phase.STOPPED, "RouterStopped")
    ran = (stopped.time - again.time).total_seconds()
    assert 0.25 <= ran < 30  # it ran for the child's heartbeats, ended at the last one
    template = DEFAULT_TEMPLATES["general-coding"]
    assert sum(s.cpu_hours for s in snapshots) == pytest.approx(template.cpu * ran / 3600,
                                                                rel=1e-9)
