"""The chart's Router: Deployment, Service, ServiceAccount, probes, keys and templates.

The control planes, modes and RBAC are in test_chart_kubernetes.py. Each
render is validated strictly against the Kubernetes schemas (see helm_helpers).
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from helm_helpers import CHART, ROOT, Manifest, helm, lint, render

from agenttier_router.cli import cli
from agenttier_router.cli.serve import serve
from agenttier_router.cli.watch import watch
from agenttier_router.controlplane.templates import DEFAULT_TEMPLATES, load_templates

LOCAL: dict[str, object] = {"router.controlPlane": "local"}


@pytest.fixture(scope="module")
def default() -> Manifest:
    """The chart with its default values: the kubernetes control plane, storage off."""
    return render()


@pytest.fixture(scope="module")
def local() -> Manifest:
    """The chart with the local control plane: sandboxes in the Router's pod."""
    return render(LOCAL)


def test_helm_is_version_3() -> None:
    result = subprocess.run([helm(), "version", "--short"], capture_output=True, text=True,
                            check=True)
    assert result.stdout.startswith("v3."), result.stdout


@pytest.mark.parametrize("values", [
    pytest.param({}, id="default"),
    pytest.param(LOCAL, id="local"),
    pytest.param({"router.namespace": "team-a"}, id="one-namespace"),
    pytest.param({"router.mode": "watch", "optional.storage.enabled": True}, id="watch"),
    pytest.param({"crds.install": False, "rbac.create": False}, id="no-rbac"),
    pytest.param({"optional.storage.enabled": True}, id="sqlite"),
    pytest.param({"optional.storage.enabled": True,
                  "optional.storage.sqlite.persistence.enabled": False}, id="sqlite-ephemeral"),
    pytest.param({"optional.storage.enabled": True, "optional.storage.driver": "postgres",
                  "optional.storage.dsnSecret.name": "db"}, id="postgres"),
])
def test_helm_lint_is_clean(values: dict[str, object]) -> None:
    result = lint(values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_default_renders_the_router_its_account_and_its_rbac(default: Manifest) -> None:
    # The Role (and its binding) are for the Secrets of minted API keys, in the Router's
    # own namespace (tests/deploy/test_chart_kubernetes.py checks their rules).
    assert sorted(default.kinds()) == ["ClusterRole", "ClusterRoleBinding", "Deployment",
                                       "Role", "RoleBinding", "Service", "ServiceAccount"]
    assert default.deployment["metadata"]["name"] == "agenttier-router"
    assert default.deployment["spec"]["replicas"] == 1
    assert default.deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert default.one("Service")["metadata"]["name"] == "agenttier-router"


def test_local_renders_the_router_and_its_templates_and_nothing_else(local: Manifest) -> None:
    assert sorted(local.kinds()) == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    assert local.one("ConfigMap")["metadata"]["name"] == "agenttier-router-templates"


def test_local_has_no_rbac_and_no_service_account_token(local: Manifest) -> None:
    # The local control plane never calls the Kubernetes API.
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert local.all(kind) == []
    account = local.one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert local.pod["serviceAccountName"] == account["metadata"]["name"]
    assert local.pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("plane", ["kubernetes", "local"])
def test_an_existing_service_account_can_be_named(plane: str) -> None:
    manifest = render({"router.controlPlane": plane, "serviceAccount.create": False,
                       "serviceAccount.name": "router-sa"})
    assert manifest.all("ServiceAccount") == []
    assert manifest.pod["serviceAccountName"] == "router-sa"
    for binding in manifest.all("ClusterRoleBinding"):  # kubernetes: RBAC for that account
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "router-sa", "namespace": "agenttier"}]


def test_probes_hit_healthz_and_readyz_on_the_http_port(default: Manifest) -> None:
    container = default.container
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_resources_have_requests_and_a_memory_limit(default: Manifest) -> None:
    resources = default.container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_resources_come_from_values() -> None:
    manifest = render({"router.resources.requests.cpu": "2", "router.resources.limits.cpu": "4"})
    assert manifest.container["resources"]["requests"]["cpu"] == 2
    assert manifest.container["resources"]["limits"]["cpu"] == 4


