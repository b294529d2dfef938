"""The control-plane contract, run against every plane: local, and Kubernetes (a fake API server).

Each test takes ``driver`` (contract_helpers): the plane, plus whoever moves its
sandboxes between phases. What differs between planes by design is left to
their own tests (the local plane's directories and processes; the Kubernetes
plane's objects, Events and faults).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_helpers import Driver
from cp_helpers import NS, Transitions

from agenttier_router.controlplane import (
    ExecResult,
    InvalidRequest,
    Phase,
    SandboxConflict,
    SandboxNotFound,
)

C, R, S, D = Phase.CREATING, Phase.RUNNING, Phase.STOPPED, Phase.DELETING


def _phases(transitions: Transitions, name: str) -> list[Phase]:
    """The sandbox's phase transitions (Kubernetes Events left out), repeats collapsed."""
    phases: list[Phase] = []
    for t in list(transitions.items):
        mine = t.sandbox.name == name and not t.id.startswith("event/")
        if mine and (not phases or phases[-1] is not t.phase):
            phases.append(t.phase)
    return phases


def test_the_lifecycle_and_its_transitions(driver: Driver, transitions: Transitions) -> None:
    created = driver.running("sb-1")
    assert (created.owner, created.owner_email) == ("alice", "alice@example.com")
    assert created.uid
    assert created.template.name == "general-coding"
    assert (created.template.cpu, created.template.memory_gib) == (0.5, 1.0)
    driver.stop("sb-1")
    driver.resume("sb-1")
    driver.delete("sb-1")

    phases = _phases(transitions, "sb-1")
    assert phases[:3] == [C, R, S]
    assert phases[-2:] == [R, D]
    assert set(phases[3:-2]) <= {C}  # a resume may pass through Creating
    ids = [t.id for t in transitions.items]
    assert all(ids) and len(ids) == len(set(ids))
    for transition in transitions.items:
        assert transition.sandbox.phase is transition.phase
        assert transition.sandbox.uid == created.uid
    with pytest.raises(SandboxNotFound):
        driver.plane.get("sb-1", NS)
    assert driver.plane.list() == []


def test_a_recreated_name_gets_a_new_uid(driver: Driver) -> None:
    first = driver.running("sb-1")
    driver.delete("sb-1")
    second = driver.running("sb-1")
    assert first.uid != second.uid


def test_list_is_oldest_first_and_filters_by_namespace_and_named_finds_all(
        driver: Driver) -> None:
    for name, namespace in [("a", "one"), ("b", "two"), ("c", "one")]:
        driver.plane.create(name, namespace, "general-coding", "alice", "")
    assert [s.name for s in driver.plane.list()] == ["a", "b", "c"]
    assert [s.name for s in driver.plane.list("one")] == ["a", "c"]
    assert driver.plane.list("three") == []
    driver.plane.create("a", "two", "general-coding", "bob", "")
    assert sorted(s.namespace for s in driver.plane.named("a")) == ["one", "two"]
    assert driver.plane.named("zzz") == []


def test_templates_include_general_coding(driver: Driver) -> None:
    template = driver.plane.templates()["general-coding"]
    assert (template.cpu, template.memory_gib) == (0.5, 1.0)


def test_conflicts(driver: Driver) -> None:
    driver.running("sb")
    with pytest.raises(SandboxConflict, match="already exists"):
        driver.plane.create("sb", NS, "general-coding", "bob", "")
    driver.running("sb", "other-ns")  # the same name in another namespace is fine
    with pytest.raises(SandboxConflict):
        driver.plane.resume("sb", NS)
    driver.stop("sb")
    with pytest.raises(SandboxConflict):
        driver.plane.stop("sb", NS)
    with pytest.raises(SandboxConflict):
        driver.plane.exec("sb", NS, "true", 5)


@pytest.mark.parametrize("action", ["get", "stop", "resume", "delete", "exec", "share", "unshare"])
def test_not_found(driver: Driver, action: str) -> None:
    plane = driver.plane
    driver.running("sb")
    calls: dict[str, Callable[[str, str], object]] = {
        "get": lambda n, ns: plane.get(n, ns),
        "stop": lambda n, ns: plane.stop(n, ns),
        "resume": lambda n, ns: plane.resume(n, ns),
        "delete": lambda n, ns: plane.delete(n, ns),
        "exec": lambda n, ns: plane.exec(n, ns, "true", 5),
        "share": lambda n, ns: plane.share(n, ns, "user", "bob", "viewer"),
        "unshare": lambda n, ns: plane.unshare(n, ns, "bob"),
    }
    with pytest.raises(SandboxNotFound, match="missing"):
        calls[action]("missing", NS)
    with pytest.raises(SandboxNotFound):
        calls[action]("sb", "other-ns")


