"""The Kubernetes plane's lifecycle: create, stop, resume, delete, against the fake API server.

The tests play the controller (kube_helpers.Controller); the plane must write
exactly what upstream's Router writes, and report each transition once.
"""

from __future__ import annotations

import pytest
from cp_helpers import Transitions, wait_for
from kube_helpers import NS, Controller, phase_changes, running
from kubefake import FakeKubernetes

from agenttier_router.controlplane import (
    InvalidRequest,
    Phase,
    SandboxConflict,
    SandboxNotFound,
)
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane


def test_create_writes_a_sandbox_with_template_ref_and_created_by(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    sandbox = kplane.create("sb-1", NS, "big-coding", "alice", "alice@example.com")

    assert sandbox.phase is Phase.CREATING
    assert (sandbox.name, sandbox.namespace, sandbox.owner) == ("sb-1", NS, "alice")
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert sandbox.uid == stored["metadata"]["uid"]
    assert stored["spec"] == {
        "templateRef": {"name": "big-coding", "kind": "ClusterSandboxTemplate"},
        "createdBy": {"sub": "alice", "email": "alice@example.com"},
    }
    # Resolved through inheritsFrom: the child's requests, the parent's description and image.
    assert (sandbox.template.cpu, sandbox.template.memory_gib) == (4.0, 8.0)
    assert sandbox.template.description == "General coding"
    assert sandbox.template.image == "agenttier/coding"
    # Read-your-writes: the plane's memory has it at once.
    assert kplane.get("sb-1", NS) == sandbox


def test_create_prefers_a_namespaced_template_of_the_same_name(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kube.put("sandboxtemplates", {
        "metadata": {"name": "general-coding", "namespace": NS},
        "spec": {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}})
    wait_for(lambda: kplane._ns_templates.peek((NS, "general-coding")) is not None,
             "the namespaced template")

    sandbox = kplane.create("sb-1", NS, "general-coding", "alice", "")

    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["spec"]["templateRef"] == {"name": "general-coding", "kind": "SandboxTemplate"}
    assert stored["spec"]["createdBy"] == {"sub": "alice"}
    assert (sandbox.template.cpu, sandbox.template.memory_gib) == (0.25, 0.5)


def test_create_refuses_bad_input_and_a_taken_name(kplane: KubernetesControlPlane) -> None:
    with pytest.raises(InvalidRequest, match="unknown template 'nope'"):
        kplane.create("sb-1", NS, "nope", "alice", "")
    with pytest.raises(InvalidRequest, match="RFC 1123"):
        kplane.create("Bad_Name", NS, "general-coding", "alice", "")
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    with pytest.raises(SandboxConflict, match="already exists"):
        kplane.create("sb-1", NS, "general-coding", "bob", "")


def test_stop_sets_the_annotation_with_a_full_update_only_when_running(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    with pytest.raises(SandboxConflict, match=r"cannot stop sandbox in phase $"):
        kplane.stop("sb-1", NS)  # not reconciled yet: phase ""
    controller.reconcile("sb-1")
    wait_for(lambda: (Phase.CREATING, "Creating") in phase_changes(transitions, "sb-1"),
             "Creating seen")
    with pytest.raises(SandboxConflict, match="cannot stop sandbox in phase Creating"):
        kplane.stop("sb-1", NS)
    controller.run("sb-1")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.RUNNING, "Running")

    kplane.stop("sb-1", NS)

    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {"agenttier.io/action": "stop"}
    assert [verb for verb, plural, _ in kube.writes if plural == "sandboxes"][-1] == "update"
    controller.act_on_stop("sb-1")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.STOPPED, "Stopped")
    with pytest.raises(SandboxConflict, match="cannot stop sandbox in phase Stopped"):
        kplane.stop("sb-1", NS)


def test_stop_retries_on_a_stale_resource_version(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller) -> None:
    running(kplane, controller, "sb-1")
    kube.before_write = lambda method, path: kube.patch(
        "sandboxes", NS, "sb-1", {"metadata": {"labels": {"touched": "yes"}}})

    kplane.stop("sb-1", NS)

    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {"agenttier.io/action": "stop"}
    assert stored["metadata"]["labels"] == {"touched": "yes"}  # the other write is kept
    puts = [r for r in kube.requests if r[0] == "PUT"]
    assert len(puts) == 2  # the first got 409 Conflict


def test_resume_is_a_status_update_to_creating_from_stopped_or_error(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller) -> None:
    running(kplane, controller, "sb-1")
    with pytest.raises(SandboxConflict, match="cannot resume sandbox in phase Running"):
        kplane.resume("sb-1", NS)
    kplane.stop("sb-1", NS)
    controller.act_on_stop("sb-1")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.STOPPED, "Stopped")

    resumed = kplane.resume("sb-1", NS)

    assert resumed.phase is Phase.CREATING
    assert resumed.message == "Resuming"
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert (stored["status"]["phase"], stored["status"]["message"]) == ("Creating", "Resuming")
    assert ("PUT", f"/apis/agenttier.io/v1alpha1/namespaces/{NS}/sandboxes/sb-1/status") in \
        [(m, p) for m, p, _ in kube.requests]
    kube.set_status(NS, "sb-1", phase="Error", message="Pod failed: Error")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.ERROR, "Error")
    assert kplane.resume("sb-1", NS).phase is Phase.CREATING


