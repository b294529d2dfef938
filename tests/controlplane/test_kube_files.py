"""Files on the Kubernetes plane, what only it has: the exec behind them, v4 and v5, its faults.

The fake API server runs the pod's commands here (tests/kubefake.py says why,
and how a temporary ``spec.storage.mountPath`` gives each pod its own files).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from cp_helpers import wait_for
from kube_helpers import NS, Controller
from kubefake import FakeKubernetes

from agenttier_router.controlplane import (
    ControlPlaneError,
    ControlPlaneUnavailable,
    InvalidRequest,
    Phase,
    Sandbox,
)
from agenttier_router.controlplane.kubernetes import KubernetesControlPlane
from agenttier_router.controlplane.kubernetes.exec import open_session


def _running(plane: KubernetesControlPlane, controller: Controller, name: str,
             storage: dict[str, str] | None, template: str = "general-coding") -> Sandbox:
    plane.create(name, NS, template, "alice", "")
    if storage is not None:
        controller.kube.patch("sandboxes", NS, name, {"spec": {"storage": storage}})
    controller.reconcile(name, NS)
    controller.run(name, NS)
    wait_for(lambda: plane.get(name, NS).phase is Phase.RUNNING, f"{name} Running")
    return plane.get(name, NS)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "pod-workspace"
    path.mkdir()
    return path


@pytest.fixture
def sb(kplane: KubernetesControlPlane, controller: Controller, workspace: Path) -> Sandbox:
    return _running(kplane, controller, "sb", {"mountPath": str(workspace)})


def _exec_queries(kube: FakeKubernetes) -> list[tuple[str, dict[str, str]]]:
    return [(p, q) for _, p, q in kube.requests if p.endswith("/exec")]


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
def test_every_call_works_on_v5_and_v4(kplane: KubernetesControlPlane, sb: Sandbox,
                                       kube: FakeKubernetes, workspace: Path,
                                       protocol: str) -> None:
    kube.exec_protocols = (protocol,)
    files = kplane.files
    body = b"\0binary\xff" * 50_000
    assert files.write_file(sb, "/workspace/d/f.bin", [body], size=len(body)) == len(body)
    assert files.write_file(sb, "/workspace/d/chunked", iter([b"a", b"b"])) == 2
    assert (workspace / "d" / "f.bin").read_bytes() == body
    with files.open_file(sb, "/workspace/d/f.bin") as opened:
        assert b"".join(opened.chunks()) == body
    assert [e.name for e in files.list_files(sb, "/workspace/d").entries] == ["chunked", "f.bin"]
    zipped = zipfile.ZipFile(io.BytesIO(b"".join(files.archive(sb))))
    assert zipped.read("d/f.bin") == body
    assert set(kube.exec_protocols_seen) == {protocol}
    # v5 ends stdin on its close channel, once per write; v4 cannot (head -c ends it)
    assert kube.stdin_closes == (2 if protocol.startswith("v5") else 0)
    path, query = _exec_queries(kube)[0]
    assert path == f"/api/v1/namespaces/{NS}/pods/sb-pod/exec"
    assert query["container"] == "sandbox" and query["stdin"] == "true"


def test_the_exec_session_carries_stdin_and_binary_output(
        kplane: KubernetesControlPlane, sb: Sandbox, kube: FakeKubernetes) -> None:
    api = kplane._api  # the plane's own client, as the files seam uses it
    session = open_session(api, NS, "sb-pod", ["/bin/sh", "-c", "cat; echo end >&2"],
                           stdin=True)
    session.send(b"a\0b\xff" * 10_000)
    assert session.close_stdin()
    out, err, status = b"", b"", b""
    while (frame := session.receive(10)) is not None:
        channel, data = frame
        out += data if channel == 1 else b""
        err += data if channel == 2 else b""
        status += data if channel == 3 else b""
    session.close()
    assert out == b"a\0b\xff" * 10_000 and err == b"end\n" and b"Success" in status
    kube.exec_protocols = ("v4.channel.k8s.io",)
    v4 = open_session(api, NS, "sb-pod", ["/bin/sh", "-c", "true"], stdin=True)
    assert not v4.close_stdin()
    v4.close()


def test_forbidden_exec_is_503_naming_pods_exec(kplane: KubernetesControlPlane, sb: Sandbox,
                                                kube: FakeKubernetes) -> None:
    kube.forbid("create", "pods/exec")
    with pytest.raises(ControlPlaneUnavailable, match="may not 'create' 'pods/exec'") as raised:
        kplane.files.list_files(sb)
    assert raised.value.retry_after > 0


def test_a_running_sandbox_whose_pod_is_away_is_503(kplane: KubernetesControlPlane, sb: Sandbox,
                                                    kube: FakeKubernetes) -> None:
    kube.remove("pods", NS, "sb-pod")
    with pytest.raises(ControlPlaneUnavailable, match="cannot be reached now") as raised:
        kplane.files.open_file(sb, "/workspace/f")
    assert raised.value.retry_after == 5.0


def test_a_body_short_of_or_past_its_size_is_refused(kplane: KubernetesControlPlane, sb: Sandbox,
                                                     workspace: Path) -> None:
    (workspace / "f").write_bytes(b"old")
    with pytest.raises(ControlPlaneError, match="ended before its body did"):
        kplane.files.write_file(sb, "/workspace/f", [b"12345"], size=10)
    with pytest.raises(InvalidRequest, match="longer than its 3 bytes"):
        kplane.files.write_file(sb, "/workspace/f", [b"12345"], size=3)
    assert (workspace / "f").read_bytes() == b"old"
    wait_for(lambda: not list(workspace.glob(".agenttier-*")), "the temporary files to go")


def test_the_root_is_the_mount_path_of_the_sandbox_or_its_template(
        kplane: KubernetesControlPlane, controller: Controller, kube: FakeKubernetes,
        tmp_path: Path) -> None:
    from_template = tmp_path / "from-template"
    from_template.mkdir()
    kube.put("clustersandboxtemplates", {"metadata": {"name": "mounted"}, "spec": {
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "storage": {"mountPath": str(from_template)}}})
    wait_for(lambda: "mounted" in kplane.templates(), "the template")
    templated = _running(kplane, controller, "sb-t", None, template="mounted")
    kplane.files.write_file(templated, "/workspace/x", [b"t"], size=1)
    assert (from_template / "x").read_bytes() == b"t"

    plain = _running(kplane, controller, "sb-plain", None)
    if Path("/workspace").exists():
        pytest.skip("this machine has a /workspace: the default root cannot be told apart")
    with pytest.raises(ControlPlaneError, match="workspace is missing in its pod"):
        kplane.files.list_files(plain)  # its root is /workspace, which this machine lacks


def test_a_find_without_printf_lists_the_same_through_stat(
        kplane: KubernetesControlPlane, sb: Sandbox, workspace: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Busybox's find has no -printf: the script lists with one ``stat`` per entry instead."""
    (workspace / "dir with space").mkdir()
    (workspace / ".hidden").write_bytes(b"h")
    (workspace / "-n").write_bytes(b"dash!")
    (workspace / "ünï *").write_bytes(b"x" * 300)
    (workspace / "link").symlink_to("/etc")
    with_printf = kplane.files.list_files(sb).entries

    shim = tmp_path / "bin"
    shim.mkdir()
    find = shim / "find"  # the pod's commands inherit this process's PATH (kubefake)
    calls = tmp_path / "find-calls"
    find.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                    'for a do [ "$a" = -printf ] && exit 1; done\n'
                    'exec /usr/bin/find "$@"\n')
    find.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    without = kplane.files.list_files(sb).entries

    assert [e.name for e in without] == ["-n", ".hidden", "dir with space", "link", "ünï *"]
    assert without == with_printf
    assert calls.read_text() == ". -maxdepth 0 -printf \n"  # probed once, then stat did it
