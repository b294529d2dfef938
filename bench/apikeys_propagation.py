"""How soon a key minted or revoked through one Router replica is seen by another (Kubernetes).

Two real Routers (in this process, each serving over real HTTP on its own
port) run against one API server: the tests' fake (``tests/kubefake.py``,
over real HTTP; no Kubernetes API server runs here). For each of ``--n``
keys: mint it through the first Router, and watch the second Router's key
store (the one its requests consult) until it accepts the key; revoke it
through the first, and watch the second's store until it refuses the key.
Each delay runs from the moment the request is sent to the first Router, so
it includes that request; the first Router's own answer time is shown beside
it. (The store is polled in-process, every ``--poll`` ms, rather than over
HTTP: an in-process HTTP round trip here costs ~45 ms of its own, a loopback
delayed-ACK artefact of client and server sharing one process, which would
swamp the figure.) Finally each revoked key is checked over HTTP on the
second Router: 401.

Run from the repo root: ``.venv/bin/python bench/apikeys_propagation.py --n 30``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "api"))

from kubecontroller import seed_templates  # noqa: E402
from kubefake import FakeKubernetes  # noqa: E402
from router_helpers import config_for, eventually, running_router  # noqa: E402


def _until(probe: Callable[[], bool], poll: float) -> float:
    """Seconds until ``probe`` holds (0 if it already does)."""
    started = time.perf_counter()
    while not probe():
        time.sleep(poll)
        if time.perf_counter() - started > 120:
            raise RuntimeError("not seen within 120 s")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30, help="keys minted and revoked")
    parser.add_argument("--poll", type=float, default=1.0, help="ms between polls")
    args = parser.parse_args()
    poll = args.poll / 1000
    seen: dict[str, list[float]] = {"mint answer": [], "mint": [], "revoke answer": [],
                                     "revoke": []}
    with tempfile.TemporaryDirectory() as temp, FakeKubernetes() as kube:
        seed_templates(kube)
        os.environ["KUBECONFIG"] = str(kube.kubeconfig(Path(temp) / "kubeconfig"))
        homes = [Path(temp) / name for name in ("a", "b")]
        for home in homes:
            home.mkdir()
        configs = [config_for(home, None, control_plane_url="kubernetes://") for home in homes]
        with running_router(configs[0]) as first, running_router(configs[1]) as second:
            for router in (first, second):
                eventually(lambda r=router: r.http("alice").get("/sandboxes").status_code == 200,
                           "the informers to sync")
            owner = first.http("alice")
            store = second.state.api_keys
            assert store is not None
            for i in range(args.n):
                started = time.perf_counter()
                created = owner.post("/user/api-keys", json={"name": f"k{i}"}).json()
                seen["mint answer"].append(time.perf_counter() - started)
                key = created["key"]
                seen["mint"].append(_until(lambda k=key: store.identify(k) is not None, poll)
                                    + seen["mint answer"][-1])
                started = time.perf_counter()
                assert owner.delete(f"/user/api-keys/{created['id']}").status_code == 200
                seen["revoke answer"].append(time.perf_counter() - started)
                seen["revoke"].append(_until(lambda k=key: store.identify(k) is None, poll)
                                      + seen["revoke answer"][-1])
                assert second.http(key).get("/user/me").status_code == 401
    print(f"{args.n} keys; the second Router's store polled every {args.poll:g} ms")
    print(f"{'from the request sent to':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    labels = {"mint answer": "the first Router's 201",
              "mint": "the key accepted on the second",
              "revoke answer": "the first Router's 200 (revoked)",
              "revoke": "the key refused on the second"}
    for name, samples in seen.items():
        samples.sort()
        print(f"{labels[name]:<40} {statistics.median(samples) * 1000:8.1f} "
              f"{samples[int(len(samples) * 0.95)] * 1000:8.1f} {samples[-1] * 1000:8.1f}")


if __name__ == "__main__":
    main()