def test_delete_deletes_the_object_and_the_finalizer_holds_it_in_deleting(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    running(kplane, controller, "sb-1")

    kplane.delete("sb-1", NS)

    assert kplane.get("sb-1", NS).phase is Phase.DELETING
    controller.finish_delete("sb-1")
    wait_for(lambda: kplane.named("sb-1") == [], "the sandbox gone")
    with pytest.raises(SandboxNotFound):
        kplane.get("sb-1", NS)
    with pytest.raises(SandboxNotFound):
        kplane.delete("sb-1", NS)
    assert [p for p, _ in phase_changes(transitions, "sb-1")] == [
        Phase.CREATING, Phase.RUNNING, Phase.DELETING]


def test_every_transition_is_reported_once_with_ids_and_times_from_the_object(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller,
        transitions: Transitions) -> None:
    running(kplane, controller, "sb-1")
    kplane.stop("sb-1", NS)
    controller.act_on_stop("sb-1")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.STOPPED, "Stopped")
    kplane.resume("sb-1", NS)
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.CREATING, "Creating again")
    controller.run("sb-1")
    wait_for(lambda: kplane.get("sb-1", NS).phase is Phase.RUNNING, "Running again")

    phases = [t for t in transitions.items if t.id.startswith("k8s/")]
    assert [(t.phase, t.reason) for t in phases] == [
        (Phase.CREATING, "Creating"), (Phase.RUNNING, "Running"), (Phase.STOPPED, "Stopped"),
        (Phase.CREATING, "Resuming"), (Phase.RUNNING, "Running")]
    assert len({t.id for t in phases}) == 5
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    uid = stored["metadata"]["uid"]
    assert all(t.id.startswith(f"k8s/{uid}/") for t in phases)
    assert phases[-1].time.strftime("%Y-%m-%dT%H:%M:%SZ") == stored["status"]["startedAt"]
    assert phases[0].time.strftime("%Y-%m-%dT%H:%M:%SZ") == \
        stored["metadata"]["creationTimestamp"]


def test_a_restricted_plane_refuses_other_namespaces(
        kubeconfig: object, kube: FakeKubernetes, transitions: Transitions) -> None:
    from agenttier_router.controlplane.kubernetes import from_url

    kube.put("sandboxes", {"metadata": {"name": "elsewhere", "namespace": "other"},
                           "spec": {"templateRef": {"name": "general-coding",
                                                    "kind": "ClusterSandboxTemplate"}}})
    plane = from_url(f"kubernetes://?namespace={NS}", transitions)
    try:
        assert plane.wait_synced(10)
        assert plane.named("elsewhere") == []
        with pytest.raises(InvalidRequest, match="manages namespace 'team-a' only"):
            plane.create("sb-1", "other", "general-coding", "alice", "")
        plane.create("sb-1", NS, "general-coding", "alice", "")
        assert [s.name for s in plane.list()] == ["sb-1"]
        listed = {p for m, p, _ in kube.requests if m == "GET"}
        assert f"/apis/agenttier.io/v1alpha1/namespaces/{NS}/sandboxes" in listed
        assert "/apis/agenttier.io/v1alpha1/sandboxes" not in listed
    finally:
        plane.close()
