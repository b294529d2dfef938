"""A minted API key's request latency against a keys-file key's, side by side in one run.

Starts one real Router in its own process (``serve --api-keys FILE``, local
plane, storage off), mints a user-level key and a sandbox-scoped key through
``POST /api/v1/user/api-keys``, then alternates, request by request, three
clients (httpx, keep-alive): ``GET /api/v1/user/me`` with the keys-file key,
the same with the minted key, and ``GET /api/v1/sandboxes/{id}`` with the
scoped key (a minted lookup plus the scope check). ``/user/me`` is the
cheapest authenticated request, so the one where the key lookup weighs most.

Prints p50/p95 per side and the p50 ratio minted / keys file.
Run from the repo root: ``.venv/bin/python bench/apikeys_latency.py --n 3000``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "bench-key-0123456789abcdef"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        keys = Path(temp) / "keys.json"
        keys.write_text(json.dumps([{"key": KEY, "subject": "alice", "groups": ["eng"]}]))
        port = _port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AGENTTIER_"))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "agenttier_router.cli", "serve", "--port", str(port),
             "--api-keys", str(keys), "--data-dir", str(Path(temp) / "data"),
             "--log-level", "warning"], env=env)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            owner = httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30)
            made = owner.post("/sandboxes", json={"name": "sb-bench",
                                                  "templateRef": {"name": "minimal"}})
            assert made.status_code == 201, made.text
            user = owner.post("/user/api-keys", json={"name": "bench"}).json()["key"]
            scoped = owner.post("/user/api-keys", json={
                "name": "agent", "sandboxId": "sb-bench",
                "actionGroups": ["run-command"]}).json()["key"]
            sides = {
                "keys file": (httpx.Client(base_url=base, headers={"X-API-Key": KEY}),
                              "/user/me"),
                "minted": (httpx.Client(base_url=base, headers={"X-API-Key": user}),
                           "/user/me"),
                "scoped": (httpx.Client(base_url=base, headers={"X-API-Key": scoped}),
                           "/sandboxes/sb-bench"),
            }
            times: dict[str, list[float]] = {name: [] for name in sides}
            for i in range(args.warmup + args.n):
                order = list(sides.items())
                order = order[i % 3:] + order[:i % 3]
                for name, (client, path) in order:
                    started = time.perf_counter()
                    response = client.get(path)
                    took = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    if i >= args.warmup:
                        times[name].append(took)
            for client, _ in sides.values():
                client.close()
            owner.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(f"{args.n} requests per side, rotating")
    print(f"{'side':<10} {'p50 ms':>8} {'p95 ms':>8}")
    p50 = {}
    for name, samples in times.items():
        samples.sort()
        p50[name] = statistics.median(samples)
        print(f"{name:<10} {p50[name] * 1000:8.3f} "
              f"{samples[int(len(samples) * 0.95)] * 1000:8.3f}")
    print(f"p50 ratio minted / keys file: {p50['minted'] / p50['keys file']:.3f}")


if __name__ == "__main__":
    main()
