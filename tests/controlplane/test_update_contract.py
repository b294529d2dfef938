"""``ControlPlane.update``, run against every plane: local, and Kubernetes (a fake API server).

What an update sets reads back the same way on both: labels and annotations
merged (None removes a key), the idle timeout at once, resources only from the
sandbox's next start, when its cost rate follows. The Kubernetes plane's own
writes (the object's fields, the 409 retry) are checked at the end.
"""

from __future__ import annotations

import pytest
from contract_helpers import Driver
from cp_helpers import NS, Transitions
from kube_helpers import Controller, running
from kubefake import FakeKubernetes

from agenttier_router.controlplane import (
    InvalidRequest,
    Phase,
    SandboxConflict,
    SandboxNotFound,
)
from agenttier_router.controlplane.base import Resources, SandboxChange
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane

BIGGER = Resources(requests={"cpu": "1500m", "memory": "3Gi"})


def _last_running(transitions: Transitions, name: str) -> tuple[float, float]:
    """The cost rate (vCPU, GiB) the sandbox's latest Running transition carries."""
    run = [t for t in transitions.items if t.sandbox.name == name and t.phase is Phase.RUNNING
           and not t.id.startswith("event/")][-1]
    return run.sandbox.template.cpu, run.sandbox.template.memory_gib


def test_labels_annotations_and_idle_timeout_apply_at_once_and_merge(driver: Driver) -> None:
    driver.running("sb-1")
    plane = driver.plane
    fresh = plane.get("sb-1", NS)
    assert (dict(fresh.labels), dict(fresh.annotations), fresh.idle_timeout) == ({}, {}, None)

    updated = plane.update("sb-1", NS, SandboxChange(
        idle_timeout=1800.0, labels={"team": "ml", "tier": "b"},
        annotations={"example.com/note": "hello"}))
    assert updated.idle_timeout == 1800.0
    assert dict(updated.labels) == {"team": "ml", "tier": "b"}
    assert dict(updated.annotations) == {"example.com/note": "hello"}
    assert plane.get("sb-1", NS) == updated

    merged = plane.update("sb-1", NS, SandboxChange(labels={"tier": None, "zone": "eu"},
                                                   annotations={}))
    assert dict(merged.labels) == {"team": "ml", "zone": "eu"}
    assert dict(merged.annotations) == {"example.com/note": "hello"}  # {}: nothing merged
    assert merged.idle_timeout == 1800.0
    assert merged.phase is Phase.RUNNING  # none of these restarts it


def test_resources_apply_from_the_next_start_and_so_does_the_cost(
        driver: Driver, transitions: Transitions) -> None:
    driver.running("sb-1")
    plane = driver.plane
    updated = plane.update("sb-1", NS, SandboxChange(resources=BIGGER))
    assert updated.resources is not None
    assert dict(updated.resources.requests) == {"cpu": "1500m", "memory": "3Gi"}
    # Still running with (and priced from) what it started with.
    assert (updated.template.cpu, updated.template.memory_gib) == (0.5, 1.0)
    assert updated.restart_pending
    # A second change in the same run merges, quantity by quantity.
    again = plane.update("sb-1", NS, SandboxChange(
        resources=Resources(requests={"memory": "2Gi"})))
    assert again.resources is not None
    assert dict(again.resources.requests) == {"cpu": "1500m", "memory": "2Gi"}
    assert (again.template.cpu, again.template.memory_gib) == (0.5, 1.0)

    driver.stop("sb-1")
    assert plane.get("sb-1", NS).restart_pending  # until it starts again
    driver.resume("sb-1")
    resumed = plane.get("sb-1", NS)
    assert (resumed.template.cpu, resumed.template.memory_gib) == (1.5, 2.0)
    assert not resumed.restart_pending
    assert _last_running(transitions, "sb-1") == (1.5, 2.0)  # what the cost sampler reads
    driver.stop("sb-1")  # and so it stays, stopped after running with them
    stopped = plane.get("sb-1", NS)
    assert (stopped.template.cpu, stopped.template.memory_gib, stopped.restart_pending) == (
        1.5, 2.0, False)


