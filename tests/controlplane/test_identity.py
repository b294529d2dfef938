"""Sandboxes and transitions have stable identities; a lookup by name finds only that name."""

from __future__ import annotations

from cp_helpers import NS, Transitions, running, wait_for

from agenttier_router.controlplane import LocalControlPlane, Phase


def test_a_recreated_sandbox_gets_a_new_uid(plane: LocalControlPlane) -> None:
    first = running(plane, "sb-uid")
    plane.delete("sb-uid", NS)
    second = running(plane, "sb-uid")
    assert first.uid and second.uid
    assert first.uid != second.uid
    assert plane.get("sb-uid", NS).uid == second.uid


def test_every_transition_has_its_own_stable_id(
    plane: LocalControlPlane, transitions: Transitions
) -> None:
    sandbox = running(plane, "sb-ids")
    plane.stop("sb-ids", NS)
    plane.resume("sb-ids", NS)
    plane.delete("sb-ids", NS)
    mine = [t for t in transitions.items if t.sandbox.name == "sb-ids"]
    assert [t.phase for t in mine] == [Phase.CREATING, Phase.RUNNING, Phase.STOPPED,
                                       Phase.RUNNING, Phase.DELETING, Phase.DELETING]
    ids = [t.id for t in mine]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(sandbox.uid) for i in ids)


def test_named_finds_every_namespace_and_nothing_else(plane: LocalControlPlane) -> None:
    running(plane, "twin", "team-a")
    running(plane, "twin", "team-b")
    running(plane, "other", "team-a")
    assert [(s.namespace, s.name) for s in plane.named("twin")] == [
        ("team-a", "twin"), ("team-b", "twin")]
    assert plane.named("nobody") == []
    plane.delete("twin", "team-a")
    assert [s.namespace for s in plane.named("twin")] == ["team-b"]
    plane.delete("twin", "team-b")
    wait_for(lambda: plane.named("twin") == [], "twin gone")
