"""The local plane's updates outlive its process, and a sandboxes file from before updates
existed still reads; an idle sandbox is stopped as a normal transition."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from cp_helpers import NS, Transitions, running, wait_for

from agenttier_router.controlplane import (
    DEFAULT_TEMPLATES,
    ExecResult,
    LocalControlPlane,
    Phase,
)
from agenttier_router.controlplane.base import Resources, SandboxChange
from agenttier_router.controlplane.localstate import STATE_FILE


def test_an_update_survives_a_restart_and_its_resources_apply_at_the_resume(
        root: Path) -> None:
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, Transitions())
    running(plane, "sb-1")
    plane.update("sb-1", NS, SandboxChange(
        idle_timeout=3600.0, labels={"team": "ml"}, annotations={"example.com/n": "x"},
        resources=Resources(requests={"cpu": "2"}, limits={"memory": "8Gi"})))
    plane.close()

    seen = Transitions()
    again = LocalControlPlane(root, DEFAULT_TEMPLATES, seen)
    try:
        back = again.get("sb-1", NS)
        assert (back.phase, back.idle_timeout) == (Phase.STOPPED, 3600.0)
        assert (dict(back.labels), dict(back.annotations)) == ({"team": "ml"},
                                                               {"example.com/n": "x"})
        assert back.resources == Resources(requests={"cpu": "2", "memory": "256Mi"},
                                           limits={"memory": "8Gi"})
        assert back.restart_pending
        again.resume("sb-1", NS)
        run = [t for t in seen.items if t.phase is Phase.RUNNING][-1]
        assert (run.sandbox.template.cpu, run.sandbox.template.memory_gib) == (2.0, 0.25)
        assert not again.get("sb-1", NS).restart_pending
    finally:
        again.close()


def test_a_sandboxes_file_from_before_updates_still_reads(root: Path) -> None:
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, Transitions())
    running(plane, "old")
    plane.close()
    # Write the row back as a Router without updates wrote it: none of their keys.
    db = sqlite3.connect(root / STATE_FILE)
    with db:
        (doc,) = db.execute("SELECT doc FROM sandboxes").fetchone()
        old = json.loads(doc)
        for key in ("labels", "annotations", "idle_timeout", "resources", "restart_pending"):
            del old[key]
        db.execute("UPDATE sandboxes SET doc = ?", (json.dumps(old),))
    db.close()

    again = LocalControlPlane(root, DEFAULT_TEMPLATES, Transitions())
    try:
        back = again.get("old", NS)
        assert (dict(back.labels), dict(back.annotations), back.idle_timeout,
                back.resources, back.restart_pending) == ({}, {}, None, None, False)
        assert again.update("old", NS, SandboxChange(labels={"a": "b"})).labels == {"a": "b"}
    finally:
        again.close()


def test_idle_stop_is_a_normal_transition_and_waits_for_running_commands(root: Path) -> None:
    seen = Transitions()
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, seen)
    try:
        running(plane, "sb-1")
        # A command running for longer than the idle timeout keeps it up: it is not killed.
        results: list[ExecResult] = []
        command = threading.Thread(target=lambda: results.append(
            plane.exec("sb-1", NS, "touch started; sleep 1.5; echo done", 30)))
        command.start()
        started = plane.workdir("sb-1", NS) / "started"
        wait_for(started.exists, "the command to start", 60)
        plane.update("sb-1", NS, SandboxChange(idle_timeout=0.2))
        command.join(60)
        assert [(r.stdout, r.exit_code) for r in results] == [("done\n", 0)]
        wait_for(lambda: plane.get("sb-1", NS).phase is Phase.STOPPED, "the idle stop", 60)
        stop = seen.items[-1]
        assert (stop.phase, stop.reason, stop.message) == (Phase.STOPPED, "IdleTimeout",
                                                            "Idle for 200ms")
        assert stop.id == f"{stop.sandbox.uid}/3"  # Creating, Running, then this
        assert plane.get("sb-1", NS).message == "Idle for 200ms"
    finally:
        plane.close()
