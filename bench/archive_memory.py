"""Archive of a 10,000-file tree: time and peak RSS, against the same zip built in memory.

Each measurement runs in a fresh Python process, which reports its own peak RSS
(``ru_maxrss``) and the time to produce the zip, so one run cannot inflate the
next. Trees of 1,000, 10,000 and 10,000 larger files are compared side by side:

- ``streamed``: :func:`archive` consumed and thrown away piece by piece, as the
  Router sends it (memory should stay flat whatever the tree's size);
- ``in memory``: the same files through :class:`zipfile.ZipFile` into a
  :class:`io.BytesIO`, the naive way (memory grows with the zip).

Run: ``python bench/archive_memory.py --rounds 3``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import io, os, resource, sys, time, zipfile
from pathlib import Path
from agenttier_router.controlplane.localfiles import archive
root, how = Path(sys.argv[1]), sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
size = 0
if how == "streamed":
    for piece in archive(root, "/workspace"):
        size += len(piece)
else:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for directory, _, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(directory, name)
                zf.write(path, os.path.relpath(path, root))
    size = len(buffer.getvalue())
took = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, base, peak, size)
"""


def _tree(root: Path, files: int, size: int) -> None:
    for i in range(files):
        directory = root / f"d{i // 100:03d}"
        directory.mkdir(exist_ok=True)
        # half random (incompressible), half text: a workspace is a mix
        body = os.urandom(size // 2) + (b"print('hello')\n" * (size // 30))
        (directory / f"f{i:05d}.py").write_bytes(body[:size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shapes = [("1,000 x 4 KiB", 1000, 4096), ("10,000 x 4 KiB", 10_000, 4096),
              ("10,000 x 32 KiB", 10_000, 32768)]
    print(f"{'tree':<17} {'how':<10} {'zip MiB':>8} {'s (median)':>10} "
          f"{'peak RSS MiB':>13} {'over start MiB':>15}")
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as temp:
        for label, files, size in shapes:
            root = Path(temp) / label.replace(" ", "").replace(",", "")
            root.mkdir()
            _tree(root, files, size)
            for how in ("streamed", "in memory"):
                runs = []
                for _ in range(args.rounds):
                    out = subprocess.run([sys.executable, "-c", _CHILD, str(root), how],
                                         check=True, capture_output=True, text=True).stdout
                    took, base, peak, zipped = out.split()
                    runs.append((float(took), int(base), int(peak), int(zipped)))
                took = statistics.median(r[0] for r in runs)
                peak = statistics.median(r[2] for r in runs) / 1024
                grown = statistics.median(r[2] - r[1] for r in runs) / 1024
                print(f"{label:<17} {how:<10} {runs[0][3] / 2**20:8.1f} {took:10.2f} "
                      f"{peak:13.1f} {grown:15.1f}")


if __name__ == "__main__":
    main()
