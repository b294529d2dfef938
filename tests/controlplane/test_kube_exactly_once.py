"""Exactly once with no leader: two replicas and a restart, one real database.

Two Kubernetes planes watch one fake API server (two Router replicas); a third
starts later (a restart). Each writes every transition it sees, with
``event_id = transition.id``, to the same database, on every real backend. The
unique index on ``event_id`` keeps one copy of each: every phase change and
every Kubernetes Event is stored exactly once, and nobody had to be elected.
"""

from __future__ import annotations

from cp_helpers import Transitions, wait_for
from kube_helpers import NS, Controller, running
from kubefake import FakeKubernetes

from agenttier_router.controlplane import Transition
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane, from_url
from agenttier_router.storage import SandboxEvent, SandboxEventFilter, SQLBackend


def _record(transition: Transition) -> SandboxEvent:
    sandbox = transition.sandbox
    return SandboxEvent(sandbox_id=sandbox.name, sandbox_name=sandbox.name,
                        namespace=sandbox.namespace, phase=transition.phase.value,
                        reason=transition.reason, message=transition.message,
                        time=transition.time, event_id=transition.id)


def test_two_replicas_and_a_restart_store_each_record_once(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions, kubeconfig: object, backend: SQLBackend) -> None:
    second = Transitions()
    replica = from_url("kubernetes://", second)
    try:
        assert replica.wait_synced(10)
        running(kplane, controller, "sb-1")
        replica.stop("sb-1", NS)
        controller.act_on_stop("sb-1")
        kplane.resume("sb-1", NS)
        controller.run("sb-1")
        kube.post_event(NS, "sb-1", "Running", "Sandbox is ready (startup: 2s)")
        kplane.delete("sb-1", NS)
        controller.finish_delete("sb-1")

        def ids(sink: Transitions) -> set[str]:
            return {t.id for t in sink.items}

        # 5 phase changes (C, R, S, C, R), Deleting, and 3 Events.
        # Each replica sees every phase, even the one whose memory lagged when it wrote.
        wait_for(lambda: len(ids(transitions)) == 9 and ids(second) == ids(transitions),
                 "both replicas have seen everything")
    finally:
        replica.close()
    restarted = Transitions()
    again = from_url("kubernetes://", restarted)
    try:
        assert again.wait_synced(10)
        wait_for(lambda: len(restarted.items) >= 3, "the restart's Events")
    finally:
        again.close()

    for sink in (transitions, second, restarted):  # each replica writes all it saw
        backend.write_batch([_record(t) for t in sink.items])

    stored = backend.list_sandbox_events(SandboxEventFilter(sandbox_id="sb-1", limit=100)).items
    assert sorted(e.event_id for e in stored) == sorted(ids(transitions))
    assert sorted((e.phase, e.reason) for e in stored) == sorted(
        (t.phase.value, t.reason) for t in transitions.items)
