"""Helpers for the control-plane tests: a recording sink, a fake clock, and waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from agenttier_router.controlplane import LocalControlPlane, Phase, Sandbox, Transition

NS = "team-a"


class Transitions:
    """A transition sink that keeps every transition, thread-safely, in delivery order."""

    def __init__(self) -> None:
        self.items: list[Transition] = []
        self._lock = threading.Lock()

    def __call__(self, transition: Transition) -> None:
        with self._lock:
            self.items.append(transition)

    def of(self, name: str) -> list[tuple[Phase, str]]:
        """(phase, reason) of every transition of one sandbox, in order."""
        with self._lock:
            return [(t.phase, t.reason) for t in self.items if t.sandbox.name == name]


class StepClock:
    """A fake clock: every reading is one second after the previous, so times are distinct."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=1)
            return self.now


def wait_for(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``limit`` seconds (a liveness bound)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def running(plane: LocalControlPlane, name: str, namespace: str = NS) -> Sandbox:
    """Create a sandbox and wait until setup has moved it out of Creating."""
    plane.create(name, namespace, "minimal", "alice", "alice@example.com")
    wait_for(lambda: plane.get(name, namespace).phase is not Phase.CREATING, f"{name} set up")
    sandbox = plane.get(name, namespace)
    assert sandbox.phase is Phase.RUNNING, sandbox.message
    return sandbox
