"""Kubernetes Events about Sandboxes become transitions, stored once by Event uid and count."""

from __future__ import annotations

from cp_helpers import Transitions, wait_for
from kube_helpers import NS, Controller, events_of, running
from kubefake import FakeKubernetes

from agenttier_router.controlplane import Phase
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane, from_url


def test_a_controller_event_is_a_transition_in_the_sandbox_s_current_phase(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    running(kplane, controller, "sb-1")
    posted = kube.post_event(NS, "sb-1", "Running", "Sandbox is ready (startup: 1.2s)")

    wait_for(lambda: len(events_of(transitions, "sb-1")) == 2, "two events")

    # The phase is the sandbox's when the Event is read: the first one may already find it
    # Running, as the test's controller moves fast; the second was posted once it was.
    events = events_of(transitions, "sb-1")
    assert [(reason, message) for _, reason, message in events] == [
        ("Creating", "Sandbox creation started"), ("Running", "Sandbox is ready (startup: 1.2s)")]
    assert events[1][0] is Phase.RUNNING
    last = transitions.items[-1]
    assert last.id == f"event/{posted['metadata']['uid']}/1"
    assert last.time.strftime("%Y-%m-%dT%H:%M:%SZ") == posted["lastTimestamp"]
    assert last.sandbox.uid == posted["involvedObject"]["uid"]


def test_a_repeated_event_is_a_new_occurrence_and_other_kinds_are_ignored(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    running(kplane, controller, "sb-1")
    first = kube.post_event(NS, "sb-1", "AutoRestarted", "Pod failed (OOMKilled)",
                            type_="Warning", name="sb-1.restart")
    kube.post_event(NS, "sb-1", "AutoRestarted", "Pod failed (OOMKilled)", type_="Warning",
                    name="sb-1.restart", count=2)
    kube.put("events", {"metadata": {"name": "pod.x", "namespace": NS},
                        "involvedObject": {"kind": "Pod", "name": "sb-1-pod", "namespace": NS},
                        "reason": "Pulled", "message": "image pulled", "count": 1})

    uid = first["metadata"]["uid"]
    wait_for(lambda: any(t.id == f"event/{uid}/2" for t in transitions.items), "count 2")
    restarts = [t.id for t in transitions.items if t.reason == "AutoRestarted"]
    assert restarts == [f"event/{uid}/1", f"event/{uid}/2"]
    assert not [t for t in transitions.items if t.reason == "Pulled"]


def test_an_event_about_a_deleted_sandbox_keeps_its_last_known_state(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    running(kplane, controller, "sb-1")
    uid = kplane.get("sb-1", NS).uid
    kplane.delete("sb-1", NS)
    controller.finish_delete("sb-1")
    wait_for(lambda: kplane.named("sb-1") == [], "gone")
    kube.put("events", {
        "metadata": {"name": "sb-1.deleted", "namespace": NS},
        "involvedObject": {"kind": "Sandbox", "apiVersion": "agenttier.io/v1alpha1",
                           "name": "sb-1", "namespace": NS, "uid": uid},
        "reason": "Deleted", "message": "Sandbox deleted", "count": 1, "type": "Normal"})

    wait_for(lambda: any(t.reason == "Deleted" and t.id.startswith("event/")
                         for t in transitions.items), "the Deleted event")
    event = next(t for t in transitions.items if t.id.startswith("event/")
                 and t.reason == "Deleted")
    assert event.phase is Phase.DELETING
    assert (event.sandbox.uid, event.sandbox.owner) == (uid, "alice")
    assert event.sandbox.template.name == "general-coding"


def test_events_seen_by_two_replicas_and_a_restart_have_the_same_ids(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions, kubeconfig: object) -> None:
    other = Transitions()
    replica = from_url("kubernetes://", other)
    try:
        assert replica.wait_synced(10)
        running(kplane, controller, "sb-1")
        for n in range(5):
            kube.post_event(NS, "sb-1", "Note", f"note {n}")

        def event_ids(sink: Transitions) -> set[str]:
            return {t.id for t in sink.items if t.id.startswith("event/")}

        wait_for(lambda: len(event_ids(transitions)) == 6, "six events, replica 1")
        wait_for(lambda: event_ids(other) == event_ids(transitions), "the same, replica 2")
    finally:
        replica.close()
    kplane.close()
    restarted = Transitions()
    again = from_url("kubernetes://", restarted)
    try:
        assert again.wait_synced(10)
        wait_for(lambda: event_ids(restarted) == event_ids(transitions), "the same after restart")
    finally:
        again.close()


def test_events_are_listed_from_memory_newest_first_with_filters(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller) -> None:
    running(kplane, controller, "sb-1")
    kplane.create("sb-2", "other", "general-coding", "bob", "")
    controller.reconcile("sb-2", "other")
    for n in range(3):
        kube.put("events", {
            "metadata": {"name": f"sb-1.note{n}", "namespace": NS},
            "involvedObject": {"kind": "Sandbox", "name": "sb-1", "namespace": NS,
                               "uid": kplane.get("sb-1", NS).uid},
            "reason": "Note", "message": f"note {n}", "count": 1, "type": "Normal",
            "lastTimestamp": f"2030-01-01T00:00:0{n}Z"})
    wait_for(lambda: len(kplane.events()) == 5, "five events in memory")
    before = len(kube.requests)

    newest = kplane.events(limit=2)
    assert [t.message for t in newest] == ["note 2", "note 1"]
    assert [t.reason for t in kplane.events(namespace="other")] == ["Creating"]
    assert {t.sandbox.name for t in kplane.events(name="sb-1")} == {"sb-1"}
    since = newest[1].time
    assert [t.message for t in kplane.events(name="sb-1", since=since)] == ["note 2", "note 1"]
    assert [t.message for t in kplane.events(until=since, limit=1)] == ["note 0"]
    assert kube.requests[before:] == []  # all from memory
