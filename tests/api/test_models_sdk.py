"""The newer endpoints' JSON, read back by the SDK's own models where agenttier 0.8.1 has them,
and checked key by key against the facts file's wire names where it does not yet."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agenttier.models import FileEntry, SandboxSummary, Template, UsageAnalytics
from pydantic import BaseModel, ValidationError

from agenttier_router.api.models import CreatedBy
from agenttier_router.api.models_sdk import (
    ACTION_GROUPS,
    AdminSandboxesOut,
    AdminSandboxOut,
    ApiKeyCreatedOut,
    ApiKeyCreateRequest,
    ApiKeyOut,
    BulkActionOut,
    BulkActionRequest,
    BulkActionResult,
    BulkCreateOut,
    BulkCreateRequest,
    BulkCreateResult,
    CostEstimateOut,
    FileEntryOut,
    FileListOut,
    FileWrittenOut,
    PatchRequest,
    PatchResultOut,
    ShareLinkCreatedOut,
    ShareLinkOut,
    ShareLinkRequest,
    TemplateCostOut,
    TemplateOut,
    TemplatesOut,
    UsageOut,
)


def wire(model: BaseModel) -> Any:
    """What FastAPI sends: by alias, through real JSON."""
    return json.loads(model.model_dump_json(by_alias=True))


def test_templates_parse_as_the_sdks_template() -> None:
    out = TemplatesOut(templates=[TemplateOut(
        name="minimal", description="small", image="", resource_version="1",
        spec={"resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}})])
    body = wire(out)
    parsed = [Template.model_validate(t) for t in body["templates"]]
    assert parsed[0].resource_version == "1"
    assert parsed[0].spec == {"resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}
    assert set(body["templates"][0]) == {"name", "description", "image", "resourceVersion", "spec"}


def test_file_entries_parse_as_the_sdks_file_entry() -> None:
    body = wire(FileListOut(path="/workspace", entries=[
        FileEntryOut(name="src", size=4096, is_dir=True, mode="drwxr-xr-x", modified_at=17)]))
    entry = FileEntry.model_validate(body["entries"][0])
    assert (entry.name, entry.size, entry.is_dir, entry.mode, entry.modified_at) == (
        "src", 4096, True, "drwxr-xr-x", 17)
    assert set(body) == {"path", "entries"}
    assert wire(FileWrittenOut(path="/workspace/a", bytes=3)) == {"path": "/workspace/a",
                                                                  "bytes": 3}


def test_usage_parses_as_the_sdks_usage_analytics() -> None:
    body = wire(UsageOut(total_sandboxes=3, status_breakdown={"Running": 2, "creating": 1},
                         template_breakdown={"minimal": 3}, avg_startup_ms=120,
                         startup_sample_count=2))
    usage = UsageAnalytics.model_validate(body)
    assert usage.total_sandboxes == 3 and usage.status_breakdown["Running"] == 2


def test_admin_sandboxes_parse_as_sandbox_summaries() -> None:
    key = ApiKeyOut(id="agenttier-apikey-ab", user_id="alice", name="ci", sandbox_id="sb",
                    action_groups=["files:read"], created_at="2026-01-01T00:00:00Z")
    body = wire(AdminSandboxesOut(sandboxes=[AdminSandboxOut(
        sandbox_id="sb", name="sb", namespace="default", status="Running",
        template_ref="minimal", created_at="x", last_activity_at="y",
        created_by=CreatedBy(email="a@example.com", display_name="alice"),
        scoped_api_keys=[key])]))
    summary = SandboxSummary.model_validate(body["sandboxes"][0])
    assert summary.sandbox_id == "sb" and summary.created_by is not None
    assert body["sandboxes"][0]["scopedApiKeys"][0]["actionGroups"] == ["files:read"]


# The models below are not in agenttier 0.8.1 (they are at the SDK's head): check the wire names.

def test_patch_result_wire_names() -> None:
    body = wire(PatchResultOut(sandbox_id="sb", applied={"resources": "on-restart"},
                               restart_required=True, message="restart"))
    assert body == {"sandboxId": "sb", "applied": {"resources": "on-restart"},
                    "restartRequired": True, "message": "restart"}


def test_patch_request_counts_an_empty_map_as_present() -> None:
    body = PatchRequest.model_validate({"labels": {}, "idleTimeout": "30m", "resources": None})
    assert body.present() == ["idleTimeout", "labels"]
    assert PatchRequest.model_validate({}).present() == []


def test_bulk_wire_names() -> None:
    created = wire(BulkCreateOut(results=[
        BulkCreateResult(index=0, status="created", sandbox_id="a"),
        BulkCreateResult(index=1, status="error", error="bad template")]))
    assert created["results"][0] == {"index": 0, "status": "created", "sandboxId": "a",
                                     "error": None}
    acted = wire(BulkActionOut(results=[BulkActionResult(id="a", status="ok")]))
    assert acted == {"results": [{"id": "a", "status": "ok", "error": None}]}


def test_bulk_requests_take_the_sdks_bodies() -> None:
    item = {"name": "a", "namespace": "default",
            "templateRef": {"name": "minimal", "kind": "ClusterSandboxTemplate"},
            "idleTimeout": "30m"}
    assert BulkCreateRequest.model_validate({"items": [item]}).items[0].idle_timeout == "30m"
    with pytest.raises(ValidationError):
        BulkCreateRequest.model_validate({"items": []})
    with pytest.raises(ValidationError):
        BulkActionRequest.model_validate({"action": "explode", "ids": ["a"]})
    with pytest.raises(ValidationError):
        BulkActionRequest.model_validate({"action": "stop", "ids": []})


def test_share_link_wire_names() -> None:
    created = wire(ShareLinkCreatedOut(id="0123456789abcdef", token="t" * 43, level="viewer",
                                       expires_at=None, max_uses=0, warning="shown once"))
    assert set(created) == {"id", "token", "level", "expiresAt", "maxUses", "warning"}
    listed = wire(ShareLinkOut(id="0123456789abcdef", level="collaborator",
                               expires_at="2026-01-01T00:00:00Z", max_uses=3, used_count=1))
    assert set(listed) == {"id", "level", "expiresAt", "maxUses", "usedCount"}
    assert ShareLinkRequest.model_validate({"maxUses": 2, "expiresIn": "24h"}).level == "viewer"
    with pytest.raises(ValidationError):
        ShareLinkRequest.model_validate({"maxUses": -1})


def test_api_key_wire_names() -> None:
    created = wire(ApiKeyCreatedOut(id="agenttier-apikey-ab", key="atk_x", name="ci",
                                    sandbox_id="", action_groups=[],
                                    created_at="2026-01-01T00:00:00Z", expires_at=None,
                                    warning="shown once"))
    assert set(created) == {"id", "key", "name", "sandboxId", "actionGroups", "createdAt",
                            "expiresAt", "warning"}
    assert created["actionGroups"] == []  # never null


@pytest.mark.parametrize("field", ["scopes", "actionGroups"])
def test_api_key_requests_accept_scopes_and_action_groups(field: str) -> None:
    body = ApiKeyCreateRequest.model_validate({"sandboxId": "sb", field: ["stop", "files:read"]})
    assert body.groups() == ["files:read", "stop"]
    assert ApiKeyCreateRequest.model_validate({"sandboxId": "sb"}).groups() == list(ACTION_GROUPS)


def test_unknown_fields_in_an_api_key_request_are_refused() -> None:
    with pytest.raises(ValidationError):
        ApiKeyCreateRequest.model_validate({"bogus": 1})


@pytest.mark.parametrize(("body", "problem"), [
    ({"scopes": ["stop"]}, "scopes require sandboxId"),
    ({"sandboxId": "sb", "scopes": ["delete"]}, "delete is not an action group"),
    ({"sandboxId": "sb", "actionGroups": ["nope"]}, "unknown action group: nope"),
    ({"sandboxId": "sb", "scopes": ["stop"], "actionGroups": ["resume"]}, "differ"),
    ({"name": "ci\u202ebad"}, "plain text"),
    ({"name": "a\x00b"}, "plain text"),
])
def test_bad_api_key_requests(body: dict[str, Any], problem: str) -> None:
    found = ApiKeyCreateRequest.model_validate(body).problem()
    assert found is not None and problem in found


def test_a_user_level_key_has_no_groups() -> None:
    assert ApiKeyCreateRequest.model_validate({"name": "ci"}).groups() == []
    assert ApiKeyCreateRequest.model_validate({"name": "ci"}).problem() is None


def test_cost_estimate_wire_names_and_extras() -> None:
    body = wire(CostEstimateOut(
        running_sandboxes=1, stopped_sandboxes=0, total_hourly_compute=0.02,
        total_hourly_storage=0.001, total_estimated_monthly=15.1,
        per_template=[TemplateCostOut(template="minimal", hourly_cost=0.02, count=1)],
        since="2026-01-01T00:00:00.000000Z", total_usd=0.5))
    assert {"running_sandboxes", "stopped_sandboxes", "total_hourly_compute",
            "total_hourly_storage", "total_estimated_monthly", "per_template"} <= set(body)
    assert body["per_template"] == [{"template": "minimal", "hourly_cost": 0.02, "count": 1}]
    assert (body["totalUsd"], body["groupBy"], body["totals"]) == (0.5, "sandbox", [])
