"""`/records/*/export` (CSV and JSON lines, every row, newest first) and the cost series."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from router_helpers import Router, config_for, running_router, stored_costs

from agenttier_router.api.models import AuditEventOut, CostSnapshotOut
from agenttier_router.storage import (
    AuditEvent,
    CostSnapshot,
    SandboxEvent,
    format_ts,
    open_backend,
)
from agenttier_router.storage.rollups import roll_up

T0 = datetime(2026, 11, 1, 21, 30, tzinfo=UTC)
BULK = 2345  # more than two pages of 1,000


def fields(model: type[AuditEventOut] | type[CostSnapshotOut]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


@pytest.fixture
def router(store_url: str, tmp_path: Path) -> Iterator[Router]:
    backend = open_backend(store_url)
    try:
        backend.write_batch([
            AuditEvent(actor="bulk", action="exec", sandbox_id=f"sb-{i % 7}", namespace="ns",
                       details={"i": i, "note": 'comma, "quote"\nnewline'},
                       time=T0 + timedelta(seconds=i // 3))
            for i in range(BULK)
        ])
        backend.write_batch([
            SandboxEvent(sandbox_id="sb-1", namespace="ns", phase=phase, reason=phase,
                         time=T0 + timedelta(minutes=i))
            for i, phase in enumerate(["Creating", "Running", "Stopped"])
        ])
        backend.write_batch([
            CostSnapshot(sandbox_id=f"sb-{i % 3}", namespace="ns", owner=("al", "bo", "")[i % 3],
                         template="py", cpu_hours=0.01 * (i % 5 + 1), mem_gb_hours=0.02,
                         estimated_usd=0.001 * (i % 7 + 1), time=T0 + timedelta(minutes=10 * i))
            for i in range(3 * 24 * 6)  # three days, every ten minutes
        ])
        roll_up(backend, now=T0 + timedelta(days=2))  # part rollups, part raw
    finally:
        backend.close()
    with running_router(config_for(tmp_path, store_url)) as running:
        yield running


def test_export_audit_as_csv_and_jsonl(router: Router) -> None:
    admin = router.http("carol")
    as_csv = admin.get("/records/audit/export", params={"format": "csv", "actor": "bulk"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == fields(AuditEventOut)
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert len(body) == BULK
    stamps = [r["timestamp"] for r in body]
    assert stamps == sorted(stamps, reverse=True)
    assert len({r["eventId"] for r in body}) == BULK
    assert json.loads(body[0]["details"])["note"] == 'comma, "quote"\nnewline'

    as_jsonl = admin.get("/records/audit/export",
                         params={"format": "jsonl", "actor": "bulk", "sandbox": "sb-3"})
    assert as_jsonl.status_code == 200
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert len(lines) == sum(1 for i in range(BULK) if i % 7 == 3)
    assert set(lines[0]) == set(fields(AuditEventOut))
    assert lines[0]["sandboxId"] == "sb-3" and isinstance(lines[0]["details"], dict)
    assert [x["eventId"] for x in lines] == [r["eventId"] for r in body if r["sandboxId"] == "sb-3"]

    # Each export is itself recorded, with its filter.
    exports = admin.get("/audit/events", params={"action": "export"}).json()["events"]
    assert [(e["actor"], e["resource"], e["details"]["format"]) for e in exports] == [
        ("carol", "audit", "jsonl"), ("carol", "audit", "csv")]
    assert exports[0]["details"]["filter"] == {"actor": "bulk", "sandbox_id": "sb-3"}


def test_export_costs_and_sandbox_events(router: Router) -> None:
    admin = router.http("carol")
    costs = admin.get("/records/costs/export", params={
        "format": "csv", "owner": "al", "since": format_ts(T0 + timedelta(days=1))})
    assert costs.status_code == 200, costs.text
    rows = list(csv.DictReader(io.StringIO(costs.text)))
    assert list(rows[0]) == fields(CostSnapshotOut)
    want = [i for i in range(3 * 24 * 6) if i % 3 == 0 and i * 10 >= 24 * 60]
    assert len(rows) == len(want)
    assert {r["owner"] for r in rows} == {"al"} and {r["template"] for r in rows} == {"py"}
    events = admin.get("/records/sandbox-events/export", params={"format": "jsonl"})
    assert [json.loads(x)["phase"] for x in events.text.splitlines()] == [
        "Stopped", "Running", "Creating"]
    empty = admin.get("/records/costs/export", params={"format": "csv", "namespace": "none"})
    assert empty.text.splitlines() == [",".join(fields(CostSnapshotOut))]


@pytest.mark.parametrize(("params", "names"), [
    ({"format": "xml"}, "format"),
    ({}, "format"),
    ({"format": "csv", "since": "yesterday"}, "since"),
    ({"format": "csv", "since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
     "since"),
    ({"format": "csv", "outcome": "maybe"}, "outcome"),
    ({"format": "csv", "actor": "x" * 300}, "actor"),
    ({"format": "jsonl", "actor": ""}, "actor"),
    ({"format": "jsonl", "sandbox": "s" * 256}, "sandbox:"),
])
def test_an_invalid_export_filter_is_a_400_before_any_row(
    router: Router, params: dict[str, str], names: str
) -> None:
    response = router.http("carol").get("/records/audit/export", params=params)
    assert response.status_code == 400, response.text
    assert names in response.json()["error"]


def test_exports_and_series_are_for_admins(router: Router) -> None:
    for path in ("/records/audit/export", "/records/sandbox-events/export",
                 "/records/costs/export", "/records/costs/series"):
        assert router.http("alice").get(path, params={"format": "csv"}).status_code == 403
        assert router.http().get(path, params={"format": "csv"}).status_code == 401


def test_cost_series_by_day_and_hour(router: Router, store_url: str) -> None:
    admin = router.http("carol")
    since, until = T0 + timedelta(minutes=45), T0 + timedelta(days=2, hours=5, minutes=15)
    snapshots = [s for s in stored_costs(store_url) if since <= s.time < until]
    for bucket in ("day", "hour"):
        body = admin.get("/records/costs/series", params={
            "bucket": bucket, "groupBy": "owner", "since": format_ts(since),
            "until": format_ts(until)})
        assert body.status_code == 200, body.text
        data = body.json()
        assert (data["bucket"], data["groupBy"]) == (bucket, "owner")
        assert [s["key"] for s in data["series"]] == [t["key"] for t in data["totals"]]
        assert {t["key"] for t in data["totals"]} == {"al", "bo", "(unknown)"}
        for line in data["series"]:
            owner = "" if line["key"] == "(unknown)" else line["key"]
            mine = [s for s in snapshots if s.owner == owner]
            assert sum(p["samples"] for p in line["points"]) == len(mine)
            total = sum(p["estimatedUsd"] for p in line["points"])
            assert total == pytest.approx(sum(s.estimated_usd for s in mine), rel=1e-9)
            for point in line["points"]:
                start = datetime.fromisoformat(point["bucket"])
                width = timedelta(days=1) if bucket == "day" else timedelta(hours=1)
                assert start == (start.replace(hour=0) if bucket == "day" else start)
                assert start.minute == 0 and start.tzinfo is not None
                inside = [s for s in mine if start <= s.time < start + width]
                assert point["samples"] == len(inside)
        assert data["totalUsd"] == pytest.approx(sum(s.estimated_usd for s in snapshots),
                                                 rel=1e-9)
    bad = admin.get("/records/costs/series", params={"bucket": "week"})
    assert bad.status_code == 400 and "bucket" in bad.json()["error"]

