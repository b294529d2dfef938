"""Sharing on the Kubernetes plane: a merge patch of spec.sharing, never a full PUT, plus Events."""

from __future__ import annotations

import pytest
from cp_helpers import Transitions, wait_for
from kube_helpers import NS, events_of
from kubefake import FakeKubernetes

from agenttier_router.controlplane import InvalidRequest, Phase
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane

PATH = f"/apis/agenttier.io/v1alpha1/namespaces/{NS}/sandboxes/sb-1"


def _router_events(kube: FakeKubernetes) -> list[tuple[str, str]]:
    return [(e["reason"], e["message"]) for e in kube.items("events")
            if e["source"]["component"] == "agenttier-router"]


def test_share_and_unshare_patch_spec_sharing_with_the_resource_version(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")

    kplane.share("sb-1", NS, "user", "bob", "viewer")
    kplane.share("sb-1", NS, "group", "devs", "collaborator")
    shared = kplane.share("sb-1", NS, "user", "bob", "collaborator")

    assert dict(shared.shares.users) == {"bob": "collaborator"}
    assert dict(shared.shares.groups) == {"devs": "collaborator"}
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["spec"]["sharing"] == {
        "users": [{"identity": "bob", "level": "collaborator"}],
        "groups": [{"identity": "devs", "level": "collaborator"}]}
    patches = [q for m, p, q in kube.requests if p == PATH and m == "PATCH"]
    assert len(patches) == 3
    assert not [m for m, p, _ in kube.requests if p == PATH and m == "PUT"]

    revoked = kplane.unshare("sb-1", NS, "devs")
    assert dict(revoked.shares.groups) == {}
    assert kplane.unshare("sb-1", NS, "nobody") == revoked  # nothing to revoke: no write
    assert len([m for m, p, _ in kube.requests if p == PATH and m == "PATCH"]) == 4

    assert _router_events(kube) == [("ShareGranted", "bob"), ("ShareGranted", "devs"),
                                    ("ShareGranted", "bob"), ("ShareRevoked", "devs")]
    event = next(e for e in kube.items("events") if e["reason"] == "ShareRevoked")
    assert event["metadata"]["name"].startswith("sb-1.")
    assert event["involvedObject"]["uid"] == stored["metadata"]["uid"]
    assert (event["count"], event["type"]) == (1, "Normal")
    assert event["firstTimestamp"] == event["lastTimestamp"]


def test_share_retries_on_409_and_keeps_the_other_writer_s_share(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    # Another Router shares with carol between our read and our patch.
    kube.before_write = lambda method, path: kube.patch("sandboxes", NS, "sb-1", {
        "spec": {"sharing": {"users": [{"identity": "carol", "level": "viewer"}]}}})

    shared = kplane.share("sb-1", NS, "user", "bob", "viewer")

    assert dict(shared.shares.users) == {"carol": "viewer", "bob": "viewer"}
    assert len([m for m, p, _ in kube.requests if p == PATH and m == "PATCH"]) == 2


def test_share_refuses_bad_input(kplane: KubernetesControlPlane) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    with pytest.raises(InvalidRequest, match="level"):
        kplane.share("sb-1", NS, "user", "bob", "owner")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="kind"):
        kplane.share("sb-1", NS, "robot", "bob", "viewer")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="identity"):
        kplane.share("sb-1", NS, "user", "  ", "viewer")


def test_the_share_events_come_back_as_sandbox_events(
        kplane: KubernetesControlPlane, transitions: Transitions) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    kplane.share("sb-1", NS, "user", "bob", "viewer")
    wait_for(lambda: events_of(transitions, "sb-1") != [], "the ShareGranted event read back")
    assert events_of(transitions, "sb-1") == [(Phase.CREATING, "ShareGranted", "bob")]
