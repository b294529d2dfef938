"""Helpers for the chart tests: find Helm, render the chart, validate and query what it renders.

Helm is found on PATH or in ``.ci/bin`` (``.ci/install-helm`` puts it in
``/usr/local/bin`` or a directory given to it). Without Helm the tests skip,
except in CI (``CI=true``), where they fail: there the chart must be checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agenttier"
RELEASE = "agenttier"
NAMESPACE = "agenttier"

# Kubernetes versions whose schemas every rendered object is checked against:
# the chart's floor (kubeVersion in Chart.yaml) and the one Helm 3.17 renders for.
KUBERNETES_VERSIONS = ("1.25.0", "1.32.0")

_IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    if _IN_CI:
        pytest.fail(f"{what} (CI=true: the chart tests must run in CI)")
    pytest.skip(what)


def helm() -> str:
    """The path of Helm 3, or skip (fail in CI) with the command that installs it."""
    found = shutil.which("helm")
    local = ROOT / ".ci" / "bin" / "helm"
    if found is None and os.access(local, os.X_OK):
        found = str(local)
    if found is None:
        _missing("helm is not installed: run .ci/install-helm (or .ci/install-helm .ci/bin)")
    assert found is not None
    return found


def require_validator() -> None:
    """Skip (fail in CI) unless kubernetes-validate is importable."""
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        _missing("kubernetes-validate is not installed: pip install -e '.[dev]'")


def _set_args(values: dict[str, object]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        # --set, not --set-string: numbers and booleans are typed as a user's --set types them.
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def _helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=60,
                          cwd=chart.parent)


@dataclass(frozen=True)
class Manifest:
    """The objects one ``helm template`` rendered, parsed, with lookups by kind and name."""

    objects: tuple[dict[str, Any], ...]

    def kinds(self) -> list[str]:
        """Every object's kind, in render order."""
        return [obj["kind"] for obj in self.objects]

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``."""
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The single object of ``kind`` (and ``name``, when given)."""
        found = [obj for obj in self.all(kind)
                 if name is None or obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}: {self.kinds()}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        """The Router's Deployment."""
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        """The Router pod's spec."""
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        """The Router container."""
        containers = self.pod["containers"]
        assert [c["name"] for c in containers] == ["router"]
        return dict(containers[0])

    def env(self) -> dict[str, Any]:
        """The Router container's environment: name to ``value``, or to the ``valueFrom`` map."""
        result: dict[str, Any] = {}
        for var in self.container.get("env", []):
            assert var["name"] not in result, f"{var['name']} is set twice"
            result[var["name"]] = var.get("value", var.get("valueFrom"))
        return result

    def mounts(self) -> dict[str, str]:
        """The Router container's volume mounts: mount path to volume name."""
        return {m["mountPath"]: m["name"] for m in self.container.get("volumeMounts", [])}

    def volumes(self) -> dict[str, dict[str, Any]]:
        """The pod's volumes by name, each without its name."""
        return {v["name"]: {k: x for k, x in v.items() if k != "name"}
                for v in self.pod.get("volumes", [])}


def render(values: dict[str, object] | None = None, *, release: str = RELEASE,
           chart: Path = CHART) -> Manifest:
    """``helm template`` the chart with ``--set`` values; validate every object strictly.

    A render that fails is a test failure, with Helm's message.
    """
    result = _helm("template", release, str(chart), "--namespace", NAMESPACE,
                   *_set_args(values or {}), chart=chart)
    assert result.returncode == 0, result.stderr
    objects = tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)
    validate(objects)
    return Manifest(objects)


def render_error(values: dict[str, object], *, chart: Path = CHART) -> str:
    """``helm template`` with values that must fail; return Helm's message on one line."""
    result = _helm("template", RELEASE, str(chart), "--namespace", NAMESPACE,
                   *_set_args(values), chart=chart)
    assert result.returncode != 0, f"rendered, but should have failed:\n{result.stdout}"
    assert result.stdout == ""
    return " ".join(result.stderr.split())


def lint(values: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    """``helm lint --strict`` the chart."""
    return _helm("lint", "--strict", str(CHART), *_set_args(values or {}))


def validate(objects: Iterable[dict[str, Any]]) -> None:
    """Check each object against the Kubernetes schemas, strictly (no unknown fields).

    An object whose kind has no schema fails too: everything the chart renders
    is a built-in kind.
    """
    require_validator()
    from kubernetes_validate import utils

    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} on {version}"
            problem = None
            try:
                utils.validate(obj, version, strict=True)
            except utils.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problem = f"{where} is invalid at {path}: {error.message}"
            except utils.SchemaNotFoundError as error:
                problem = f"{where}: {error.message}"
            if problem:  # failed outside the except block: no chained schema dump
                pytest.fail(problem, pytrace=False)


def render_notes(values: dict[str, object], tmp_path: Path) -> str:
    """Render the chart's NOTES.txt with these values.

    ``helm template`` skips NOTES.txt and ``helm install --dry-run`` needs a
    cluster, so a copy of the chart renders the same text through ``tpl``, in a
    ConfigMap.
    """
    copy = tmp_path / "agenttier"
    shutil.copytree(CHART, copy)
    shutil.copy(CHART / "templates" / "NOTES.txt", copy / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    notes = render(values, chart=copy).one("ConfigMap", "notes")["data"]["notes"]
    assert isinstance(notes, str)
    return " ".join(notes.split())


def walk(value: object) -> Iterator[object]:
    """Every value nested in ``value``, depth first, ``value`` included."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
