"""The Kubernetes plane's informer: re-list time, read latency and memory, at 1,000 sandboxes.

No Kubernetes API server runs here, so the API server is the tests' fake
(``tests/kubefake.py``: real HTTP, the real list/watch/410 protocol), run in a
child process so that its own memory and CPU are not counted. The child holds
``--n`` Sandboxes (and a second size, ``--n2``, for the memory slope), each
shaped like a Running one: templateRef, createdBy, two shares, a full status.

Measured in this process, with the official client over HTTP on 127.0.0.1:

- **initial sync**: ``KubernetesControlPlane`` built (client already imported)
  until its informers have listed (templates, then the sandboxes, then Events);
- **re-list**: the API server compacts its history and drops the watch; the
  informer's watch gets 410 Gone and lists again. Timed from the drop until
  the new list is applied, ``--rounds`` times, in two cases side by side:
  nothing changed (each object compared by resourceVersion) and every sandbox
  changed meanwhile (each converted again and its transition emitted);
- **reads**: ``list()`` of all sandboxes and ``get()`` of one, from memory;
- **memory**: Python heap (tracemalloc) and RSS growth of this process from
  before the plane is built to after it has synced, at ``--n`` and ``--n2``
  sandboxes; the difference gives the cost per 1,000 sandboxes, without the
  fixed cost of the client and threads.

Run from the repo root (about a minute)::

    .venv/bin/python bench/kube_informer.py
    .venv/bin/python bench/kube_informer.py --n 1000 --n2 3000 --rounds 9
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Imported before anything is timed or traced: the client's import alone takes seconds.
from agenttier_router.controlplane.kubernetes import from_url  # noqa: E402

_CHILD = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
from kubefake import FakeKubernetes
n = int(sys.argv[2])
kube = FakeKubernetes().start()
kube.put("clustersandboxtemplates", {"metadata": {"name": "general-coding"}, "spec": {
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}})
stamp = "2026-01-01T00:00:00Z"
def sandbox(i):
    return {"metadata": {"name": f"sb-{i}", "namespace": f"team-{i % 10}",
                         "finalizers": ["agenttier.io/sandbox-cleanup"]},
            "spec": {"templateRef": {"name": "general-coding", "kind": "ClusterSandboxTemplate"},
                     "createdBy": {"sub": f"user-{i}", "email": f"user-{i}@example.com"},
                     "sharing": {"users": [{"identity": "bob@example.com", "level": "viewer"}],
                                 "groups": [{"identity": "devs", "level": "collaborator"}]}},
            "status": {"phase": "Running", "podName": f"sb-{i}-pod",
                       "pvcName": f"sb-{i}-workspace", "resolvedTemplate": "general-coding",
                       "startedAt": stamp, "lastActivityTimestamp": stamp, "restartCount": 0,
                       "message": ""}}
for i in range(n):
    kube.put("sandboxes", sandbox(i))
print(json.dumps({"port": kube.port}), flush=True)
touches = 0
for line in sys.stdin:
    command = line.strip()
    if command == "relist":
        # Something else changed (the resourceVersion is global), then the history went.
        kube.add_pod("default", f"other-{touches}"); touches += 1
        kube.compact(); kube.drop_watches()
    elif command == "touch-relist":
        touches += 1
        kube.change_unseen("sandboxes", {"touch": str(touches)})
        kube.compact(); kube.drop_watches()
    elif command == "quit":
        break
    print("ok", flush=True)
kube.close()
"""


