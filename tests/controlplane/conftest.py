"""Fixtures for the control-plane tests: a real LocalControlPlane on a real temp directory, and
the Kubernetes plane against a fake API server over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_helpers import Driver, KubernetesDriver, LocalDriver
from cp_helpers import Transitions
from kube_helpers import Controller, seed_templates
from kubefake import FakeKubernetes

from agenttier_router.controlplane import DEFAULT_TEMPLATES, LocalControlPlane
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane, from_url


@pytest.fixture
def transitions() -> Transitions:
    return Transitions()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sandboxes"


@pytest.fixture
def plane(root: Path, transitions: Transitions) -> Iterator[LocalControlPlane]:
    control_plane = LocalControlPlane(root, DEFAULT_TEMPLATES, transitions)
    yield control_plane
    control_plane.close()


# The Kubernetes plane, against the fake API server (tests/kubefake.py says why it is a fake).


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        seed_templates(server)
        yield server
        # Every object the plane wrote was checked against our CRD schemas: none was refused.
        assert server.rejected == []


@pytest.fixture
def kubeconfig(kube: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = kube.kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def kplane(kubeconfig: Path, transitions: Transitions) -> Iterator[KubernetesControlPlane]:
    control_plane = from_url("kubernetes://", transitions)
    assert control_plane.wait_synced(10), control_plane.problem()
    yield control_plane
    control_plane.close()


@pytest.fixture
def controller(kube: FakeKubernetes) -> Controller:
    return Controller(kube)


@pytest.fixture(params=["local", "kubernetes"])
def driver(request: pytest.FixtureRequest, root: Path,
           transitions: Transitions) -> Iterator[Driver]:
    """The contract suite's plane: each test runs once on every control plane."""
    if request.param == "local":
        local = LocalControlPlane(root, DEFAULT_TEMPLATES, transitions)
        yield LocalDriver(local)
        local.close()
    else:
        yield KubernetesDriver(request.getfixturevalue("kplane"),
                               request.getfixturevalue("controller"))