def test_resources_changed_while_stopped_apply_at_the_resume(
        driver: Driver, transitions: Transitions) -> None:
    driver.running("sb-1")
    driver.stop("sb-1")
    stopped = driver.plane.update("sb-1", NS, SandboxChange(resources=BIGGER))
    assert stopped.phase is Phase.STOPPED
    assert (stopped.template.cpu, stopped.template.memory_gib) == (0.5, 1.0)
    driver.resume("sb-1")
    assert _last_running(transitions, "sb-1") == (1.5, 3.0)


@pytest.mark.parametrize("change", [
    pytest.param(SandboxChange(), id="nothing"),
    pytest.param(SandboxChange(idle_timeout=-1.0), id="negative-idle"),
    pytest.param(SandboxChange(idle_timeout=float("nan")), id="nan-idle"),
    pytest.param(SandboxChange(labels={"agenttier.io/action": "stop"}), id="reserved-label"),
    pytest.param(SandboxChange(labels={"a b": "c"}), id="bad-label-key"),
    pytest.param(SandboxChange(annotations={"k": "v" * (256 * 1024)}), id="too-big"),
    pytest.param(SandboxChange(resources=Resources(requests={"cpu": "x"})), id="bad-cpu"),
    pytest.param(SandboxChange(resources=Resources(requests={"cpu": "3"},
                                                   limits={"cpu": "2"})), id="over-limit"),
])
def test_bad_changes_are_refused_and_change_nothing(driver: Driver,
                                                   change: SandboxChange) -> None:
    before = driver.running("sb-1")
    with pytest.raises(InvalidRequest):
        driver.plane.update("sb-1", NS, change)
    after = driver.plane.get("sb-1", NS)
    assert (after.labels, after.annotations, after.idle_timeout, after.resources) == (
        before.labels, before.annotations, before.idle_timeout, before.resources)
    assert after.phase is Phase.RUNNING


def test_an_unknown_sandbox_is_not_found(driver: Driver) -> None:
    with pytest.raises(SandboxNotFound):
        driver.plane.update("nope", NS, SandboxChange(labels={"a": "b"}))


# The Kubernetes plane's writes: what lands in the object, and the retry on 409.

PATH = f"/apis/agenttier.io/v1alpha1/namespaces/{NS}/sandboxes/sb-1"


def test_the_object_gets_the_fields_and_the_crds_accept_them(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller) -> None:
    running(kplane, controller, "sb-1")
    kplane.update("sb-1", NS, SandboxChange(
        idle_timeout=5400.0, labels={"team": "ml"}, annotations={"example.com/n": "x"},
        resources=Resources(requests={"cpu": "1"})))
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    spec, metadata = stored["spec"], stored["metadata"]
    assert spec["idleTimeout"] == "1h30m0s"  # Go's canonical form
    # Merged over the template's (general-coding: 500m/1Gi -> 2/4Gi), limits kept.
    assert spec["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                 "limits": {"cpu": "2", "memory": "4Gi"}}
    assert metadata["labels"] == {"team": "ml"}
    assert metadata["annotations"]["example.com/n"] == "x"
    assert metadata["annotations"]["agenttier.io/resources-before"] == "null"
    # The platform's bookkeeping is not the user's: it is not shown.
    assert dict(kplane.get("sb-1", NS).annotations) == {"example.com/n": "x"}
    # kube (the fixture) checks every write against the CRDs: none was refused.


def test_update_retries_on_409_and_keeps_the_other_writer_s_change(
        kplane: KubernetesControlPlane, kube: FakeKubernetes, controller: Controller) -> None:
    running(kplane, controller, "sb-1")
    kube.before_write = lambda method, path: kube.patch(
        "sandboxes", NS, "sb-1", {"metadata": {"labels": {"other": "yes"}}})

    updated = kplane.update("sb-1", NS, SandboxChange(labels={"mine": "yes"}))

    assert dict(updated.labels) == {"other": "yes", "mine": "yes"}
    assert len([m for m, p, _ in kube.requests if p == PATH and m == "PUT"]) == 2


def test_a_deleting_sandbox_cannot_be_updated(
        kplane: KubernetesControlPlane, controller: Controller) -> None:
    running(kplane, controller, "sb-1")
    kplane.delete("sb-1", NS)  # held by the finalizer: Deleting
    with pytest.raises(SandboxConflict, match="Deleting"):
        kplane.update("sb-1", NS, SandboxChange(labels={"a": "b"}))
