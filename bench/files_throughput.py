"""Write and read throughput of a 32 MiB file on the local plane, against ``cp`` of the same file.

Three ways, side by side in one run, alternating rounds so machine noise hits each alike:

- ``cp``: ``cp src dst`` of the 32 MiB file (a process spawn plus a copy);
- ``library``: :func:`write_file` of the bytes in memory (temporary file, rename), then
  :func:`read_file` of them back;
- ``http``: ``PUT`` and ``GET`` of the same bytes through a running Router (storage off),
  with httpx on 127.0.0.1;
- ``bare PUT``: the same ``PUT`` to a bare Starlette route on the same uvicorn that only
  counts the body: the ceiling the HTTP stack itself sets, whatever the handler does.

Prints medians in ms and MiB/s, and each one's ratio to ``cp`` (ratio = cp time / its time,
so above 1 is faster than cp). Run: ``python bench/files_throughput.py --rounds 15``.
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
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "api"))

from router_helpers import config_for, running_router, wait_phase

from agenttier_router.controlplane.localfiles import read_file, write_file

SIZE = 32 * 1024 * 1024


def _timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


async def _count(request: Request) -> PlainTextResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return PlainTextResponse(str(size))


def _bare_server() -> tuple[uvicorn.Server, str]:
    import socket
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = Starlette(routes=[Route("/put", _count, methods=["PUT"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/put"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    data = os.urandom(SIZE)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as temp:
        tmp = Path(temp)
        source = tmp / "source.bin"
        source.write_bytes(data)
        with running_router(config_for(tmp, None)) as router:
            alice = router.client("alice")
            alice.create_sandbox("minimal", "bench")
            wait_phase(alice, "bench")
            root = router.state.control_plane.workdir("bench", "default")  # type: ignore[attr-defined]
            http = httpx.Client(base_url=f"{router.url}/api/v1", timeout=120,
                                headers={"X-API-Key": "alice-key-0123456789abcdef"})
            times: dict[str, list[float]] = {k: [] for k in (
                "cp", "library write", "library read", "http PUT", "http GET", "bare PUT")}
            bare, bare_url = _bare_server()
            for _ in range(args.rounds):
                times["cp"].append(_timed(lambda: subprocess.run(
                    ["cp", str(source), str(tmp / "copy.bin")], check=True)))
                times["library write"].append(_timed(
                    lambda: write_file(root, "/workspace/lib.bin", data)))
                times["library read"].append(_timed(
                    lambda: read_file(root, "/workspace/lib.bin")))
                times["http PUT"].append(_timed(lambda: http.put(
                    "/sandboxes/bench/files/workspace/http.bin", content=data
                ).raise_for_status()))
                times["http GET"].append(_timed(lambda: http.get(
                    "/sandboxes/bench/files/workspace/http.bin").raise_for_status()))
                times["bare PUT"].append(_timed(
                    lambda: http.put(bare_url, content=data).raise_for_status()))
            http.close()
            bare.should_exit = True
    cp = statistics.median(times["cp"])
    print(f"32 MiB file, {args.rounds} rounds, medians; ratio = cp time / its time (>= 0.5 wanted)")
    print(f"{'what':<15} {'ms':>8} {'MiB/s':>8} {'vs cp':>6}")
    for name, samples in times.items():
        m = statistics.median(samples)
        print(f"{name:<15} {m * 1000:8.1f} {32 / m:8.0f} {cp / m:6.2f}")


if __name__ == "__main__":
    main()
