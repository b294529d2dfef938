"""The record types: required fields, defaults, time and event ids, details."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agenttier_router.storage import AuditEvent, CostSnapshot, SandboxEvent


def test_audit_event_defaults() -> None:
    before = datetime.now(UTC)
    event = AuditEvent(actor="alice", action="create")
    assert (event.resource, event.outcome) == ("sandbox", "success")
    assert (event.sandbox_id, event.namespace, event.details) == ("", "", "")
    assert before <= event.time <= datetime.now(UTC)
    assert event.time.tzinfo is not None
    assert len(event.event_id) == 32


def test_sandbox_event_and_cost_snapshot_defaults() -> None:
    event = SandboxEvent(sandbox_id="sb-1", phase="Running")
    assert (event.sandbox_name, event.namespace, event.reason, event.message) == ("", "", "", "")
    snapshot = CostSnapshot(sandbox_id="sb-1")
    assert (snapshot.cpu_hours, snapshot.mem_gb_hours, snapshot.estimated_usd) == (0.0, 0.0, 0.0)
    assert isinstance(CostSnapshot(sandbox_id="x", cpu_hours=2).cpu_hours, float)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: AuditEvent(actor="", action="create"), id="audit-empty-actor"),
        pytest.param(lambda: AuditEvent(actor="a", action=""), id="audit-empty-action"),
        pytest.param(lambda: SandboxEvent(sandbox_id="", phase="Running"), id="event-empty-id"),
        pytest.param(lambda: SandboxEvent(sandbox_id="sb", phase=""), id="event-empty-phase"),
        pytest.param(lambda: CostSnapshot(sandbox_id=""), id="cost-empty-id"),
        pytest.param(lambda: AuditEvent(actor="a", action="b", outcome="ok"), id="bad-outcome"),
        pytest.param(lambda: CostSnapshot(sandbox_id="s", cpu_hours=-1), id="negative-cost"),
        pytest.param(lambda: CostSnapshot(sandbox_id="s", estimated_usd=float("nan")), id="nan"),
        pytest.param(lambda: CostSnapshot(sandbox_id="s", mem_gb_hours=float("inf")), id="inf"),
    ],
)
def test_bad_values_raise_value_error(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: AuditEvent(actor=1, action="b"), id="int-actor"),
        pytest.param(lambda: SandboxEvent(sandbox_id="s", phase=None), id="none-phase"),
        pytest.param(lambda: CostSnapshot(sandbox_id="s", cpu_hours="1"), id="str-number"),
        pytest.param(lambda: CostSnapshot(sandbox_id="s", cpu_hours=True), id="bool-number"),
        pytest.param(lambda: AuditEvent(actor="a", action="b", time="2026-01-01"), id="str-time"),
    ],
)
def test_wrong_types_raise_type_error(make: object) -> None:
    with pytest.raises(TypeError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("cls_kwargs", [
    (AuditEvent, {"actor": "a", "action": "b"}),
    (SandboxEvent, {"sandbox_id": "s", "phase": "Running"}),
    (CostSnapshot, {"sandbox_id": "s"}),
], ids=["audit", "sandbox-event", "cost"])
def test_naive_time_is_rejected(cls_kwargs: tuple[type, dict[str, str]]) -> None:
    cls, kwargs = cls_kwargs
    with pytest.raises(ValueError, match="timezone-aware"):
        cls(**kwargs, time=datetime(2026, 11, 26, 17, 0))


def test_aware_time_in_another_zone_is_kept() -> None:
    at = datetime(2026, 11, 26, 19, 0, tzinfo=timezone(timedelta(hours=2)))
    assert AuditEvent(actor="a", action="b", time=at).time == at


def test_event_ids_are_unique_and_time_ordered() -> None:
    base = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    ids = [
        AuditEvent(actor="a", action="b", time=base + timedelta(microseconds=i)).event_id
        for i in range(2000)
    ]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_given_event_id_is_kept() -> None:
    assert SandboxEvent(sandbox_id="s", phase="P", event_id="abc").event_id == "abc"


def test_details_mapping_is_stored_as_json_text() -> None:
    event = AuditEvent(actor="a", action="exec", details={"command": "ls", "exitCode": 0, "é": 1})
    assert isinstance(event.details, str)
    assert json.loads(event.details) == {"command": "ls", "exitCode": 0, "é": 1}
    assert AuditEvent(actor="a", action="b", details="plain text").details == "plain text"


def test_records_are_frozen() -> None:
    event = AuditEvent(actor="a", action="b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.actor = "mallory"  # type: ignore[misc]
    assert dataclasses.replace(event, actor="bob").event_id == event.event_id
