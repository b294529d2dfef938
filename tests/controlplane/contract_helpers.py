"""Drivers for the contract suite: one behaviour test, run against every control plane.

A driver wraps a plane and does what the plane leaves to others: on the local
plane nothing (it runs its own lifecycle); on the Kubernetes plane, it plays
AgentTier's controller against the fake API server (kube_helpers.Controller).
"""

from __future__ import annotations

from typing import Protocol

from cp_helpers import NS, wait_for
from kube_helpers import Controller

from agenttier_router.controlplane import ControlPlane, Phase, Sandbox, SandboxNotFound


class Driver(Protocol):
    """A control plane plus whoever moves its sandboxes between phases."""

    plane: ControlPlane
    kind: str

    def running(self, name: str, namespace: str = NS) -> Sandbox:
        """Create a sandbox and bring it to Running."""

    def stop(self, name: str, namespace: str = NS) -> None:
        """Stop it, and wait until it is Stopped."""

    def resume(self, name: str, namespace: str = NS) -> None:
        """Resume it, and wait until it is Running."""

    def delete(self, name: str, namespace: str = NS) -> None:
        """Delete it, and wait until it is gone."""


def _gone(plane: ControlPlane, name: str, namespace: str) -> bool:
    try:
        plane.get(name, namespace)
    except SandboxNotFound:
        return True
    return False


class LocalDriver:
    """The local plane runs its own lifecycle."""

    kind = "local"

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def running(self, name: str, namespace: str = NS) -> Sandbox:
        """Create, then wait for setup."""
        self.plane.create(name, namespace, "general-coding", "alice", "alice@example.com")
        wait_for(lambda: self.plane.get(name, namespace).phase is Phase.RUNNING, "Running")
        return self.plane.get(name, namespace)

    def stop(self, name: str, namespace: str = NS) -> None:
        """Stop (synchronous on this plane)."""
        self.plane.stop(name, namespace)

    def resume(self, name: str, namespace: str = NS) -> None:
        """Resume (synchronous on this plane)."""
        self.plane.resume(name, namespace)

    def delete(self, name: str, namespace: str = NS) -> None:
        """Delete (synchronous on this plane)."""
        self.plane.delete(name, namespace)


class KubernetesDriver:
    """The Kubernetes plane writes; the controller (played here) acts."""

    kind = "kubernetes"

    def __init__(self, plane: ControlPlane, controller: Controller) -> None:
        self.plane = plane
        self.controller = controller

    def _wait(self, name: str, namespace: str, phase: Phase) -> None:
        wait_for(lambda: self.plane.get(name, namespace).phase is phase, phase.value)

    def running(self, name: str, namespace: str = NS) -> Sandbox:
        """Create, reconcile, start the pod."""
        self.plane.create(name, namespace, "general-coding", "alice", "alice@example.com")
        self.controller.reconcile(name, namespace)
        self.controller.run(name, namespace)
        self._wait(name, namespace, Phase.RUNNING)
        return self.plane.get(name, namespace)

    def stop(self, name: str, namespace: str = NS) -> None:
        """Annotate, then act on it as the controller."""
        self.plane.stop(name, namespace)
        self.controller.act_on_stop(name, namespace)
        self._wait(name, namespace, Phase.STOPPED)

    def resume(self, name: str, namespace: str = NS) -> None:
        """Status to Creating, then a new pod."""
        self.plane.resume(name, namespace)
        self.controller.run(name, namespace)
        self._wait(name, namespace, Phase.RUNNING)

    def delete(self, name: str, namespace: str = NS) -> None:
        """Delete, then the finalizer goes."""
        self.plane.delete(name, namespace)
        self.controller.finish_delete(name, namespace)
        wait_for(lambda: _gone(self.plane, name, namespace), "gone")
