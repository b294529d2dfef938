"""The local control plane's lifecycle: transitions and their order, conflicts, names, delete."""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import stat
import threading
from pathlib import Path

import pytest
from cp_helpers import NS, StepClock, Transitions, running, wait_for

from agenttier_router.controlplane import (
    DEFAULT_TEMPLATES,
    ControlPlaneError,
    InvalidRequest,
    LocalControlPlane,
    Phase,
    SandboxConflict,
    SandboxNotFound,
    Transition,
)
from agenttier_router.controlplane import local as local_module

C, R, S, E, D = Phase.CREATING, Phase.RUNNING, Phase.STOPPED, Phase.ERROR, Phase.DELETING


def test_every_transition_in_order(root: Path) -> None:
    clock = StepClock()
    seen = Transitions()
    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, seen, clock=clock)
    try:
        created = plane.create("sb-1", NS, "general-coding", "alice", "alice@example.com")
        assert created.phase is C
        assert (created.owner, created.owner_email) == ("alice", "alice@example.com")
        assert created.template == DEFAULT_TEMPLATES["general-coding"]
        wait_for(lambda: plane.get("sb-1", NS).phase is R, "Running")
        workdir = root / NS / "sb-1"
        assert workdir.is_dir()
        assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
        assert plane.stop("sb-1", NS).phase is S
        assert plane.resume("sb-1", NS).phase is R
        plane.delete("sb-1", NS)
    finally:
        plane.close()
    assert seen.of("sb-1") == [
        (C, "Created"), (R, "Started"), (S, "Stopped"), (R, "Resumed"),
        (D, "Deleting"), (D, "Deleted"),
    ]
    for transition in seen.items:
        assert transition.sandbox.phase is transition.phase
        assert transition.sandbox.namespace == NS
    times = [t.time for t in seen.items]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert not workdir.exists()
    with pytest.raises(SandboxNotFound):
        plane.get("sb-1", NS)
    assert plane.list() == []


def test_list_is_oldest_first_and_filters_by_namespace(plane: LocalControlPlane) -> None:
    for name, namespace in [("b", "one"), ("a", "two"), ("c", "one")]:
        plane.create(name, namespace, "minimal", "alice", "")
    assert [s.name for s in plane.list()] == ["b", "a", "c"]
    assert [s.name for s in plane.list("one")] == ["b", "c"]
    assert plane.list("three") == []


def test_templates_are_the_ones_given(plane: LocalControlPlane) -> None:
    assert dict(plane.templates()) == dict(DEFAULT_TEMPLATES)


