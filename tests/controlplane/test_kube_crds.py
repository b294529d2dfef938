"""Our CRD manifests (charts/agenttier/files/crds), written from the facts, and the schema checks.

The fake API server validates every object the plane writes against these
schemas; these tests check the manifests themselves, and that the check can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubefake import CRD_DIR, FakeKubernetes
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

CRDS = {path.name: yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))}


def test_the_three_kinds_as_the_facts_describe_them() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd["spec"] for crd in CRDS.values()}
    assert sorted(by_kind) == ["ClusterSandboxTemplate", "Sandbox", "SandboxTemplate"]
    for kind, spec in by_kind.items():
        assert spec["group"] == "agenttier.io"
        assert [v["name"] for v in spec["versions"]] == ["v1alpha1"]
        assert "shortNames" not in spec["names"]
        has_status = "status" in spec["versions"][0].get("subresources", {})
        assert has_status == (kind == "Sandbox")
    assert by_kind["ClusterSandboxTemplate"]["scope"] == "Cluster"
    assert by_kind["SandboxTemplate"]["scope"] == "Namespaced"
    columns = by_kind["Sandbox"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"]) for c in columns] == [
        ("Status", ".status.phase"), ("Template", ".status.resolvedTemplate"),
        ("Age", ".metadata.creationTimestamp")]


@pytest.mark.parametrize("name", sorted(CRDS))
def test_each_manifest_is_a_valid_crd(name: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(CRDS[name], "1.30.0", strict=True)


def _structural(node: dict[str, Any], where: str) -> list[str]:
    """Where a schema is not structural: a node with neither a type nor an escape hatch."""
    problems = []
    escapes = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
    if "type" not in node and not any(node.get(e) for e in escapes):
        problems.append(where)
    for key, child in (node.get("properties") or {}).items():
        problems += _structural(child, f"{where}.{key}")
    if isinstance(node.get("items"), dict):
        problems += _structural(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _structural(node["additionalProperties"], f"{where}{{}}")
    return problems


@pytest.mark.parametrize("name", sorted(CRDS))
def test_each_schema_is_structural(name: str) -> None:
    schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _structural(schema, "") == []


def test_the_fake_api_server_refuses_an_object_our_schema_refuses(tmp_path: Path) -> None:
    with FakeKubernetes() as kube:
        api = config.new_client_from_config(str(kube.kubeconfig(tmp_path / "kubeconfig")))
        custom = client.CustomObjectsApi(api)
        bad = {"apiVersion": "agenttier.io/v1alpha1", "kind": "Sandbox",
               "metadata": {"name": "sb-1"},
               "spec": {"sharing": {"users": [{"identity": "bob", "level": "owner"}]}}}
        with pytest.raises(ApiException) as caught:
            custom.create_namespaced_custom_object("agenttier.io", "v1alpha1", "default",
                                                   "sandboxes", bad)
        assert caught.value.status == 422
        assert kube.rejected == [("sandboxes", "Sandbox 'sb-1' is invalid: spec/sharing/users/0/"
                                               "level: 'owner' is not one of ['viewer', "
                                               "'collaborator']")]
        bad["spec"] = {"templateRef": {"name": "x"}, "surprise": True}
        with pytest.raises(ApiException, match="surprise"):
            custom.create_namespaced_custom_object("agenttier.io", "v1alpha1", "default",
                                                   "sandboxes", bad)
        api.close()
