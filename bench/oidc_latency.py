"""OIDC-authenticated request latency against an API-key request, side by side in one run.

Starts a local OIDC issuer (discovery + JWKS over HTTP, an RS256 key made here)
and one real Router in its own process (``serve --api-keys FILE --oidc-issuer URL``,
storage off). One client per side (httpx, keep-alive) then sends ``GET
/api/v1/user/me`` — the cheapest authenticated request, so the one where auth
weighs most — alternating sides request by request: with ``X-API-Key``, and with
``Authorization: Bearer <RS256 JWT>`` (the same token each time: the Router
verifies it once and then remembers it for up to 60 s, by its SHA-256).

Prints p50/p95 per side and the p50 ratio OIDC / API key (target: <= 1.1).
Run from the repo root: ``.venv/bin/python bench/oidc_latency.py --n 3000``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "api"))

from oidc_helpers import AUDIENCE, local_issuer, new_key

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
    with tempfile.TemporaryDirectory() as temp, local_issuer(new_key("bench")) as issuer:
        keys = Path(temp) / "keys.json"
        keys.write_text(json.dumps([{"key": KEY, "subject": "alice", "groups": ["eng"]}]))
        port = _port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AGENTTIER_"))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "agenttier_router.cli", "serve", "--port", str(port),
             "--api-keys", str(keys), "--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE,
             "--data-dir", str(Path(temp) / "data"), "--log-level", "warning"], env=env)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = issuer.token(sub="alice", exp=int(time.time()) + 3600)
            sides = {
                "api key": httpx.Client(base_url=base, headers={"X-API-Key": KEY}),
                "oidc": httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}),
            }
            times: dict[str, list[float]] = {name: [] for name in sides}
            for i in range(args.warmup + args.n):
                order = list(sides.items()) if i % 2 else list(reversed(sides.items()))
                for name, client in order:
                    started = time.perf_counter()
                    response = client.get("/user/me")
                    took = time.perf_counter() - started
                    assert response.status_code == 200 and response.json()["sub"] == "alice"
                    if i >= args.warmup:
                        times[name].append(took)
            for client in sides.values():
                client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(f"GET /api/v1/user/me, {args.n} requests per side, alternating")
    print(f"{'side':<8} {'p50 ms':>8} {'p95 ms':>8}")
    p50 = {}
    for name, samples in times.items():
        samples.sort()
        p50[name] = statistics.median(samples)
        print(f"{name:<8} {p50[name] * 1000:8.3f} {samples[int(len(samples) * 0.95)] * 1000:8.3f}")
    print(f"p50 ratio oidc / api key: {p50['oidc'] / p50['api key']:.3f}")


if __name__ == "__main__":
    main()
