"""Share links on the Kubernetes plane: entries of spec.sharing.shareLinks (only the token's hash),
written with the resourceVersion, so that Router replicas never double-count a use."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cp_helpers import Transitions, wait_for
from kube_helpers import NS
from kubefake import FakeKubernetes

from agenttier_router.controlplane import ShareLinkRefused
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane, from_url

PATH = f"/apis/agenttier.io/v1alpha1/namespaces/{NS}/sandboxes/sb-1"


def _digest() -> str:
    return hashlib.sha256(secrets.token_urlsafe(32).encode()).hexdigest()


def _patches(kube: FakeKubernetes) -> int:
    return len([m for m, p, _ in kube.requests if p == PATH and m == "PATCH"])


@pytest.fixture
def replica(kubeconfig: Path) -> Iterator[KubernetesControlPlane]:
    """A second Router's plane on the same cluster."""
    other = from_url("kubernetes://", Transitions())
    assert other.wait_synced(10), other.problem()
    yield other
    other.close()


def test_the_object_holds_the_hash_never_a_token_and_shares_leave_links_alone(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    digest = _digest()
    link = kplane.create_share_link("sb-1", NS, token_hash=digest, level="viewer",
                                    expires_at=None, max_uses=2)
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["spec"]["sharing"] == {"shareLinks": [{
        "id": link.id, "tokenHash": digest, "level": "viewer", "maxUses": 2, "usedCount": 0}]}
    kplane.share("sb-1", NS, "user", "bob", "viewer")
    last = [q for m, p, q in kube.requests if p == PATH and m == "PATCH"]
    assert len(last) == 2
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None and stored["spec"]["sharing"]["shareLinks"][0]["usedCount"] == 0
    kplane.redeem_share_link(digest, "carol")
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["spec"]["sharing"]["shareLinks"][0]["usedCount"] == 1
    assert stored["spec"]["sharing"]["users"] == [{"identity": "bob", "level": "viewer"},
                                                  {"identity": "carol", "level": "viewer"}]
    reasons = [(e["reason"], e["message"]) for e in kube.items("events")
               if e["source"]["component"] == "agenttier-router"]
    assert reasons == [("ShareLinkCreated", link.id), ("ShareGranted", "bob"),
                       ("ShareGranted", "carol")]
    kplane.revoke_share_link("sb-1", NS, link.id)
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None and stored["spec"]["sharing"]["shareLinks"] == []


def test_a_use_won_by_another_replica_meanwhile_is_seen_after_the_409(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    digest = _digest()
    link = kplane.create_share_link("sb-1", NS, token_hash=digest, level="viewer",
                                    expires_at=None, max_uses=1)
    # Another Router redeems the last use between our read and our patch.
    kube.before_write = lambda method, path: kube.patch("sandboxes", NS, "sb-1", {"spec": {
        "sharing": {"users": [{"identity": "carol", "level": "viewer"}],
                    "shareLinks": [{"id": link.id, "tokenHash": digest, "level": "viewer",
                                    "maxUses": 1, "usedCount": 1}]}}})
    before = _patches(kube)
    with pytest.raises(ShareLinkRefused) as refused:
        kplane.redeem_share_link(digest, "bob")
    assert refused.value.reason == "exhausted"
    assert _patches(kube) == before + 1  # one refused by the API server (409), none after
    sandbox = kplane.get("sb-1", NS)
    assert dict(sandbox.shares.users) == {"carol": "viewer"}
    assert sandbox.shares.links[0].used_count == 1


def test_two_replicas_racing_for_three_uses_grant_exactly_three(
        kplane: KubernetesControlPlane, replica: KubernetesControlPlane,
        kube: FakeKubernetes) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    digest = _digest()
    kplane.create_share_link("sb-1", NS, token_hash=digest, level="viewer",
                             expires_at=None, max_uses=3)
    wait_for(lambda: any(s.shares.links for s in replica.named("sb-1")), "the replica's informer")
    people = [f"user-{i}" for i in range(8)]
    start = threading.Barrier(len(people))
    won: list[str] = []
    refused: list[str] = []

    def redeem(plane: KubernetesControlPlane, who: str) -> None:
        start.wait()
        try:
            plane.redeem_share_link(digest, who)
            won.append(who)
        except ShareLinkRefused as error:
            refused.append(error.reason)

    threads = [threading.Thread(target=redeem, args=(kplane if i % 2 else replica, who))
               for i, who in enumerate(people)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 3 and refused == ["exhausted"] * 5
    stored = kube.get("sandboxes", NS, "sb-1")
    assert stored is not None
    assert stored["spec"]["sharing"]["shareLinks"][0]["usedCount"] == 3
    assert sorted(u["identity"] for u in stored["spec"]["sharing"]["users"]) == sorted(won)


def test_a_link_written_with_a_plain_token_by_an_older_writer_still_redeems(
        kplane: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kplane.create("sb-1", NS, "general-coding", "alice", "")
    token = secrets.token_urlsafe(32)
    kube.patch("sandboxes", NS, "sb-1", {"spec": {"sharing": {"shareLinks": [
        {"id": "00112233aabbccdd", "token": token, "level": "collaborator"}]}}})
    wait_for(lambda: bool(kplane.get("sb-1", NS).shares.links), "the informer")
    redeemed = kplane.redeem_share_link(hashlib.sha256(token.encode()).hexdigest(), "bob")
    assert (redeemed.level, redeemed.link.used_count) == ("collaborator", 1)
