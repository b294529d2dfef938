"""The chart's control planes and modes: the kubernetes plane's account and RBAC, watch, CRDs.

``router.controlPlane`` picks where sandboxes live (``kubernetes``, the default,
or ``local``) and ``router.mode`` what the pod runs (``serve`` or ``watch``).
The RBAC the chart grants must be exactly the verbs the Router uses (the
issue's list, from the facts in kubernetes.md §7-8): these tests spell each
rule out, so a verb added or dropped in the templates fails here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from helm_helpers import CHART, NAMESPACE, Manifest, render, render_error, render_notes

from agenttier_router.cli.serve import serve
from agenttier_router.cli.watch import watch
from agenttier_router.controlplane.open import local_root
from agenttier_router.storage import url_from_env

Rules = dict[tuple[str, str], set[str]]

READ = {"get", "list", "watch"}
SERVE_NAMESPACED: Rules = {
    ("agenttier.io", "sandboxes"): READ | {"create", "update", "patch", "delete"},
    ("agenttier.io", "sandboxes/status"): {"get", "update", "patch"},
    ("agenttier.io", "sandboxtemplates"): READ,
    ("", "pods"): {"get", "list"},
    ("", "pods/exec"): {"create", "get"},
    ("", "events"): READ | {"create"},
}
WATCH_NAMESPACED: Rules = {
    ("agenttier.io", "sandboxes"): READ,
    ("agenttier.io", "sandboxtemplates"): READ,
    ("", "events"): READ,
}
CLUSTER: Rules = {("agenttier.io", "clustersandboxtemplates"): READ}
API_KEYS: Rules = {("", "secrets"): READ | {"create", "delete"}}
"""Minted API keys are Secrets: in the Router's own namespace only, through a Role there."""
API_KEYS_ROLE = "agenttier-router-api-keys"

WATCH: dict[str, object] = {"router.mode": "watch", "optional.storage.enabled": True}
POSTGRES: dict[str, object] = {"optional.storage.enabled": True,
                               "optional.storage.driver": "postgres",
                               "optional.storage.dsnSecret.name": "router-db"}
RBAC_KINDS = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def rules(role: dict[str, object]) -> Rules:
    """A Role's or ClusterRole's rules as (apiGroup, resource) -> verbs; each pair once."""
    result: Rules = {}
    for rule in role["rules"]:  # type: ignore[attr-defined]
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no names, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in result, f"{group}/{resource} twice"
                assert "*" not in rule["verbs"] and "*" not in (group, resource)
                result[(group, resource)] = set(rule["verbs"])
    return result


def binding_of(manifest: Manifest, kind: str, name: str) -> dict[str, object]:
    """The one binding of ``kind`` that refers to role ``name``; it binds the Router's account."""
    found = [b for b in manifest.all(kind) if b["roleRef"]["name"] == name]
    assert len(found) == 1, found
    binding = found[0]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": kind.removesuffix("Binding"), "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "agenttier-router",
                                    "namespace": NAMESPACE}]
    return binding


