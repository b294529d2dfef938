"""The Kubernetes plane's reads: templates, and sandboxes served from its informer's memory.

Also its faults: an API server down at start, RBAC refusals, odd objects,
dropped watches and 410 Gone, and two replicas reporting the same history.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cp_helpers import Transitions, wait_for
from kube_helpers import NS, Controller, phase_changes, running
from kubefake import FakeKubernetes
from tcpproxy import TcpProxy

from agenttier_router.controlplane import ControlPlaneUnavailable, Phase, SandboxNotFound
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane, from_url


def _sandbox(name: str, namespace: str = NS, **extra: object) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"templateRef": {"name": "general-coding", "kind": "ClusterSandboxTemplate"},
                     "createdBy": {"sub": "bob"}}, **extra}


def test_templates_come_from_the_cluster_with_inherits_from_resolved(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    templates = kplane.templates()

    assert sorted(templates) == ["big-coding", "general-coding", "rl-rollout"]
    general = templates["general-coding"]
    assert (general.cpu, general.memory_gib, general.image) == (0.5, 1.0, "agenttier/coding")
    big = templates["big-coding"]
    assert (big.cpu, big.memory_gib, big.description) == (4.0, 8.0, "General coding")

    # A cycle and a missing parent leave those templates out; the others stay.
    kube.put("clustersandboxtemplates", {"metadata": {"name": "loop-a"}, "spec": {
        "inheritsFrom": {"name": "loop-b", "kind": "ClusterSandboxTemplate"}}})
    kube.put("clustersandboxtemplates", {"metadata": {"name": "loop-b"}, "spec": {
        "inheritsFrom": {"name": "loop-a", "kind": "ClusterSandboxTemplate"}}})
    kube.put("clustersandboxtemplates", {"metadata": {"name": "orphan"}, "spec": {
        "inheritsFrom": {"name": "gone", "kind": "ClusterSandboxTemplate"}}})
    kube.put("clustersandboxtemplates", {"metadata": {"name": "tiny"}, "spec": {
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}})
    wait_for(lambda: "tiny" in kplane.templates(), "the new template")
    assert sorted(kplane.templates()) == ["big-coding", "general-coding", "rl-rollout", "tiny"]


def test_get_list_and_named_never_call_the_api_server(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    for index in range(20):
        kube.put("sandboxes", _sandbox(f"sb-{index}", NS if index % 2 else "other"))
    wait_for(lambda: len(kplane.list()) == 20, "20 sandboxes in memory")
    before = len(kube.requests)

    for _ in range(50):
        assert len(kplane.list()) == 20
        # Oldest first; these were created within a second or two, and then go by name.
        assert {s.name for s in kplane.list(NS)} == {f"sb-{i}" for i in range(1, 20, 2)}
        assert kplane.get("sb-3", NS).owner == "bob"
        assert [s.namespace for s in kplane.named("sb-4")] == ["other"]
        with pytest.raises(SandboxNotFound):
            kplane.get("sb-3", "other")

    assert kube.requests[before:] == []


def test_objects_written_by_others_come_and_go(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kube.put("sandboxes", _sandbox("theirs"))
    wait_for(lambda: kplane.named("theirs") != [], "the sandbox seen")
    kube.remove("sandboxes", NS, "theirs")
    wait_for(lambda: kplane.named("theirs") == [], "the sandbox gone")


def test_odd_objects_are_skipped_with_a_rate_limited_warning(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, transitions: Transitions,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    kube.put("sandboxes", _sandbox("odd"))
    kube.put("sandboxes", _sandbox("fine"))
    wait_for(lambda: len(kplane.list()) == 2, "both seen")
    # No status yet: served as Creating (upstream's phase ""), no transition until reconciled.
    assert kplane.get("odd", NS).phase is Phase.CREATING
    # An unknown phase, several times: the object is skipped (its last good state is kept).
    for count in range(5):
        kube.patch("sandboxes", NS, "odd", {"status": {"phase": "Exploding",
                                                       "restartCount": count}}, checked=False)
    kube.set_status(NS, "fine", phase="Running", startedAt="2026-01-01T00:00:00Z",
                    lastActivityTimestamp="2026-01-01T00:00:00Z")
    wait_for(lambda: kplane.get("fine", NS).phase is Phase.RUNNING, "the next one still works")
    warnings = [r.getMessage() for r in caplog.records if "Exploding" in r.getMessage()]
    assert len(warnings) == 1
    assert kplane.get("odd", NS).phase is Phase.CREATING
    assert phase_changes(transitions, "odd") == []


def test_an_api_server_down_at_start_answers_unavailable_then_recovers(
        kube: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        transitions: Transitions) -> None:
    with TcpProxy("127.0.0.1", kube.port) as proxy:
        proxy.kill()
        path = kube.kubeconfig(tmp_path / "kubeconfig", server=f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("KUBECONFIG", str(path))
        plane = from_url("kubernetes://", transitions)
        try:
            wait_for(lambda: plane.problem() is not None and "reached" in str(plane.problem()),
                     "the outage noticed")
            with pytest.raises(ControlPlaneUnavailable, match="cannot be reached") as caught:
                plane.list()
            assert caught.value.retry_after > 0
            with pytest.raises(ControlPlaneUnavailable):
                plane.create("sb-1", NS, "general-coding", "alice", "")
            proxy.restart()
            assert plane.wait_synced(20)
            wait_for(lambda: plane.problem() is None, "recovered")
            plane.create("sb-1", NS, "general-coding", "alice", "")
            assert [s.name for s in plane.list()] == ["sb-1"]
            # Down again once synced: writes answer unavailable; reads serve what is known.
            proxy.kill()
            with pytest.raises(ControlPlaneUnavailable, match="cannot be reached"):
                plane.create("sb-2", NS, "general-coding", "alice", "")
            with pytest.raises(ControlPlaneUnavailable):
                plane.delete("sb-1", NS)
            assert [s.name for s in plane.list()] == ["sb-1"]
            wait_for(lambda: plane.problem() is not None, "the outage noticed again")
        finally:
            plane.close()


def test_forbidden_by_rbac_names_the_missing_verb_and_resource(
        kube: FakeKubernetes, kubeconfig: Path, transitions: Transitions) -> None:
    kube.forbid("list", "sandboxes")
    plane = from_url("kubernetes://", transitions)
    try:
        wait_for(lambda: plane.problem() is not None and "RBAC" in str(plane.problem()),
                 "the refusal noticed")
        with pytest.raises(ControlPlaneUnavailable,
                           match="may not 'list' 'sandboxes' at the cluster scope"):
            plane.list()
        kube.allow("list", "sandboxes")
        assert plane.wait_synced(20)
        kube.forbid("create", "sandboxes")
        with pytest.raises(ControlPlaneUnavailable,
                           match="may not 'create' 'sandboxes' in namespace 'team-a'"):
            plane.create("sb-1", NS, "general-coding", "alice", "")
    finally:
        plane.close()


def test_a_dropped_watch_resumes_from_its_version_and_410_relists_without_loss_or_copies(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    running(kplane, controller, "sb-1")
    kube.put("sandboxes", _sandbox("doomed"))
    wait_for(lambda: kplane.named("doomed") != [], "doomed seen")
    seen = len(transitions.items)

    kube.drop_watches()
    kplane.stop("sb-1", NS)
    controller.act_on_stop("sb-1")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.STOPPED, "Stopped after the drop")
    watches = [q for m, p, q in kube.requests if p.endswith("/sandboxes") and "watch" in q]
    assert all(q["resourceVersion"] not in ("", "0") for q in watches)

    # Everything happens while the watch is away; then the history is compacted: 410, re-list.
    relists = kplane._informer.relists
    kube.forbid("watch", "sandboxes")
    kube.drop_watches()
    kube.remove("sandboxes", NS, "doomed")
    kplane.resume("sb-1", NS)
    controller.run("sb-1")
    kube.compact()
    kube.allow("watch", "sandboxes")
    wait_for(lambda: kplane._informer.relists > relists, "a re-list")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.RUNNING, "Running after the re-list")
    wait_for(lambda: kplane.named("doomed") == [], "the deletion seen by the re-list")

    changes = phase_changes(transitions, "sb-1")
    # The re-list sees Running; the Creating (Resuming) entered and left while the watch was
    # away, with that history compacted, is not seen by anyone: only the state is listed.
    assert changes == [(Phase.CREATING, "Creating"), (Phase.RUNNING, "Running"),
                       (Phase.STOPPED, "Stopped"), (Phase.RUNNING, "Running")]
    ids = [t.id for t in transitions.items[seen:]]
    assert len(ids) == len(set(ids))
    assert phase_changes(transitions, "doomed") == [(Phase.DELETING, "Deleted")]


def test_two_replicas_and_a_restart_report_the_same_ids(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions, kubeconfig: Path) -> None:
    other = Transitions()
    replica = from_url("kubernetes://", other)
    try:
        assert replica.wait_synced(10)
        running(kplane, controller, "sb-1")
        replica.stop("sb-1", NS)  # created through one replica, stopped through the other
        controller.act_on_stop("sb-1")
        wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.STOPPED, "Stopped (1)")
        wait_for(lambda: replica.get("sb-1", NS).phase is Phase.STOPPED, "Stopped (2)")
        wait_for(lambda: {t.id for t in other.items} == {t.id for t in transitions.items},
                 "both replicas reporting the same records")
    finally:
        replica.close()
    assert len(transitions.items) == len({t.id for t in transitions.items})
    first = {t.id: t for t in transitions.items}
    assert all(first[t.id].time == t.time for t in other.items)

    restarted = Transitions()
    again = from_url("kubernetes://", restarted)
    try:
        assert again.wait_synced(10)
        wait_for(lambda: len(restarted.items) >= 3, "the restart's view")
    finally:
        again.close()
    # A restart reports the current phase and the Events again, under the same ids.
    assert {t.id for t in restarted.items} <= set(first)
