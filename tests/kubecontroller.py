"""Playing AgentTier's controller against the fake API server, for any test folder.

The API server is :class:`kubefake.FakeKubernetes` (real HTTP; see its
docstring for why it is a fake). AgentTier's controller does not run here
either: :class:`Controller` moves a Sandbox through its phases the way the
controller does (facts, section 4), and :func:`seed_templates` stores the
ClusterSandboxTemplates the upstream chart installs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kubefake import FakeKubernetes, now_rfc3339

NS = "team-a"

TEMPLATES: list[dict[str, Any]] = [
    {"metadata": {"name": "general-coding"},
     "spec": {"description": "General coding", "image": {"repository": "agenttier/coding"},
              "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                            "limits": {"cpu": "2", "memory": "4Gi"}}}},
    {"metadata": {"name": "rl-rollout"},
     "spec": {"mode": "agent", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}},
    # A child: resources of its own, description and image from its parent.
    {"metadata": {"name": "big-coding"},
     "spec": {"inheritsFrom": {"name": "general-coding", "kind": "ClusterSandboxTemplate"},
              "resources": {"requests": {"cpu": "4", "memory": "8Gi"}}}},
]


def seed_templates(kube: FakeKubernetes) -> None:
    """Store the ClusterSandboxTemplates above (as the upstream chart installs its defaults)."""
    for template in TEMPLATES:
        kube.put("clustersandboxtemplates", template)


class Controller:
    """Plays AgentTier's controller against the fake API server."""

    def __init__(self, kube: FakeKubernetes) -> None:
        self.kube = kube
        self._last_start = ""

    def _start_time(self) -> str:
        """Now, but a second after the last start: a real pod never starts twice in a second."""
        now = now_rfc3339()
        if now <= self._last_start:
            then = datetime.strptime(self._last_start, "%Y-%m-%dT%H:%M:%SZ")
            now = (then + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._last_start = now
        return now

    def reconcile(self, name: str, namespace: str = NS) -> None:
        """First reconcile: finalizer, phase Creating, and the ``Creating`` Event."""
        self.kube.patch("sandboxes", namespace, name,
                        {"metadata": {"finalizers": ["agenttier.io/sandbox-cleanup"]}})
        self.kube.set_status(namespace, name, phase="Creating", restartCount=0)
        self.kube.post_event(namespace, name, "Creating", "Sandbox creation started")

    def run(self, name: str, namespace: str = NS) -> None:
        """Creating -> Running: a pod, startedAt = lastActivityTimestamp = now."""
        now = self._start_time()
        pod = f"{name}-pod"
        if self.kube.get("pods", namespace, pod) is None:
            self.kube.add_pod(namespace, pod)
        self.kube.set_status(namespace, name, phase="Running", podName=pod,
                             pvcName=f"{name}-workspace", startedAt=now,
                             lastActivityTimestamp=now, message=None)

    def act_on_stop(self, name: str, namespace: str = NS) -> None:
        """Honour the stop annotation: remove it, delete the pod, phase Stopped."""
        self.kube.patch("sandboxes", namespace, name,
                        {"metadata": {"annotations": {"agenttier.io/action": None}}})
        self.kube.remove("pods", namespace, f"{name}-pod")
        self.kube.set_status(namespace, name, phase="Stopped", podName="", startedAt=None,
                             message="User requested stop")
        self.kube.post_event(namespace, name, "Stopped", "User requested stop")

    def finish_delete(self, name: str, namespace: str = NS) -> None:
        """The cleanup is done: the finalizer goes, and with it the object."""
        self.kube.remove_finalizers(namespace, name)


