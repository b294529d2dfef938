"""Helpers for the Kubernetes control-plane tests: waiting on the plane, and its transitions.

The API server is :class:`kubefake.FakeKubernetes` (real HTTP; see its
docstring for why it is a fake); :mod:`kubecontroller` plays AgentTier's
controller, and is re-exported here for the tests of this folder.
"""

from __future__ import annotations

from cp_helpers import Transitions, wait_for
from kubecontroller import NS, TEMPLATES, Controller, seed_templates

from agenttier_router.controlplane import Phase
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane

__all__ = ["NS", "TEMPLATES", "Controller", "events_of", "phase_changes", "running",
           "seed_templates"]


def running(plane: KubernetesControlPlane, controller: Controller, name: str,
            namespace: str = NS, template: str = "general-coding") -> None:
    """Create a sandbox through the plane and play the controller until the plane sees Running."""
    plane.create(name, namespace, template, "alice", "alice@example.com")
    controller.reconcile(name, namespace)
    controller.run(name, namespace)
    wait_for(lambda: plane.get(name, namespace).phase is Phase.RUNNING, f"{name} Running")


def phase_changes(transitions: Transitions, name: str) -> list[tuple[Phase, str]]:
    """(phase, reason) of a sandbox's phase transitions (its Events left out), in order."""
    return [(t.phase, t.reason) for t in list(transitions.items)
            if t.sandbox.name == name and t.id.startswith("k8s/")]


def events_of(transitions: Transitions, name: str) -> list[tuple[Phase, str, str]]:
    """(phase, reason, message) of the Events about a sandbox, in order."""
    return [(t.phase, t.reason, t.message) for t in list(transitions.items)
            if t.sandbox.name == name and t.id.startswith("event/")]
