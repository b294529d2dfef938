"""Shares in the local control plane: grants by user and group, revocation, immutable snapshots."""

from __future__ import annotations

import pytest
from cp_helpers import NS, running

from agenttier_router.controlplane import InvalidRequest, LocalControlPlane


def test_snapshots_are_immutable(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    before = plane.share("sb", NS, "user", "bob", "viewer")
    plane.share("sb", NS, "user", "carol", "collaborator")
    assert dict(before.shares.users) == {"bob": "viewer"}  # an old snapshot does not change
    with pytest.raises(TypeError):
        before.shares.users["mallory"] = "collaborator"  # type: ignore[index]
    assert "mallory" not in plane.get("sb", NS).shares.users


def test_shares_survive_stop_and_resume(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    plane.share("sb", NS, "group", "devs", "viewer")
    plane.stop("sb", NS)
    assert dict(plane.resume("sb", NS).shares.groups) == {"devs": "viewer"}


@pytest.mark.parametrize(("kind", "identity", "level", "message"), [
    pytest.param("team", "bob", "viewer", "kind must be", id="bad-kind"),
    pytest.param("user", "bob", "owner", "level must be", id="bad-level"),
    pytest.param("user", "", "viewer", "identity must be", id="empty-identity"),
    pytest.param("user", "   ", "viewer", "identity must be", id="blank-identity"),
    pytest.param("user", "x" * 256, "viewer", "at most 255", id="long-identity"),
    pytest.param("user", 42, "viewer", "identity must be", id="identity-not-a-str"),
])
def test_bad_shares(
    plane: LocalControlPlane, kind: str, identity: object, level: str, message: str
) -> None:
    running(plane, "sb")
    with pytest.raises(InvalidRequest, match=message):
        plane.share("sb", NS, kind, identity, level)  # type: ignore[arg-type]
    assert dict(plane.get("sb", NS).shares.users) == {}


def test_longest_identity_and_bad_unshare(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    longest = "x" * 255
    assert longest in plane.share("sb", NS, "user", longest, "viewer").shares.users
    with pytest.raises(InvalidRequest, match="identity must be"):
        plane.unshare("sb", NS, "")
