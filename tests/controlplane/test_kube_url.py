"""``kubernetes://`` URLs and loading the Kubernetes configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cp_helpers import Transitions
from kubefake import FakeKubernetes

from agenttier_router.controlplane import InvalidRequest
from agenttier_router.controlplane.kubernetes import from_url
from agenttier_router.controlplane.kubernetes.url import parse_url


@pytest.mark.parametrize(("url", "context", "namespace"), [
    ("kubernetes://", None, None),
    ("kubernetes:///", None, None),
    ("kubernetes://?context=prod", "prod", None),
    ("kubernetes://?context=prod&namespace=team-a", "prod", "team-a"),
])
def test_good_urls(url: str, context: str | None, namespace: str | None) -> None:
    parsed = parse_url(url)
    assert (parsed.context, parsed.namespace) == (context, namespace)


@pytest.mark.parametrize(("url", "message"), [
    ("local:///data", "not a kubernetes:// URL"),
    ("kubernetes://host:6443", "takes no host or path"),
    ("kubernetes:///some/path", "takes no host or path"),
    ("kubernetes://?ns=team-a", "unknown kubernetes:// option"),
    ("kubernetes://?namespace=", "exactly one non-empty value"),
    ("kubernetes://?namespace=a&namespace=b", "exactly one non-empty value"),
    ("kubernetes://?namespace=Team_A", "RFC 1123"),
])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_url(url)


def test_context_picks_the_cluster_and_namespace_restricts(
        kube: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kube.kubeconfig(tmp_path / "kubeconfig")
    config = yaml.safe_load(path.read_text())
    # A second context, the current one, pointing nowhere: only ?context=fake works.
    config["clusters"].append({"name": "void", "cluster": {"server": "http://127.0.0.1:9"}})
    config["contexts"].append({"name": "void", "context": {"cluster": "void", "user": "router"}})
    config["current-context"] = "void"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))

    plane = from_url("kubernetes://?context=fake&namespace=team-a", Transitions())
    try:
        assert plane.wait_synced(10)
        assert f"127.0.0.1:{kube.port}" in repr(plane)
        assert "'team-a'" in repr(plane)
    finally:
        plane.close()
    with pytest.raises(InvalidRequest, match="cannot load the Kubernetes configuration"):
        from_url("kubernetes://?context=missing", Transitions())


def test_no_configuration_is_a_clear_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InvalidRequest, match="no Kubernetes configuration"):
        from_url("kubernetes://", Transitions())
    with pytest.raises(InvalidRequest, match="no kubeconfig to take context 'prod' from"):
        from_url("kubernetes://?context=prod", Transitions())
