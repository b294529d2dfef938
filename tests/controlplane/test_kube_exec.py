"""Exec on the Kubernetes plane: the pods/exec WebSocket, channel protocol v5 or v4.

The fake API server runs the command with /bin/sh here, standing in for the
pod's ``sandbox`` container (see tests/kubefake.py).
"""

from __future__ import annotations

import pytest
from kube_helpers import NS, Controller, running
from kubefake import FakeKubernetes

from agenttier_router.controlplane import (
    ControlPlaneUnavailable,
    InvalidRequest,
    SandboxConflict,
)
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane


@pytest.fixture
def live(kplane: KubernetesControlPlane, controller: Controller) -> KubernetesControlPlane:
    running(kplane, controller, "sb-1")
    return kplane


def test_exec_returns_stdout_stderr_and_the_exit_code(
        live: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    result = live.exec("sb-1", NS, "echo out; echo err >&2; exit 3", timeout=10)

    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert not result.timed_out
    assert live.exec("sb-1", NS, "printf 'é'", timeout=10).stdout == "é"
    assert live.exec("sb-1", NS, "true", timeout=10).exit_code == 0
    assert kube.exec_protocols_seen == ["v5.channel.k8s.io"] * 3
    path, query = next((p, q) for m, p, q in kube.requests if p.endswith("/exec"))
    assert path == f"/api/v1/namespaces/{NS}/pods/sb-1-pod/exec"
    assert query["container"] == "sandbox"
    assert query["tty"] == "false"


def test_exec_falls_back_to_v4(live: KubernetesControlPlane, kube: FakeKubernetes) -> None:
    kube.exec_protocols = ("v4.channel.k8s.io",)
    result = live.exec("sb-1", NS, "echo hi; exit 7", timeout=10)
    assert (result.stdout, result.exit_code) == ("hi\n", 7)
    assert kube.exec_protocols_seen == ["v4.channel.k8s.io"]


def test_exec_times_out_with_124(live: KubernetesControlPlane) -> None:
    result = live.exec("sb-1", NS, "echo started; sleep 30", timeout=0.5)
    assert result.timed_out
    assert result.exit_code == 124
    assert result.stdout == "started\n"
    assert "timed out after 0.5 s" in result.stderr


def test_exec_caps_each_stream_at_one_mib(live: KubernetesControlPlane) -> None:
    result = live.exec("sb-1", NS, "head -c 3000000 /dev/zero | tr '\\0' x", timeout=30)
    assert result.exit_code == 0
    assert result.stdout.startswith("x" * (1 << 20))
    assert "stdout truncated at 1 MiB" in result.stdout
    assert "1951424 more bytes dropped" in result.stdout


def test_exec_needs_a_running_sandbox_and_good_input(
        kplane: KubernetesControlPlane, live: KubernetesControlPlane,
        controller: Controller) -> None:
    kplane.create("sb-2", NS, "general-coding", "alice", "")
    with pytest.raises(SandboxConflict, match="sandbox is not running"):
        kplane.exec("sb-2", NS, "true", timeout=10)
    with pytest.raises(InvalidRequest):
        kplane.exec("sb-1", NS, "", timeout=10)
    with pytest.raises(InvalidRequest):
        kplane.exec("sb-1", NS, "true", timeout=0)


def test_exec_forbidden_names_pods_exec(live: KubernetesControlPlane,
                                        kube: FakeKubernetes) -> None:
    kube.forbid("create", "pods/exec")
    with pytest.raises(ControlPlaneUnavailable, match="may not 'create' 'pods/exec'"):
        live.exec("sb-1", NS, "true", timeout=10)


def test_exec_into_a_pod_that_is_gone_is_a_conflict(live: KubernetesControlPlane,
                                                    kube: FakeKubernetes) -> None:
    kube.remove("pods", NS, "sb-1-pod")
    with pytest.raises(SandboxConflict, match="not running"):
        live.exec("sb-1", NS, "true", timeout=10)
