"""Write and read throughput of a 32 MiB file on the local plane, against ``cp`` of the same file.

All side by side in one run, alternating round by round so machine noise hits each alike:

- ``cp``: ``cp src dst`` of the 32 MiB file (a process spawn plus a copy), over the last
  round's copy, as every write below replaces the last round's file;
- ``library``: :func:`write_file` of the bytes in memory (temporary file, rename), then
  :func:`read_file` of them back;
- ``after``: ``PUT`` and ``GET`` through ``agenttier-router serve`` (the command as shipped,
  with its uvicorn options; storage off) in its own process, with httpx in this one (the
  SDK's client); ``PUT after, curl`` and ``GET after, curl`` are the same upload and
  download by ``curl`` (to a file, as ``cp`` writes one), a lighter client;
- ``after h11``: the same Router served on h11 and asyncio, as before httptools and uvloop
  were dependencies (what the code changes gave, without the parser and loop);
- ``before`` (with ``--before COMMIT``): the same through the Router of ``COMMIT``'s source,
  served on h11 and asyncio as it was before httptools and uvloop were dependencies;
- ``in-process``: the ``PUT`` through a Router in this process (``running_router``, as the
  tests run it), so that client and server share one GIL: the way this script measured
  before, kept to compare with the figures measured that way;
- ``bare PUT``: a ``PUT`` to a bare Starlette route that only counts the body, on uvicorn
  in its own process: the ceiling the HTTP stack itself sets, whatever the handler does.

Prints medians in ms and MiB/s, each one's ratio to ``cp`` (ratio = cp time / its time,
so above 1 is faster than cp), and the CPU each used per operation: this process's (httpx,
the library, the in-process Router), its children's (``cp``, ``curl``), and the Router's
or bare server's process. On a shared machine the wall times follow the load; the CPU
figures much less. Run: ``python bench/files_throughput.py --rounds 21
--before 6d0228d``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
SIZE = 32 * 1024 * 1024
KEY = "alice-key-0123456789abcdef"


def _child(argv: list[str]) -> None:
    """This script as a server process: ``--child-bare PORT`` or ``--child-router HTTP,LOOP``."""
    import uvicorn

    if argv[0] == "--child-bare":
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def count(request: Request) -> PlainTextResponse:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
            return PlainTextResponse(str(size))

        app = Starlette(routes=[Route("/put", count, methods=["PUT"])])
        uvicorn.run(app, host="127.0.0.1", port=int(argv[1]), log_level="warning")
        return
    http, loop = argv[1].split(",")
    run = uvicorn.run

    def pinned(*args: object, **kwargs: object) -> None:
        run(*args, http=http, loop=loop, **kwargs)  # type: ignore[arg-type]

    uvicorn.run = pinned  # type: ignore[assignment]
    from agenttier_router.cli import main

    raise SystemExit(main(argv[2:]))


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _cpu(pid: int | None) -> float:
    """Seconds of CPU (user + system) used so far by process ``pid``, or by cp's (None)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", metavar="COMMIT",
                        help="also measure the Router of this commit (h11, asyncio)")
    args = parser.parse_args()

    import agenttier
    from agenttier.auth import APIKeyAuth

    sys.path.insert(0, str(BENCH.parent / "tests" / "api"))
    sys.path.insert(0, str(BENCH))
    from router_common import DATA_DIR, Router, base_source
    from router_helpers import config_for, running_router, wait_phase, write_keys

    from agenttier_router.controlplane.localfiles import read_file, write_file

    DATA_DIR.mkdir(exist_ok=True)
    data = os.urandom(SIZE)
    servers: dict[str, Router] = {}
    with tempfile.TemporaryDirectory(dir=BENCH) as temp:
        tmp = Path(temp)
        source = tmp / "source.bin"
        source.write_bytes(data)
        library = tmp / "library"
        library.mkdir()
        write_keys(tmp)
        auth = ("--api-keys", str(tmp / "keys.json"))
        servers["after"] = Router("files-after", None, auth=auth)
        servers["after h11"] = Router("files-after-h11", None, auth=auth, script=Path(__file__),
                                      extra=["--child-router", "h11,asyncio"])
        if args.before:
            servers["before"] = Router("files-before", None, auth=auth, script=Path(__file__),
                                       extra=["--child-router", "h11,asyncio"],
                                       source=base_source(args.before))
        bare = Router("files-bare", None)
        bare.proc = subprocess.Popen([sys.executable, __file__, "--child-bare", str(bare.port)])
        for server in servers.values():
            server.start()
        clients: dict[str, httpx.Client] = {}
        try:
            for name, server in servers.items():
                server.wait_ready()
                sdk = agenttier.AgentTierClient(server.url, auth=APIKeyAuth(KEY), timeout=30)
                sdk.create_sandbox("minimal", "bench")
                wait_phase(sdk, "bench")
                sdk.close()
                clients[name] = httpx.Client(base_url=f"{server.url}/api/v1", timeout=120,
                                             headers={"X-API-Key": KEY})
            _wait_port(bare.port)
            (tmp / "inproc").mkdir()
            with running_router(config_for(tmp / "inproc", None)) as inproc:
                sdk = inproc.client("alice")
                sdk.create_sandbox("minimal", "bench")
                wait_phase(sdk, "bench")
                clients["in-process"] = inproc.http("alice")
                clients["in-process"].timeout = httpx.Timeout(120)
                bare_http = httpx.Client(timeout=120)
                pids = {name: server.proc.pid for name, server in servers.items()
                        if server.proc is not None}  # the in-process Router has none
                assert bare.proc is not None
                times, cpu = _rounds(args.rounds, data, source, tmp, library, clients, pids,
                                     (f"http://127.0.0.1:{bare.port}/put", bare_http,
                                      bare.proc.pid), write_file, read_file)
                bare_http.close()
        finally:
            for client in clients.values():
                client.close()
            for server in [*servers.values(), bare]:
                server.stop()
    cp = statistics.median(times["cp"])
    print(f"32 MiB file, {args.rounds} rounds, medians; ratio = cp time / its time "
          f"(>= 0.5 wanted); CPU ms per operation (mean); load average {os.getloadavg()[0]:.1f}")
    print(f"| {'what':<16} | {'ms':>6} | {'MiB/s':>5} | {'vs cp':>5} | CPU self | CPU child "
          "| CPU server |")
    for name, samples in times.items():
        m = statistics.median(samples)
        mine, child, server = (c / args.rounds * 1000 for c in cpu[name])
        print(f"| {name:<16} | {m * 1000:6.1f} | {32 / m:5.0f} | {cp / m:5.2f} | {mine:8.1f} "
              f"| {child:9.1f} | {server:10.1f} |")