def parsed_command(manifest: Manifest, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The pod's args and env, parsed by the CLI command the pod runs (nothing is run)."""
    for name, value in manifest.env().items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    args = manifest.container["args"]
    command = {"serve": serve, "watch": watch}[args[0]]
    return dict(command.make_context(args[0], list(args[1:])).params)


# -- the kubernetes control plane, serving the API (the default) --------------------------


def test_default_drives_the_clusters_sandboxes_with_in_cluster_config(
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = render()
    params = parsed_command(manifest, monkeypatch)
    assert params["control_plane_url"] == "kubernetes://"
    assert (params["host"], params["port"]) == ("0.0.0.0", 8080)
    # Sandboxes are pods of their own: no data dir, no local templates in this pod.
    env = manifest.env()
    assert "AGENTTIER_DATA_DIR" not in env and "AGENTTIER_TEMPLATES" not in env
    assert set(manifest.volumes()) == {"api-keys", "tmp"}
    assert manifest.all("ConfigMap") == []
    assert "annotations" not in manifest.deployment["spec"]["template"]["metadata"]


def test_kubernetes_mounts_the_service_account_token() -> None:
    manifest = render()
    account = manifest.one("ServiceAccount", "agenttier-router")
    assert account["automountServiceAccountToken"] is True
    assert manifest.pod["serviceAccountName"] == "agenttier-router"
    assert manifest.pod["automountServiceAccountToken"] is True


def test_cluster_wide_the_router_gets_exactly_its_verbs_in_one_cluster_role() -> None:
    manifest = render()
    assert [obj["kind"] for obj in manifest.objects if obj["kind"] in RBAC_KINDS] == [
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    role = manifest.one("ClusterRole")
    assert role["metadata"]["name"] == "agenttier-agenttier-router"
    assert rules(role) == SERVE_NAMESPACED | CLUSTER  # no Secrets anywhere else
    binding_of(manifest, "ClusterRoleBinding", "agenttier-agenttier-router")
    _check_api_keys_role(manifest)


def _check_api_keys_role(manifest: Manifest) -> None:
    """The Router may keep its API keys' Secrets in its own namespace, and do nothing else."""
    role = manifest.one("Role", API_KEYS_ROLE)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules(role) == API_KEYS
    binding = binding_of(manifest, "RoleBinding", API_KEYS_ROLE)
    assert binding["metadata"]["namespace"] == NAMESPACE  # type: ignore[index]


def test_cluster_role_names_carry_the_release_and_its_namespace() -> None:
    # ClusterRoles are cluster-scoped: two releases must never share (or overwrite) one.
    first = render().one("ClusterRole")["metadata"]["name"]
    second = render(release="prod").one("ClusterRole")["metadata"]["name"]
    assert first != second
    assert NAMESPACE in second and "prod" in second


def test_one_namespace_gets_a_role_there_and_reads_cluster_templates(
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = render({"router.namespace": "team-a"})
    params = parsed_command(manifest, monkeypatch)
    url = urlsplit(str(params["control_plane_url"]))
    assert (url.scheme, url.netloc, url.path) == ("kubernetes", "", "")
    assert parse_qs(url.query) == {"namespace": ["team-a"]}
    [role] = [r for r in manifest.all("Role") if r["metadata"]["name"] != API_KEYS_ROLE]
    assert role["metadata"]["namespace"] == "team-a"
    assert rules(role) == SERVE_NAMESPACED
    _check_api_keys_role(manifest)  # in the Router's namespace, not the sandboxes'
    binding = binding_of(manifest, "RoleBinding", role["metadata"]["name"])
    assert binding["metadata"]["namespace"] == "team-a"  # type: ignore[index]
    # A Role cannot grant a cluster-scoped resource: ClusterSandboxTemplates are read
    # through a ClusterRole that grants nothing else.
    cluster_role = manifest.one("ClusterRole")
    assert rules(cluster_role) == CLUSTER
    binding_of(manifest, "ClusterRoleBinding", cluster_role["metadata"]["name"])


def test_rbac_create_false_renders_no_rbac_but_keeps_the_token() -> None:
    manifest = render({"rbac.create": False})
    for kind in RBAC_KINDS:
        assert manifest.all(kind) == []
    assert manifest.pod["automountServiceAccountToken"] is True


def test_rbac_objects_carry_the_charts_labels() -> None:
    manifest = render({"router.namespace": "team-a"})
    for kind in RBAC_KINDS:
        for obj in manifest.all(kind):
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "agenttier"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_kubernetes_allows_replicas_without_storage() -> None:
    # The Routers keep no state: each reads the cluster and records nothing.
    manifest = render({"router.replicas": 3})
    assert manifest.deployment["spec"]["replicas"] == 3


# -- watch: the headless recorder ---------------------------------------------------------


@pytest.mark.parametrize("storage", [
    pytest.param({"optional.storage.enabled": True}, id="sqlite"),
    pytest.param(POSTGRES, id="postgres"),
])
def test_watch_runs_the_recorder_with_storage_and_no_keys(
        storage: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = render({"router.mode": "watch", **storage})
    params = parsed_command(manifest, monkeypatch)
    assert manifest.container["args"][0] == "watch"
    assert params["control_plane_url"] == "kubernetes://"
    assert (params["host"], params["port"]) == ("0.0.0.0", 8080)
    env = manifest.env()
    assert "AGENTTIER_API_KEYS" not in env and "AGENTTIER_ADMIN_GROUP" not in env
    assert "api-keys" not in manifest.volumes() and "sandboxes" not in manifest.volumes()
    assert manifest.all("ConfigMap") == []
    if "STORAGE_SQLITE_PATH" in env:
        assert url_from_env(env) == "sqlite:////var/lib/agenttier/agenttier.db"
    else:
        assert env["STORAGE_DSN"] == {"secretKeyRef": {"name": "router-db", "key": "dsn"}}
    # Probes: the watcher serves /healthz and /readyz too.
    assert manifest.container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_watch_only_reads() -> None:
    manifest = render(WATCH)
    role = manifest.one("ClusterRole")
    assert rules(role) == WATCH_NAMESPACED | CLUSTER
    binding_of(manifest, "ClusterRoleBinding", role["metadata"]["name"])
    assert manifest.all("Role") == []  # no API, so no keys: no Secrets
    assert manifest.pod["automountServiceAccountToken"] is True


def test_watch_in_one_namespace_only_reads_there() -> None:
    manifest = render({**WATCH, "router.namespace": "team-a"})
    assert rules(manifest.one("Role")) == WATCH_NAMESPACED
    assert rules(manifest.one("ClusterRole")) == CLUSTER
    assert manifest.env()["AGENTTIER_CONTROL_PLANE"] == "kubernetes://?namespace=team-a"


def test_watch_replicas_share_an_external_database() -> None:
    manifest = render({"router.mode": "watch", **POSTGRES, "router.replicas": 2})
    assert manifest.deployment["spec"]["replicas"] == 2


# -- local: the single-pod evaluation -----------------------------------------------------


def test_local_runs_sandboxes_in_the_pods_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = render({"router.controlPlane": "local"})
    params = parsed_command(manifest, monkeypatch)
    data_dir = manifest.env()["AGENTTIER_DATA_DIR"]
    assert local_root(str(params["control_plane_url"])) == Path(data_dir)
    assert manifest.volumes()[manifest.mounts()[data_dir]] == {"emptyDir": {}}
    for kind in RBAC_KINDS:
        assert manifest.all(kind) == []


# -- NOTES.txt ----------------------------------------------------------------------------


def test_notes_name_the_control_plane_and_the_rbac(tmp_path: Path) -> None:
    notes = render_notes({}, tmp_path / "default")
    assert "Control plane: kubernetes (kubernetes://)" in notes
    assert "in every namespace" in notes
    assert "ClusterRole agenttier-agenttier-router, bound to ServiceAccount agenttier-router" in (
        notes)
    assert "CRDs: not installed by this release" in notes
    notes = render_notes({"router.namespace": "team-a"}, tmp_path / "team-a")
    assert "Role agenttier-router in team-a" in notes
    notes = render_notes({"router.controlPlane": "local"}, tmp_path / "local")
    assert "Control plane: local" in notes and "evaluation only" in notes
    assert "RBAC" not in notes


def test_notes_for_watch_say_what_it_serves(tmp_path: Path) -> None:
    notes = render_notes(WATCH, tmp_path)
    assert "agenttier-router watch" in notes
    assert "serves only /healthz, /readyz and /metrics" in notes
    assert "(read only: get, list, watch)" in notes
    assert "API keys" not in notes


# -- crds.install -------------------------------------------------------------------------

CRD_NAMES = ("widgets.example.test", "gadgets.example.test")


def _crd(plural: str, kind: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.example.test",
                     "annotations": {"example.test/owner": "tests"}},
        "spec": {
            "group": "example.test", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": plural[:-1],
                      "listKind": f"{kind}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}],
        },
    })


def _chart_with(tmp_path: Path, files: dict[str, str]) -> Path:
    copy = tmp_path / "agenttier"
    shutil.copytree(CHART, copy)
    folder = copy / "files" / "crds"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return copy


def test_crds_install_renders_every_crd_file_and_keeps_them(tmp_path: Path) -> None:
    chart = _chart_with(tmp_path, {
        # A comment-only document and a multi-document file are both read.
        "widgets.yaml": "# our widgets\n---\n" + _crd("widgets", "Widget"),
        "gadgets.yaml": _crd("gadgets", "Gadget") + "---\n",
        "README.md": "not a manifest",
    })
    manifest = render({"crds.install": True}, chart=chart)  # validated as CRDs, strictly
    crds = manifest.all("CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(CRD_NAMES)
    for crd in crds:
        annotations = crd["metadata"]["annotations"]
        # Uninstalling the release must never delete every Sandbox with its CRD.
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["example.test/owner"] == "tests"  # the file's own are kept
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert render({}, chart=chart).all("CustomResourceDefinition") == []


def test_crds_install_refuses_a_file_that_is_not_a_crd(tmp_path: Path) -> None:
    chart = _chart_with(tmp_path, {"bad.yaml": "apiVersion: v1\nkind: ConfigMap\n"
                                               "metadata: {name: x}\n"})
    message = render_error({"crds.install": True}, chart=chart)
    assert "files/crds/bad.yaml holds a ConfigMap" in message


def test_crds_install_fails_clearly_when_the_chart_holds_no_crds(tmp_path: Path) -> None:
    chart = _chart_with(tmp_path, {})
    message = render_error({"crds.install": True}, chart=chart)
    assert "crds.install=true, but the chart holds no CRD manifests in files/crds/" in message


def test_helms_own_crds_folder_is_not_used() -> None:
    # Helm installs charts/agenttier/crds/ on every install, whatever crds.install says:
    # our CRDs must be in files/crds/, where crds.install decides.
    assert not list((CHART / "crds").glob("*.y*ml")), (
        "move the CRD manifests from charts/agenttier/crds/ to charts/agenttier/files/crds/")


def test_the_charts_own_crd_files_render_with_crds_install() -> None:
    names = sorted(yaml.safe_load(path.read_text())["metadata"]["name"]
                   for path in (CHART / "files" / "crds").glob("*.yaml"))
    if not names:
        assert "no CRD manifests in files/crds/" in render_error({"crds.install": True})
        return
    manifest = render({"crds.install": True})
    assert sorted(c["metadata"]["name"] for c in manifest.all("CustomResourceDefinition")) == (
        names)


# -- cost settings, shared by Routers and watchers ----------------------------------------


def test_cost_settings_default_to_the_routers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = render()
    assert not [a for a in manifest.container["args"] if a.startswith(("--cost", "--cpu",
                                                                          "--memory"))]
    params = parsed_command(manifest, monkeypatch)
    defaults = {p.name: p.default for p in serve.params}
    for name in ("cost_interval", "cpu_price", "memory_price"):
        assert params[name] == defaults[name]


@pytest.mark.parametrize("mode", [pytest.param({}, id="serve"), pytest.param(WATCH, id="watch")])
def test_cost_settings_reach_the_command_line(mode: dict[str, object],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # --set passes 0.05 as a string and 300 as a number: both are taken.
    manifest = render({**mode, "router.costs.interval": 300, "router.costs.cpuPrice": 0.05,
                       "router.costs.memoryPrice": 0})
    params = parsed_command(manifest, monkeypatch)
    assert (params["cost_interval"], params["cpu_price"], params["memory_price"]) == (
        300.0, 0.05, 0.0)


# -- the README's RBAC table is the chart's ----------------------------------------------


def _readme_rbac_table() -> dict[str, Rules]:
    readme = (CHART.parents[1] / "README.md").read_text()
    section = readme.split("## Against a Kubernetes cluster", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, Rules] = {"serve": {}, "watch": {}}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[1].startswith("`"):
            continue
        group = "" if cells[0] == "core" else cells[0].strip("`")
        for resource in (r.strip().strip("`") for r in cells[1].split(",")):
            for mode, text in (("serve", cells[2]), ("watch", cells[3])):
                verbs = {v.strip() for v in text.split("(")[0].split(",")} - {"none"}
                if verbs:
                    tables[mode][(group, resource)] = verbs
    return tables


def test_the_readme_documents_exactly_the_rbac_the_chart_grants() -> None:
    documented = _readme_rbac_table()
    assert documented["serve"] == rules(render().one("ClusterRole"))
    assert documented["watch"] == rules(render(WATCH).one("ClusterRole"))