class Child:
    """The fake API server in a child process, driven through its stdin."""

    def __init__(self, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ROOT / "tests"), str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def do(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(10)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _plane(port: int, tmp: Path, sink: Any) -> Any:
    config = tmp / f"kubeconfig-{port}"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "router", "user": {"token": "fake-router-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "router"}}]}))
    os.environ["KUBECONFIG"] = str(config)
    return from_url("kubernetes://", sink)


def _wait(condition: Any, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.001)


def measure_memory(n: int, tmp: Path) -> tuple[float, float]:
    """(heap MiB, RSS MiB) this process grows by to hold a synced plane of ``n`` sandboxes."""
    child = Child(n)
    try:
        gc.collect()
        tracemalloc.start()
        heap_before = tracemalloc.get_traced_memory()[0]
        rss_before = _rss_kib()
        plane = _plane(child.port, tmp, lambda t: None)
        assert plane.wait_synced(120)
        _wait(lambda: len(plane.list()) == n)
        gc.collect()
        heap = (tracemalloc.get_traced_memory()[0] - heap_before) / 2**20
        rss = (_rss_kib() - rss_before) / 1024
        tracemalloc.stop()
        plane.close()
    finally:
        child.close()
    return heap, rss


def measure_times(n: int, rounds: int, tmp: Path) -> dict[str, list[float]]:
    """Seconds for the initial sync, each re-list (both cases) and each read."""
    child = Child(n)
    emitted = [0]

    def sink(transition: Any) -> None:
        emitted[0] += 1

    results: dict[str, list[float]] = {"sync": [], "relist-unchanged": [],
                                       "relist-all-changed": [], "list()": [], "get()": []}
    try:
        start = time.perf_counter()
        plane = _plane(child.port, tmp, sink)
        assert plane.wait_synced(120)
        _wait(lambda: len(plane.list()) == n)
        results["sync"].append(time.perf_counter() - start)
        informer = plane._informer
        for _ in range(rounds):
            # Side by side: each round does both cases, in turn.
            for case, command in (("relist-unchanged", "relist"),
                                  ("relist-all-changed", "touch-relist")):
                _wait(lambda: plane.problem() is None)
                relists = informer.relists
                start = time.perf_counter()
                child.do(command)
                _wait(lambda then=relists: informer.relists > then and informer.synced
                      and informer._version != "")
                # The re-list is applied once the list's version is the informer's own.
                results[case].append(time.perf_counter() - start)
        for _ in range(rounds * 20):
            start = time.perf_counter()
            plane.list()
            results["list()"].append(time.perf_counter() - start)
            start = time.perf_counter()
            plane.get("sb-7", "team-7")
            results["get()"].append(time.perf_counter() - start)
        plane.close()
    finally:
        child.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n2", type=int, default=2000, help="second size, for the slope")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import kubernetes  # already imported, with the plane

    print(f"# {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"kubernetes client {kubernetes.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        times = measure_times(args.n, args.rounds, Path(tmp))
        print(f"\n## Times at {args.n} sandboxes ({args.rounds} rounds; reads x{args.rounds * 20})")
        print("| measure | median | min | max |")
        print("|---|---|---|---|")
        for name, values in times.items():
            scale, unit = (1e3, "ms") if name.startswith(("sync", "relist")) else (1e6, "µs")
            print(f"| {name} | {statistics.median(values) * scale:.1f} {unit} | "
                  f"{min(values) * scale:.1f} {unit} | {max(values) * scale:.1f} {unit} |")
        sizes = [args.n, args.n2]
        memory = {n: measure_memory(n, Path(tmp)) for n in sizes}
    print("\n## Memory of a synced plane (growth of this process)")
    print("| sandboxes | Python heap | RSS |")
    print("|---|---|---|")
    for n, (heap, rss) in memory.items():
        print(f"| {n} | {heap:.1f} MiB | {rss:.1f} MiB |")
    (h1, r1), (h2, r2) = memory[sizes[0]], memory[sizes[1]]
    per = 1000 / (sizes[1] - sizes[0])
    print(f"\nPer 1,000 sandboxes (slope between {sizes[0]} and {sizes[1]}): "
          f"heap {(h2 - h1) * per:.2f} MiB, RSS {(r2 - r1) * per:.2f} MiB")


if __name__ == "__main__":
    main()
