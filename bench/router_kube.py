"""The Router in kubernetes mode: list latency at 1,000 sandboxes, Event-to-row latency, memory.

No Kubernetes API server runs here, so the API server is the tests' fake
(``tests/kubefake.py``: real HTTP, the real list/watch protocol), in a child
process holding ``--n`` Running Sandboxes. Two Routers run side by side as
real ``agenttier-router serve`` processes, each on its own SQLite store:

- **kube**: ``--control-plane kubernetes://``, whose informer holds the
  cluster's ``--n`` sandboxes;
- **local**: the local plane, with ``--n`` sandboxes created through its API.

Measured, interleaved so that both see the same machine:

- ``GET /api/v1/sandboxes`` (all ``--n``, as the dev-auth admin): p50 and p95
  over ``--requests`` calls each;
- **Event posted -> row in the database**: an Event about a Sandbox is created
  on the API server (as the controller would), and the bench polls the kube
  Router's store until that Event's row is there; p50 and p95 over ``--events``,
  at the default recorder settings;
- each Router's resident memory once its sandboxes are loaded.

Run from the repo root (about a minute)::

    .venv/bin/python bench/router_kube.py
    .venv/bin/python bench/router_kube.py --n 1000 --requests 200 --events 30
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from router_common import DATA_DIR, Router, fresh_sqlite, pct, prepare_store  # noqa: E402

_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from kubefake import FakeKubernetes
n = int(sys.argv[2])
kube = FakeKubernetes().start()
kube.put("clustersandboxtemplates", {"metadata": {"name": "general-coding"}, "spec": {
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}})
stamp = "2026-01-01T00:00:00Z"
for i in range(n):
    name, ns = f"sb-{i:05d}", f"team-{i % 10}"
    kube.put("sandboxes", {"metadata": {"name": name, "namespace": ns}, "spec": {
        "templateRef": {"name": "general-coding", "kind": "ClusterSandboxTemplate"},
        "createdBy": {"sub": f"user{i % 50}", "email": f"user{i % 50}@example.com"}}})
    kube.set_status(ns, name, phase="Running", podName=f"{name}-pod",
                    pvcName=f"{name}-workspace", startedAt=stamp, lastActivityTimestamp=stamp)
kube.kubeconfig(__import__("pathlib").Path(sys.argv[3]))
print(kube.url, flush=True)
sys.stdin.read()  # until the bench closes our stdin
kube.close()
"""


def _p50_p95(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:.2f} / {pct(samples, 95) * 1e3:.2f}"


def _event_latency(api: str, token: str, store: Path, count: int) -> list[float]:
    """Create Events on the API server and time until each is a row in the store."""
    seen: list[float] = []
    for i in range(count):
        marker = f"bench-{uuid.uuid4().hex[:12]}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"sb-00000.{marker}", "namespace": "team-0"},
            "involvedObject": {"kind": "Sandbox", "apiVersion": "agenttier.io/v1alpha1",
                               "name": "sb-00000", "namespace": "team-0"},
            "reason": "BenchEvent", "message": marker, "type": "Normal", "count": 1,
            "source": {"component": "bench"},
        }
        started = time.perf_counter()
        posted = httpx.post(f"{api}/api/v1/namespaces/team-0/events", json=event, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
        posted.raise_for_status()
        deadline = started + 30
        while time.perf_counter() < deadline:
            with sqlite3.connect(store) as conn:
                found = conn.execute("SELECT 1 FROM sandbox_events WHERE message = ?",
                                     (marker,)).fetchone()
            if found:
                seen.append(time.perf_counter() - started)
                break
            time.sleep(0.005)
        else:
            raise SystemExit(f"event {i} never reached the store")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1000, help="sandboxes in each Router")
    parser.add_argument("--requests", type=int, default=200, help="GET /sandboxes per Router")
    parser.add_argument("--events", type=int, default=30, help="Events timed to the store")
    args = parser.parse_args()
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="agenttier-bench-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ROOT / "tests"), str(args.n), str(kubeconfig)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdin is not None
        api = child.stdout.readline().strip()
        os.environ["KUBECONFIG"] = str(kubeconfig)
        kube_store = Path(tmp) / "kube.db"
        local_store = Path(tmp) / "local.db"
        urls = {store: fresh_sqlite(store) for store in (kube_store, local_store)}
        for url in urls.values():
            prepare_store(url, empty=True)  # the schema before the bench reads it
        kube = Router("kube", urls[kube_store], flags=["--control-plane", "kubernetes://"])
        local = Router("local", urls[local_store])
        try:
            with kube, local:
                kube.wait_ready()
                local.wait_ready()
                with httpx.Client(base_url=f"{local.url}/api/v1", timeout=30) as http:
                    for i in range(args.n):
                        http.post("/sandboxes", json={"name": f"sb-{i:05d}",
                                                      "namespace": f"team-{i % 10}",
                                                      "templateRef": {"name": "minimal"}})
                clients = {r.name: httpx.Client(base_url=f"{r.url}/api/v1", timeout=30)
                           for r in (kube, local)}

                def listed(name: str) -> int:
                    return len(clients[name].get("/sandboxes").json()["sandboxes"])

                deadline = time.monotonic() + 60
                while (listed("kube"), listed("local")) != (args.n, args.n):
                    if time.monotonic() > deadline:
                        raise SystemExit("the Routers never listed every sandbox")
                    time.sleep(0.2)
                samples: dict[str, list[float]] = {"kube": [], "local": []}
                for _ in range(args.requests):
                    for name, client in clients.items():
                        started = time.perf_counter()
                        client.get("/sandboxes").raise_for_status()
                        samples[name].append(time.perf_counter() - started)
                token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
                events = _event_latency(api, token, kube_store, args.events)
                memory = {"kube": kube.rss_mib(), "local": local.rss_mib()}
                for client in clients.values():
                    client.close()
        finally:
            child.stdin.close()
            child.wait(30)

    print(f"GET /api/v1/sandboxes with {args.n} sandboxes, {args.requests} requests each "
          "(ms, p50 / p95):")
    for name in ("kube", "local"):
        print(f"  {name:5s}  {_p50_p95(samples[name])}")
    ratio = statistics.median(samples["kube"]) / statistics.median(samples["local"])
    print(f"  kube / local p50: {ratio:.2f}")
    print(f"Event posted -> row in the store, {args.events} Events (ms, p50 / p95): "
          f"{_p50_p95(events)}")
    print(f"Router RSS with {args.n} sandboxes (MiB): kube {memory['kube']:.1f}, "
          f"local {memory['local']:.1f}")


if __name__ == "__main__":
    main()