def test_conflicts(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    with pytest.raises(SandboxConflict, match="already exists"):
        plane.create("sb", NS, "minimal", "bob", "")
    running(plane, "sb", "other-ns")  # the same name in another namespace is fine
    with pytest.raises(SandboxConflict, match="it is Running"):
        plane.resume("sb", NS)
    plane.stop("sb", NS)
    with pytest.raises(SandboxConflict, match="it is Stopped"):
        plane.stop("sb", NS)
    with pytest.raises(SandboxConflict, match="it is Stopped"):
        plane.exec("sb", NS, "true", 5)


BAD_LABELS = [
    pytest.param("", id="empty"),
    pytest.param("Upper", id="uppercase"),
    pytest.param("-lead", id="leading-dash"),
    pytest.param("trail-", id="trailing-dash"),
    pytest.param("under_score", id="underscore"),
    pytest.param("dot.ted", id="dot"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param("new\n", id="trailing-newline"),
    pytest.param("../up", id="path"),
    pytest.param(7, id="not-a-str"),
]


@pytest.mark.parametrize("label", BAD_LABELS)
def test_bad_names_and_namespaces(plane: LocalControlPlane, root: Path, label: object) -> None:
    with pytest.raises(InvalidRequest, match="name must be an RFC 1123 label"):
        plane.create(label, NS, "minimal", "alice", "")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="namespace must be an RFC 1123 label"):
        plane.create("sb", label, "minimal", "alice", "")  # type: ignore[arg-type]
    assert plane.list() == []
    assert [p for p in root.iterdir() if p.is_dir()] == []  # no sandbox directory


@pytest.mark.parametrize("label", ["a", "0", "a-b", "x" * 63, "1-2-3"])
def test_good_names(plane: LocalControlPlane, label: str) -> None:
    assert running(plane, label, label).name == label


def test_unknown_template(plane: LocalControlPlane) -> None:
    with pytest.raises(InvalidRequest, match="unknown template 'huge'"):
        plane.create("sb", NS, "huge", "alice", "")
    assert plane.list() == []


def test_delete_while_creating_leaves_no_directory_and_no_started(
    root: Path, transitions: Transitions
) -> None:
    # Hold every setup thread inside the sink, so that the next sandbox's setup waits its turn.
    release = threading.Event()
    held = threading.Semaphore(0)

    def sink(transition: Transition) -> None:
        transitions(transition)
        if transition.sandbox.name.startswith("hold-") and transition.reason == "Started":
            held.release()
            release.wait(30)

    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, sink)
    # Created from other threads: "Started" may reach the sink from the creating thread
    # (then the setup thread waits to deliver it) or from the setup thread; either way
    # each setup thread stays busy until released.
    creators = [
        threading.Thread(target=plane.create, args=(f"hold-{i}", NS, "minimal", "alice", ""))
        for i in range(local_module._SETUP_THREADS)
    ]
    try:
        for creator in creators:
            creator.start()
        for _ in creators:
            assert held.acquire(timeout=10)
        assert plane.create("early", NS, "minimal", "alice", "").phase is C
        assert plane.get("early", NS).phase is C  # its setup cannot have run
        plane.delete("early", NS)
        release.set()
        # Let the queued setup of "early" run now (close would cancel it).
        plane._setup.shutdown(wait=True)
    finally:
        release.set()
        for creator in creators:
            creator.join(10)
        plane.close()
    assert transitions.of("early") == [(C, "Created"), (D, "Deleting"), (D, "Deleted")]
    assert not (root / NS / "early").exists()


def test_create_then_delete_at_once_never_leaves_a_directory(
    plane: LocalControlPlane, root: Path, transitions: Transitions
) -> None:
    # Races delete against setup in flight, many times.
    names = [f"sb-{i}" for i in range(40)]
    for name in names:
        plane.create(name, NS, "minimal", "alice", "")
        plane.delete(name, NS)
    plane.close()
    leftovers = list((root / NS).iterdir()) if (root / NS).exists() else []
    assert leftovers == []
    for name in names:
        reasons = [reason for _, reason in transitions.of(name)]
        assert reasons[0] == "Created" and reasons[-2:] == ["Deleting", "Deleted"], reasons
        assert reasons in (["Created", "Deleting", "Deleted"],
                           ["Created", "Started", "Deleting", "Deleted"]), reasons


def test_setup_failure_is_an_error_phase(
    plane: LocalControlPlane, root: Path, transitions: Transitions
) -> None:
    (root / "broken").write_text("a file where the namespace directory should be")
    plane.create("sb", "broken", "minimal", "alice", "")
    wait_for(lambda: plane.get("sb", "broken").phase is not C, "setup to end")
    sandbox = plane.get("sb", "broken")
    assert sandbox.phase is E
    assert "could not create the working directory" in sandbox.message
    assert transitions.of("sb") == [(C, "Created"), (E, "SetupFailed")]
    assert transitions.items[-1].message == sandbox.message
    with pytest.raises(SandboxConflict, match="it is Error"):
        plane.exec("sb", "broken", "true", 5)
    with pytest.raises(SandboxConflict, match="it is Error"):
        plane.stop("sb", "broken")
    plane.delete("sb", "broken")
    assert transitions.of("sb")[-2:] == [(D, "Deleting"), (D, "Deleted")]