@pytest.mark.parametrize("values", [
    pytest.param({}, id="kubernetes"), pytest.param(LOCAL, id="local"),
    pytest.param({"router.mode": "watch", "optional.storage.enabled": True}, id="watch"),
])
def test_pod_is_non_root_with_a_read_only_root_filesystem(values: dict[str, object]) -> None:
    manifest = render(values)
    pod = manifest.pod["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    container = manifest.container["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    # Then everything the Router writes is a volume: /tmp, and the local plane's data dir.
    env, mounts, volumes = manifest.env(), manifest.mounts(), manifest.volumes()
    writable = ["/tmp"]
    if "AGENTTIER_DATA_DIR" in env:
        writable.append(env["AGENTTIER_DATA_DIR"])
    for path in writable:
        assert volumes[mounts[path]] == {"emptyDir": {}}


def test_service_routes_to_the_pod(default: Manifest) -> None:
    service = default.one("Service")["spec"]
    labels = default.deployment["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert default.deployment["spec"]["selector"]["matchLabels"] == service["selector"]
    assert service["ports"] == [{"name": "http", "port": 8080, "targetPort": "http",
                                 "protocol": "TCP"}]


def test_router_runs_serve_on_all_interfaces_port_8080(default: Manifest) -> None:
    args = default.container["args"]
    assert args[0] == "serve" and "serve" in cli.commands
    # The flags parse as the Router's own command line would (nothing is run).
    context = serve.make_context("serve", list(args[1:]))
    assert (context.params["host"], context.params["port"]) == ("0.0.0.0", 8080)
    assert context.params["log_level"] == "info"


def test_every_environment_variable_is_one_the_router_reads(default: Manifest,
                                                           local: Manifest) -> None:
    read = {param.envvar for param in serve.params if param.envvar}
    read |= {"STORAGE_DSN", "STORAGE_SQLITE_PATH"}  # read by storage.url_from_env
    storage_on = render({"optional.storage.enabled": True})
    assert set(default.env()) | set(local.env()) | set(storage_on.env()) <= read


def test_every_environment_variable_is_one_the_watcher_reads() -> None:
    read = {param.envvar for param in watch.params if param.envvar}
    read |= {"STORAGE_DSN", "STORAGE_SQLITE_PATH"}  # read by storage.url_from_env
    for driver in ("sqlite", "postgres"):
        manifest = render({"router.mode": "watch", "optional.storage.enabled": True,
                           "optional.storage.driver": driver,
                           "optional.storage.dsnSecret.name": "db"})
        assert set(manifest.env()) <= read


def test_api_keys_come_from_the_default_secret(default: Manifest) -> None:
    volume = default.volumes()["api-keys"]["secret"]
    assert volume["secretName"] == "agenttier-api-keys"
    assert volume["items"] == [{"key": "api-keys.yaml", "path": "api-keys.yaml"}]
    mount = next(m for m in default.container["volumeMounts"] if m["name"] == "api-keys")
    assert mount["readOnly"] is True
    assert default.env()["AGENTTIER_API_KEYS"] == f"{mount['mountPath']}/api-keys.yaml"
    assert default.env()["AGENTTIER_ADMIN_GROUP"] == "agenttier-admins"


def test_api_keys_come_from_an_existing_secret() -> None:
    manifest = render({"router.apiKeys.existingSecret": "team-keys",
                       "router.apiKeys.key": "keys.json", "router.adminGroup": "platform"})
    volume = manifest.volumes()["api-keys"]["secret"]
    assert volume["secretName"] == "team-keys"
    assert volume["items"] == [{"key": "keys.json", "path": "keys.json"}]
    assert manifest.env()["AGENTTIER_API_KEYS"].endswith("/keys.json")
    assert manifest.env()["AGENTTIER_ADMIN_GROUP"] == "platform"
    assert manifest.all("Secret") == []  # the chart never holds keys


def test_templates_configmap_is_a_file_the_router_loads(tmp_path: Path) -> None:
    manifest = render({**LOCAL, "router.templates[0].name": "big", "router.templates[0].cpu": 2,
                       "router.templates[0].memory": "4Gi"})
    configmap = manifest.one("ConfigMap", "agenttier-router-templates")
    mounts, volumes = manifest.mounts(), manifest.volumes()
    path = Path(manifest.env()["AGENTTIER_TEMPLATES"])
    assert volumes[mounts[str(path.parent)]] == {
        "configMap": {"name": "agenttier-router-templates"}}
    file = tmp_path / path.name
    file.write_text(configmap["data"][path.name])
    templates = load_templates(file)
    assert templates["big"].cpu == 2 and templates["big"].memory_gib == 4
    assert set(DEFAULT_TEMPLATES) < set(templates)


def test_default_templates_file_keeps_the_routers_defaults(local: Manifest,
                                                           tmp_path: Path) -> None:
    file = tmp_path / "templates.yaml"
    file.write_text(local.one("ConfigMap")["data"]["templates.yaml"])
    assert load_templates(file) == dict(DEFAULT_TEMPLATES)


def test_a_templates_change_rolls_the_pod(local: Manifest) -> None:
    changed = render({**LOCAL, "router.templates[0].name": "big", "router.templates[0].cpu": 2,
                      "router.templates[0].memory": "4Gi"})

    def checksum(manifest: Manifest) -> str:
        annotations = manifest.deployment["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/templates"])

    assert checksum(local) != checksum(changed)


def test_image_defaults_to_the_project_version(default: Manifest) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["name"] == "agenttier"
    assert chart["appVersion"] == project["version"]
    assert default.container["image"] == f"agenttier-router:{project['version']}"
    manifest = render({"image.repository": "registry.example/agenttier/router",
                       "image.tag": "1.2.3"})
    assert manifest.container["image"] == "registry.example/agenttier/router:1.2.3"
