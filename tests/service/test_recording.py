"""Recording: a transition seen twice (two replicas, a restart, a re-list) is stored once."""

from __future__ import annotations

from datetime import UTC, datetime

from agenttier_router.controlplane import DEFAULT_TEMPLATES, Phase, Sandbox, Transition
from agenttier_router.service import Recording
from agenttier_router.storage import Record, SandboxEvent, SandboxEventFilter, SQLBackend

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _transition(uid: str, seq: int, phase: Phase = Phase.RUNNING) -> Transition:
    sandbox = Sandbox(name="sb", namespace="ns", template=DEFAULT_TEMPLATES["minimal"],
                      phase=phase, owner="alice", owner_email="", created_at=AT,
                      last_activity_at=AT, uid=uid)
    return Transition(sandbox, phase, "Started", "", AT, id=f"{uid}/{seq}")


def _replica() -> tuple[Recording, list[Record]]:
    """One Router's recording, keeping what it would hand the recorder."""
    written: list[Record] = []
    return Recording(written.append, lambda t: None), written


def test_one_transition_seen_by_two_replicas_is_stored_once(backend: SQLBackend) -> None:
    a, from_a = _replica()
    b, from_b = _replica()
    a.on_transition(_transition("uid-1", 1))
    b.on_transition(_transition("uid-1", 1))
    b.on_transition(_transition("uid-1", 2, Phase.STOPPED))
    backend.write_batch(from_a)
    backend.write_batch(from_b)
    rows = backend.list_sandbox_events(SandboxEventFilter()).items
    assert sorted(r.phase for r in rows) == ["Running", "Stopped"]


def test_a_recreated_sandbox_does_not_collide_with_the_old_one(backend: SQLBackend) -> None:
    recording, written = _replica()
    recording.on_transition(_transition("uid-old", 1))
    recording.on_transition(_transition("uid-new", 1))
    backend.write_batch(written)
    assert len(backend.list_sandbox_events(SandboxEventFilter()).items) == 2


def test_event_ids_are_fixed_width_and_stable() -> None:
    recording, written = _replica()
    recording.on_transition(_transition("u", 1))
    recording.on_transition(_transition("u", 1))
    first, second = written
    assert isinstance(first, SandboxEvent) and isinstance(second, SandboxEvent)
    assert first.event_id == second.event_id
    assert len(first.event_id) == 32
    assert int(first.event_id, 16) >= 0
