"""Templates and analytics over real HTTP, in the SDK's shapes, each read recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agenttier.exceptions import AuthenticationError, NotFoundError
from agenttier.models import UsageAnalytics
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase

from agenttier_router.api.analytics import DEFAULT_STORAGE_GIB, HOURS_PER_MONTH
from agenttier_router.controlplane import Template
from agenttier_router.costs import PriceTable

TEMPLATES = {
    "small": Template(name="small", cpu=0.5, memory_gib=1.0, description="Small",
                      image="python:3.12"),
    "big": Template(name="big", cpu=4.0, memory_gib=16.0, description="Big"),
}
PRICES = PriceTable(cpu_per_vcpu_hour=0.04, memory_per_gib_hour=0.005)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    config = config_for(tmp_path, f"sqlite:///{tmp_path}/router.db", templates=TEMPLATES,
                        prices=PRICES)
    with running_router(config) as router:
        yield router


def _audit(router: Router, tmp_path: Path, action: str) -> list[tuple[str, str, dict[str, str]]]:
    assert router.state.recorder.flush(10)
    return [(e.actor, e.outcome, json.loads(e.details))
            for e in stored_audit(f"sqlite:///{tmp_path}/router.db", action=action)]


def test_templates_with_the_sdk(router: Router, tmp_path: Path) -> None:
    client = router.client("alice")
    listed = client.list_templates()
    assert [t.name for t in listed] == ["big", "small"]
    small = client.get_template("small")
    assert (small.description, small.image) == ("Small", "python:3.12")
    assert small.spec is not None
    assert small.spec["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert client.get_template("big").spec["resources"]["requests"] == {  # type: ignore[index]
        "cpu": "4", "memory": "16Gi"}
    assert small.resource_version and small.resource_version == listed[1].resource_version
    with pytest.raises(NotFoundError, match="template not found"):
        client.get_template("nope")
    with pytest.raises(AuthenticationError):
        router.client("not-a-key-0123456789").list_templates()
    assert [o for _, o, _ in _audit(router, tmp_path, "templates.list")] == ["success", "denied"]
    gets = _audit(router, tmp_path, "templates.get")
    assert [(o, d["template"]) for _, o, d in gets] == [
        ("success", "small"), ("success", "big"), ("denied", "nope")]


def test_templates_are_never_null(tmp_path: Path) -> None:
    with running_router(config_for(tmp_path, None, templates={})) as router:
        assert router.http("alice").get("/templates").json() == {"templates": []}


def test_usage_and_costs_from_real_resources(router: Router, tmp_path: Path) -> None:
    alice = router.client("alice")
    for name, template in (("s1", "small"), ("s2", "small"), ("b1", "big")):
        alice.create_sandbox(template, name)
    for name in ("s1", "s2", "b1"):
        wait_phase(alice, name)
    alice.get_sandbox("s2").stop()
    admin = router.http("carol")

    usage = admin.get("/analytics/usage")
    assert usage.status_code == 200, usage.text
    parsed = UsageAnalytics.model_validate(usage.json())
    assert parsed.total_sandboxes == 3
    assert parsed.status_breakdown == {"Running": 2, "Stopped": 1}
    assert parsed.template_breakdown == {"small": 2, "big": 1}
    assert parsed.startup_sample_count == 3 and parsed.avg_startup_ms >= 0

    body = admin.get("/analytics/costs").json()
    small = 0.5 * 0.04 + 1.0 * 0.005
    big = 4.0 * 0.04 + 16.0 * 0.005
    storage = 3 * DEFAULT_STORAGE_GIB * 0.10 / HOURS_PER_MONTH
    assert (body["running_sandboxes"], body["stopped_sandboxes"]) == (2, 1)
    assert body["total_hourly_compute"] == pytest.approx(small + big)
    assert body["total_hourly_storage"] == pytest.approx(storage)
    assert body["total_estimated_monthly"] == pytest.approx((small + big + storage) * 720)
    assert body["per_template"] == [
        {"template": "big", "hourly_cost": pytest.approx(big), "count": 1},
        {"template": "small", "hourly_cost": pytest.approx(small), "count": 2}]
    # the window's totals: s2's stop left a snapshot in the store
    assert body["groupBy"] == "sandbox" and [t["key"] for t in body["totals"]] == ["default/s2"]
    assert body["totalUsd"] == pytest.approx(body["totals"][0]["estimatedUsd"])
    assert body["prices"]["cpuPerVcpuHour"] == 0.04

    assert [o for _, o, _ in _audit(router, tmp_path, "analytics.usage")] == ["success"]
    assert [o for _, o, _ in _audit(router, tmp_path, "analytics.costs")] == ["success"]


def test_empty_fleet_answers_lists_not_nulls(router: Router) -> None:
    body = router.http("carol").get("/analytics/costs").json()
    assert body["per_template"] == [] and body["running_sandboxes"] == 0
    usage = router.http("carol").get("/analytics/usage").json()
    assert usage == {"total_sandboxes": 0, "status_breakdown": {}, "template_breakdown": {},
                     "avg_startup_ms": 0, "startup_sample_count": 0}


def test_analytics_refusals_are_recorded(router: Router, tmp_path: Path) -> None:
    assert router.http("alice").get("/analytics/usage").status_code == 403
    assert router.http().get("/analytics/costs").status_code == 401
    assert _audit(router, tmp_path, "analytics.usage") == [
        ("alice", "denied", {"email": "alice@example.com", "reason": "admin_required"})]
    assert [(a, o) for a, o, _ in _audit(router, tmp_path, "analytics.costs")] == [
        ("anonymous", "denied")]