def _wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("the bare server did not start")


def _rounds(rounds: int, data: bytes, source: Path, tmp: Path, library: Path,
            clients: dict[str, httpx.Client], pids: dict[str, int],
            bare: tuple[str, httpx.Client, int],
            write_file: Callable[..., int], read_file: Callable[..., bytes],
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each step once a round: its wall times, and its CPU seconds summed over the rounds.

    CPU is counted three ways: ``self`` (this process: httpx, the library, or a Router in
    this process), ``child`` (``cp`` and ``curl``), ``server`` (a Router in its own process).
    """
    path = "/sandboxes/bench/files/workspace/http.bin"

    def put(client: httpx.Client, url: str = path) -> None:
        response = client.put(url, content=data)
        response.raise_for_status()
        assert int(response.json()["bytes"] if url == path else response.text) == SIZE

    def get(client: httpx.Client) -> None:
        response = client.get(path)
        response.raise_for_status()
        assert len(response.content) == SIZE

    copy = ["cp", str(source), str(tmp / "copy.bin")]
    steps: list[tuple[str, Callable[[], object], int | None]] = [
        ("cp", lambda: subprocess.run(copy, check=True), None),
        ("library write", lambda: write_file(library, "/workspace/lib.bin", data), None),
        ("library read", lambda: read_file(library, "/workspace/lib.bin"), None),
    ]
    for name, client in clients.items():
        steps.append((f"PUT {name}", lambda c=client: put(c), pids.get(name)))
        if name == "after" and shutil.which("curl"):
            curl = ["curl", "-sS", "-f", "-o", os.devnull, "-T", str(source), "-H", "Expect:",
                    "-H", f"X-API-Key: {KEY}", str(client.base_url).rstrip("/") + path]
            steps.append(("PUT after, curl", lambda c=curl: subprocess.run(c, check=True),
                          pids[name]))
        if name != "in-process":
            steps.append((f"GET {name}", lambda c=client: get(c), pids.get(name)))
        if name == "after" and shutil.which("curl"):
            fetch = ["curl", "-sS", "-f", "-o", str(tmp / "fetched.bin"), "-H",
                     f"X-API-Key: {KEY}", str(client.base_url).rstrip("/") + path]
            steps.append(("GET after, curl", lambda c=fetch: subprocess.run(c, check=True),
                          pids[name]))
    bare_url, bare_http, bare_pid = bare
    steps.append(("bare PUT", lambda: put(bare_http, bare_url), bare_pid))
    times: dict[str, list[float]] = {name: [] for name, _, _ in steps}
    cpu: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name, _, _ in steps}
    for _ in range(rounds):
        for name, action, pid in steps:
            before = (time.process_time(), _cpu(None), _cpu(pid) if pid else 0.0)
            times[name].append(_timed(action))
            after = (time.process_time(), _cpu(None), _cpu(pid) if pid else 0.0)
            cpu[name] = [total + a - b
                         for total, a, b in zip(cpu[name], after, before, strict=True)]
    for name, client in clients.items():  # what was written is what was sent
        assert client.get(path).content == data, name
    return times, cpu


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--child-"):
        _child(sys.argv[1:])
    else:
        main()
