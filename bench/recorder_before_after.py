"""Ingest before and after a change to the recorder: the same workload on two source trees.

Issue 9 moved the recorder into its own package, gave the writer an
``offer()`` method (one more call on the request path), bounded what is held
in memory, and added a full-disk (degraded) mode and ``wait_written``. This
checks that ingest did not change. Two measures, per backend:

- ``record()`` ns/call: ``recorder.record(event)`` of events built beforehand,
  timed in chunks of 1,000 calls while the writer thread runs and writes;
  the median chunk's time per call.
- ingest records/s: from the first ``record()`` until ``flush()`` returns
  True, with the default batching and a queue big enough for the whole run.

Each side runs in its own Python process, importing ``agenttier_router`` from
its own tree: *before* from ``git archive <base>`` in a temporary directory,
*after* from this working tree. Each round runs both, in a rotated order, on
the same emptied database; the table gives medians over rounds and the ratio
after / before. Run from the repo root::

    .venv/bin/python bench/recorder_before_after.py --base e52ee77
    .venv/bin/python bench/recorder_before_after.py --base e52ee77 --backends sqlite --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1000


def worker(src: str, kind: str, url: str, rows: int) -> None:
    """One side: import the package from ``src``, measure, print one JSON line."""
    sys.path.insert(0, src)
    from prometheus_client import CollectorRegistry
    from recorder_common import make_records, median

    from agenttier_router.storage import Recorder, RecorderConfig, open_backend

    records = make_records(rows, seed=11)
    backend = open_backend(url)
    recorder = Recorder(backend, config=RecorderConfig(queue_size=rows + 1),
                        registry=CollectorRegistry())
    record = recorder.record
    clock = time.perf_counter_ns
    chunks: list[float] = []
    started = time.perf_counter()
    for i in range(0, rows, CHUNK):
        part = records[i:i + CHUNK]
        t0 = clock()
        for r in part:
            record(r)
        chunks.append((clock() - t0) / len(part))
    assert recorder.flush(600), "flush timed out"
    elapsed = time.perf_counter() - started
    assert recorder.metrics.dropped_total() == 0
    recorder.close(30)
    backend.close()
    import agenttier_router

    print(json.dumps({"record_ns": median(chunks), "ingest": rows / elapsed,
                      "from": agenttier_router.__file__}))


def side(src: Path, kind: str, url: str, rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(src), "--kind", kind, "--url", url,
         "--rows", str(rows)],
        check=True, capture_output=True, text=True, cwd=ROOT / "bench",
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    assert str(result["from"]).startswith(str(src)), result  # the tree it was meant to import
    return result


def extract(base: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", base, "src"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="main", help="the git revision for 'before'")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.kind, args.url, args.rows)
        return

    from recorder_common import machine, median, prepare, reset

    base = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    print(f"{machine()}; before = {base}, after = {head} (+ working tree); "
          f"{args.rows:,} records, {args.rounds} rounds")
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": extract(base, Path(tmp)), "after": ROOT / "src"}
        for kind in args.backends.split(","):
            url = prepare(kind)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for rnd in range(args.rounds):
                order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
                for name in order:
                    reset(kind, url)
                    results[name].append(side(trees[name], kind, url, args.rows))
                print(f"  {kind} round {rnd + 1}: " + ", ".join(
                    f"{n} {results[n][-1]['record_ns']:.0f} ns/record(), "
                    f"{results[n][-1]['ingest']:,.0f} rec/s" for n in trees), flush=True)
            reset(kind, url)
            for measure in ("record_ns", "ingest"):
                before = median([r[measure] for r in results["before"]])
                after = median([r[measure] for r in results["after"]])
                table.append((kind, measure, before, after))
    print()
    print("| backend | measure | before (median) | after (median) | after / before |")
    print("|---|---|---|---|---|")
    names = {"record_ns": "record() ns/call", "ingest": "ingest records/s"}
    for kind, measure, before, after in table:
        print(f"| {kind} | {names[measure]} | {before:,.0f} | {after:,.0f} | "
              f"{after / before:.2f} |")


if __name__ == "__main__":
    main()
