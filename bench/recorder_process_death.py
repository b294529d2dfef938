"""Process death: SIGTERM and SIGKILL to a process that is recording a steady stream.

A child process (this script with ``--child``) records ``--rate`` audit events
a second into a Recorder with the default config and a spool, with
:func:`drain_on_sigterm` installed. Event ids are numbered, and after every
``record()`` returns the child writes how many it has recorded into a shared
8-byte memory map, so the parent knows exactly what was handed over when the
signal landed. After ``--run-for`` seconds (plus up to half a second of
random jitter, so the signal lands at any point of the batching cycle) the
parent sends the signal and waits for the child to die. Then, as the next
start would, it opens a new Recorder on the same spool directory, lets it
replay, and counts what is stored.

Three scenarios: SIGTERM, SIGKILL, and SIGKILL while the database is down
(for the last ``--down-for`` seconds before the signal: PostgreSQL behind a
killed TCP proxy, ``tests/tcpproxy.py``; SQLite with its write lock held by
the parent), so that what the child recorded meanwhile is only in its spool.

lost = recorded - distinct stored ids (it can read -1 when the child died
between a ``record()`` and the counter update). Target (issue 3): 0 for
SIGTERM; at most one flush interval (rate x 0.2 s) for SIGKILL. Run from the
repo root::

    .venv/bin/python bench/recorder_process_death.py
    .venv/bin/python bench/recorder_process_death.py --backends sqlite --trials 3
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time

from prometheus_client import CollectorRegistry
from recorder_common import DATA_DIR, count_rows, prepare
from sqlalchemy.engine import make_url
from tcpproxy import TcpProxy

from agenttier_router.storage import (
    AuditEvent,
    Recorder,
    RecorderConfig,
    drain_on_sigterm,
    open_backend,
)


def child(url: str, spool_dir: str, counter: str, tag: str, rate: int) -> None:
    """Record ``rate`` events a second until a signal ends the process."""
    backend = open_backend(url)
    recorder = Recorder(backend, config=RecorderConfig(spool_dir=spool_dir), registry=None)
    drain_on_sigterm(recorder, timeout=20)
    with open(counter, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 8)
    print("ready", flush=True)
    per_tick = max(1, rate // 1000)
    started = time.perf_counter()
    i = tick = 0
    while True:
        for _ in range(per_tick):
            recorder.record(AuditEvent(actor="bench@example.com", action="exec",
                                       sandbox_id="sb-00042", event_id=f"{tag}{i:024x}"))
            i += 1
            struct.pack_into("<Q", shared, 0, i)
        tick += 1
        delay = started + tick / 1000 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


class Outage:
    """Take the child's database away and back: a TCP proxy, or SQLite's write lock."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.url = kind, url
        self.proxy: TcpProxy | None = None
        self.lock: sqlite3.Connection | None = None
        self.child_url = url
        if kind != "sqlite":
            real = make_url(url)
            self.proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
            self.child_url = real.set(port=self.proxy.port).render_as_string(
                hide_password=False)

    def down(self) -> None:
        if self.proxy is not None:
            self.proxy.kill()
        else:
            self.lock = sqlite3.connect(make_url(self.url).database or "", isolation_level=None)
            self.lock.execute("BEGIN IMMEDIATE")

    def up(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        elif self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()


def trial(kind: str, url: str, sig: signal.Signals, down: bool, n: int,
          args: argparse.Namespace) -> dict[str, float]:
    tag = f"{os.getpid() % 0xFFFF:04x}{sig.value:02x}{int(down)}{n:01x}"
    outage = Outage(kind, url) if down else None
    spool_dir = DATA_DIR / f"recorder_death_spool_{kind}"
    shutil.rmtree(spool_dir, ignore_errors=True)
    counter = DATA_DIR / "recorder_death_counter"
    counter.write_bytes(b"\0" * 8)
    child_url = outage.child_url if outage else url
    cmd = [sys.executable, __file__, "--child", child_url, str(spool_dir), str(counter), tag,
           str(args.rate)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        pause = args.run_for + random.uniform(0, 0.5)
        if outage:
            time.sleep(pause - args.down_for)
            outage.down()
            time.sleep(args.down_for)
        else:
            time.sleep(pause)
        proc.send_signal(sig)
        code = proc.wait(60)
    if outage:
        outage.up()
    recorded = struct.unpack("<Q", counter.read_bytes())[0]
    stored_at_death = count_rows(kind, url, tag)[1]
    # The next start: a new recorder on the same spool replays what was left.
    backend = open_backend(url)
    nxt = Recorder(backend, config=RecorderConfig(spool_dir=spool_dir),
                   registry=CollectorRegistry())
    assert nxt.flush(120)
    replayed = nxt.metrics.replayed["audit_event"]
    nxt.close(30)
    backend.close()
    rows, distinct = count_rows(kind, url, tag)
    return {"code": code, "recorded": recorded, "at_death": stored_at_death,
            "replayed": replayed, "distinct": distinct, "duplicated": rows - distinct,
            "lost": recorded - distinct}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, spool_dir, counter, tag, rate = sys.argv[2:7]
        child(url, spool_dir, counter, tag, int(rate))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rate", type=int, default=10_000, help="records per second")
    parser.add_argument("--run-for", type=float, default=3.0, help="seconds before the signal")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--down-for", type=float, default=1.5,
                        help="seconds the database is down before the SIGKILL, third scenario")
    args = parser.parse_args()

    interval = RecorderConfig().flush_interval
    budget = args.rate * interval
    lines = []
    for kind in args.backends.split(","):
        url = prepare(kind, str(DATA_DIR / "recorder_death.db") if kind == "sqlite" else None)
        for sig, down in ((signal.SIGTERM, False), (signal.SIGKILL, False),
                          (signal.SIGKILL, True)):
            name = sig.name + (" while DB down" if down else "")
            for n in range(args.trials):
                r = trial(kind, url, sig, down, n, args)
                lines.append((kind, name, n + 1, r))
                print(f"  {kind} {name} #{n + 1}: {r}", flush=True)
    print(f"\n{args.rate:,} records/s; signal after {args.run_for:g}-{args.run_for + 0.5:g} s; "
          f"one flush interval = {interval:g} s = {budget:,.0f} records\n")
    print("| backend | signal | trial | exit | recorded | in DB at death | replayed from spool "
          "by next start | lost | duplicated | lost / flush interval |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, sig_name, n, r in lines:
        print(f"| {kind} | {sig_name} | {n} | {r['code']} | {r['recorded']:,} | "
              f"{r['at_death']:,} | {r['replayed']:,} | {r['lost']} | {r['duplicated']} | "
              f"{r['lost'] / budget:.2f} |")


if __name__ == "__main__":
    main()