def test_a_directory_left_by_an_earlier_process_is_not_reused(
    plane: LocalControlPlane, root: Path
) -> None:
    stale = root / NS / "sb"
    stale.mkdir(parents=True)
    (stale / "someone-elses-secret").write_text("x")
    running(plane, "sb")
    assert plane.exec("sb", NS, "ls -A", 10).stdout == ""


def test_delete_failure_keeps_the_sandbox_in_error(
    plane: LocalControlPlane, transitions: Transitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fakes rmtree's failure: these tests run as root here, where permissions cannot cause it."""
    running(plane, "sb")

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(shutil, "rmtree", refuse)
    with pytest.raises(ControlPlaneError, match="could not delete"):
        plane.delete("sb", NS)
    sandbox = plane.get("sb", NS)
    assert sandbox.phase is E and "Permission denied" in sandbox.message
    assert transitions.of("sb")[-2:] == [(D, "Deleting"), (E, "DeleteFailed")]
    monkeypatch.undo()
    plane.delete("sb", NS)  # can be retried
    assert transitions.of("sb")[-1] == (D, "Deleted")


def test_delete_twice(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    plane.delete("sb", NS)
    with pytest.raises(SandboxNotFound):
        plane.delete("sb", NS)


def test_a_sandbox_being_deleted_refuses_delete_and_shares(
    root: Path, transitions: Transitions
) -> None:
    entered, release = threading.Event(), threading.Event()

    def sink(transition: Transition) -> None:
        transitions(transition)
        if transition.reason == "Deleting":
            entered.set()
            release.wait(30)

    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, sink)
    deleter = threading.Thread(target=plane.delete, args=("sb", NS))
    try:
        running(plane, "sb")
        deleter.start()
        assert entered.wait(10)
        assert plane.get("sb", NS).phase is D
        with pytest.raises(SandboxConflict, match="already Deleting"):
            plane.delete("sb", NS)
        with pytest.raises(SandboxConflict, match="it is Deleting"):
            plane.share("sb", NS, "user", "bob", "viewer")
        with pytest.raises(SandboxConflict, match="it is Deleting"):
            plane.stop("sb", NS)
    finally:
        release.set()
        deleter.join(10)
        plane.close()
    assert transitions.of("sb")[-2:] == [(D, "Deleting"), (D, "Deleted")]


def test_a_failing_sink_is_logged_and_changes_nothing(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def sink(transition: Transition) -> None:
        raise RuntimeError("sink is down")

    plane = LocalControlPlane(root, DEFAULT_TEMPLATES, sink)
    try:
        with caplog.at_level(logging.ERROR):
            running(plane, "sb")
            plane.stop("sb", NS)
            plane.delete("sb", NS)
    finally:
        plane.close()
    assert "transition sink failed" in caplog.text
    assert "sink is down" in caplog.text


def test_transitions_stay_in_order_under_concurrent_callers(
    plane: LocalControlPlane, transitions: Transitions
) -> None:
    running(plane, "sb")

    def flip() -> None:
        for _ in range(100):
            for action in (plane.stop, plane.resume):
                with contextlib.suppress(SandboxConflict):
                    action("sb", NS)

    threads = [threading.Thread(target=flip) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phases = [phase for phase, _ in transitions.of("sb")]
    assert phases[:2] == [C, R]
    for before, after in itertools.pairwise(phases[1:]):
        assert {before, after} == {R, S}, phases  # strictly alternating
    times = [t.time for t in transitions.items if t.sandbox.name == "sb"]
    assert times == sorted(times)


def test_close_refuses_new_work(plane: LocalControlPlane) -> None:
    running(plane, "sb")
    plane.close()
    with pytest.raises(ControlPlaneError, match="closed"):
        plane.create("other", NS, "minimal", "alice", "")
    with pytest.raises(ControlPlaneError, match="closed"):
        plane.exec("sb", NS, "true", 5)
    for action in ("stop", "resume", "delete"):
        with pytest.raises(ControlPlaneError, match="closed"):
            getattr(plane, action)("sb", NS)
    assert plane.get("sb", NS).phase is S  # closing stopped it