@pytest.mark.parametrize("label", ["", "Upper", "-lead", "under_score", "a" * 64, "new\n", 7])
def test_bad_names_and_namespaces(driver: Driver, label: object) -> None:
    with pytest.raises(InvalidRequest, match="name must be an RFC 1123 label"):
        driver.plane.create(label, NS, "general-coding", "alice", "")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="namespace must be an RFC 1123 label"):
        driver.plane.create("sb", label, "general-coding", "alice", "")  # type: ignore[arg-type]
    assert driver.plane.list() == []


def test_unknown_template(driver: Driver) -> None:
    with pytest.raises(InvalidRequest, match="unknown template 'huge'"):
        driver.plane.create("sb", NS, "huge", "alice", "")


def test_shares_grant_change_and_revoke_with_immutable_snapshots(driver: Driver) -> None:
    plane = driver.plane
    created = driver.running("sb")
    assert dict(created.shares.users) == {} and dict(created.shares.groups) == {}
    before = plane.share("sb", NS, "user", "bob@example.com", "viewer")
    plane.share("sb", NS, "group", "devs", "collaborator")
    both = plane.share("sb", NS, "group", "bob@example.com", "viewer")
    assert dict(both.shares.users) == {"bob@example.com": "viewer"}
    assert dict(both.shares.groups) == {"devs": "collaborator", "bob@example.com": "viewer"}
    changed = plane.share("sb", NS, "user", "bob@example.com", "collaborator")
    assert dict(changed.shares.users) == {"bob@example.com": "collaborator"}
    revoked = plane.unshare("sb", NS, "bob@example.com")  # as a user and as a group
    assert dict(revoked.shares.users) == {}
    assert dict(revoked.shares.groups) == {"devs": "collaborator"}
    assert plane.get("sb", NS).shares == revoked.shares
    assert plane.unshare("sb", NS, "nobody").shares == revoked.shares  # revoking none is fine
    assert dict(before.shares.users) == {"bob@example.com": "viewer"}  # old snapshots stay
    with pytest.raises(TypeError):
        before.shares.users["mallory"] = "collaborator"  # type: ignore[index]


def test_shares_survive_stop_and_resume(driver: Driver) -> None:
    driver.running("sb")
    driver.plane.share("sb", NS, "group", "devs", "viewer")
    driver.stop("sb")
    driver.resume("sb")
    assert dict(driver.plane.get("sb", NS).shares.groups) == {"devs": "viewer"}


@pytest.mark.parametrize(("kind", "identity", "level", "message"), [
    pytest.param("team", "bob", "viewer", "kind must be", id="bad-kind"),
    pytest.param("user", "bob", "owner", "level must be", id="bad-level"),
    pytest.param("user", "   ", "viewer", "identity must be", id="blank-identity"),
    pytest.param("user", "x" * 256, "viewer", "at most 255", id="long-identity"),
])
def test_bad_shares(driver: Driver, kind: str, identity: object, level: str,
                    message: str) -> None:
    driver.running("sb")
    with pytest.raises(InvalidRequest, match=message):
        driver.plane.share("sb", NS, kind, identity, level)  # type: ignore[arg-type]
    assert dict(driver.plane.get("sb", NS).shares.users) == {}


def test_exec_output_exit_code_and_timeout(driver: Driver) -> None:
    driver.running("sb")
    result = driver.plane.exec("sb", NS, "printf out; printf err >&2; exit 7", 10)
    assert result == ExecResult(stdout="out", stderr="err", exit_code=7, timed_out=False)
    slow = driver.plane.exec("sb", NS, "sleep 30", 0.3)
    assert (slow.exit_code, slow.timed_out) == (124, True)


@pytest.mark.parametrize(("command", "timeout", "message"), [
    pytest.param("", 10, "non-empty", id="empty-command"),
    pytest.param("echo a\0b", 10, "NUL", id="nul"),
    pytest.param("#" * 200_000, 10, "too long", id="too-long"),
    pytest.param("true", 0, "timeout must be", id="zero-timeout"),
    pytest.param("true", 3600.5, "timeout must be", id="over-an-hour"),
])
def test_bad_exec_input(driver: Driver, command: str, timeout: float, message: str) -> None:
    driver.running("sb")
    with pytest.raises(InvalidRequest, match=message):
        driver.plane.exec("sb", NS, command, timeout)


def test_exec_needs_running(driver: Driver) -> None:
    driver.running("sb")
    driver.stop("sb")
    with pytest.raises(SandboxConflict):
        driver.plane.exec("sb", NS, "true", 10)
    driver.resume("sb")
    assert driver.plane.exec("sb", NS, "true", 10).exit_code == 0
