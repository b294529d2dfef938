"""Write and read of a 32 MiB file through the Router: the kubernetes plane against the local one.

Two Routers run side by side in this process (storage off), and requests
alternate between them so machine noise hits both alike:

- **local**: the local plane; the file goes to the sandbox's directory;
- **kube**: ``kubernetes://`` against the tests' fake API server
  (``tests/kubefake.py``, real HTTP and the real ``pods/exec`` WebSocket
  protocol, in a child process: no API server runs here). Its pod's commands
  run on this machine, in the sandbox's ``spec.storage.mountPath`` (a temporary
  directory), so the figures are the Router's side of the transfer (its
  WebSocket frames, the exec script, the checks) plus the fake's relay, not a
  cluster's network.

Each round: ``PUT`` then ``GET`` of the same random 32 MiB with httpx on
127.0.0.1. Prints medians (ms, MiB/s) and kube / local. Run from the repo root::

    .venv/bin/python bench/files_kube.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "api"))

from router_helpers import KEYS, config_for, eventually, running_router, wait_phase  # noqa: E402

SIZE = 32 * 1024 * 1024

_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from kubefake import FakeKubernetes, now_rfc3339
from kubecontroller import seed_templates
kube = FakeKubernetes().start()
seed_templates(kube)
kube.put("sandboxes", {"metadata": {"name": "bench", "namespace": "default"}, "spec": {
    "templateRef": {"name": "general-coding", "kind": "ClusterSandboxTemplate"},
    "createdBy": {"sub": "alice", "email": "alice@example.com"},
    "storage": {"mountPath": sys.argv[2]}}})
kube.add_pod("default", "bench-pod")
now = now_rfc3339()  # (an old start would have the cost sampler fill in months at the end)
kube.set_status("default", "bench", phase="Running", podName="bench-pod", startedAt=now,
                lastActivityTimestamp=now)
kube.kubeconfig(Path(sys.argv[3]))
print(kube.url, flush=True)
sys.stdin.read()  # until the bench closes our stdin
kube.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data = os.urandom(SIZE)
    with tempfile.TemporaryDirectory(prefix="agenttier-bench-") as temp:
        tmp = Path(temp)
        pod_workspace = tmp / "pod-workspace"
        pod_workspace.mkdir()
        kubeconfig = tmp / "kubeconfig"
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ROOT / "tests"), str(pod_workspace),
             str(kubeconfig)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        child.stdout.readline()
        os.environ["KUBECONFIG"] = str(kubeconfig)
        (tmp / "local").mkdir()
        (tmp / "kube").mkdir()
        try:
            with running_router(config_for(tmp / "local", None)) as local, \
                    running_router(config_for(tmp / "kube", None,
                                              control_plane_url="kubernetes://")) as kube:
                alice = local.client("alice")
                alice.create_sandbox("minimal", "bench")
                wait_phase(alice, "bench")
                clients = {name: httpx.Client(base_url=f"{router.url}/api/v1", timeout=300,
                                              headers={"X-API-Key": KEYS["alice"]})
                           for name, router in (("local", local), ("kube", kube))}
                eventually(lambda: clients["kube"].get("/sandboxes/bench").status_code == 200,
                           "the kube Router to see the sandbox")
                times: dict[str, list[float]] = {f"{n} {v}": [] for n in clients
                                                 for v in ("PUT", "GET")}
                url = "/sandboxes/bench/files/workspace/big.bin"
                for _ in range(args.rounds):
                    for name, http in clients.items():
                        started = time.perf_counter()
                        http.put(url, content=data).raise_for_status()
                        times[f"{name} PUT"].append(time.perf_counter() - started)
                        started = time.perf_counter()
                        got = http.get(url).raise_for_status().content
                        times[f"{name} GET"].append(time.perf_counter() - started)
                        assert got == data, f"{name}: the bytes read back differ"
                for http in clients.values():
                    http.close()
                _report(times, args.rounds)
        finally:
            child.stdin.close()
            child.wait(30)


def _report(times: dict[str, list[float]], rounds: int) -> None:
    print(f"32 MiB file, {rounds} rounds, medians")
    print(f"{'what':<10} {'ms':>8} {'MiB/s':>8}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<10} {median * 1000:8.1f} {32 / median:8.0f}")
    for verb in ("PUT", "GET"):
        ratio = statistics.median(times[f"kube {verb}"]) / statistics.median(times[f"local {verb}"])
        print(f"kube / local {verb}: {ratio:.2f}x the time")


if __name__ == "__main__":
    main()
