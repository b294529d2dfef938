"""Anonymous flood: audit rows and bytes written per second by keyless requests.

Issue 9, item 6: 8 threads of keyless requests wrote 10,378 rows (4.3 KB
each) in 10 s. Starts two real Routers side by side (``serve --api-keys``,
a fresh SQLite file each): the code before the fix (``BASE_COMMIT``) and this
tree (anonymous denials capped and folded per source and reason, 60 s
interval). 8 client threads send keyless requests for ``--seconds``: an exec
with a 4 KB command, a history read, a create. The Router is then stopped
(SIGTERM: the folded windows are recorded, the recorder drains) and the rows
and bytes in ``audit_events`` counted.

    .venv/bin/python bench/router_anonymous_flood.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx
from router_common import DATA_DIR, Router, base_source, fresh_sqlite
from sqlalchemy import create_engine, text


def _flood(url: str, seconds: float, threads: int) -> int:
    sent = [0] * threads
    deadline = time.monotonic() + seconds
    api = url + "/api/v1"

    def run(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                client.post(api + "/sandboxes/sb-x/exec", json={"command": "x" * 4096})
                client.get(api + "/audit/events")
                client.post(api + "/sandboxes",
                            json={"name": "sb-y", "templateRef": {"name": "minimal"}})
                sent[index] += 3

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(sent)


def _written(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows, size = conn.execute(text(
            "SELECT count(*), coalesce(sum(length(details) + length(actor) + length(action)"
            " + length(sandbox_id) + length(namespace) + length(event_id)), 0)"
            " FROM audit_events")).one()
    engine.dispose()
    return int(rows), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    DATA_DIR.mkdir(exist_ok=True)
    keys = DATA_DIR / "flood-keys.json"
    keys.write_text(json.dumps([{"key": "flood-admin-key-0123456789", "subject": "admin",
                                 "groups": ["agenttier-admins"]}]))
    auth = ("--api-keys", str(keys))
    print(f"{args.threads} threads of keyless requests for {args.seconds:g} s")
    print(f"{'side':8} {'requests':>9} {'req/s':>8} {'rows':>7} {'rows/s':>8} "
          f"{'bytes':>10} {'bytes/s':>10}")
    for name, source in (("before", base_source()), ("after", None)):
        url = fresh_sqlite(DATA_DIR / f"flood-{name}.db")
        router = Router(f"flood-{name}", url, auth=auth, source=source)
        with router:
            router.wait_ready()
            sent = _flood(router.url, args.seconds, args.threads)
        rows, size = _written(url)
        print(f"{name:8} {sent:9d} {sent / args.seconds:8.0f} {rows:7d} "
              f"{rows / args.seconds:8.1f} {size:10d} {size / args.seconds:10.0f}", flush=True)


if __name__ == "__main__":
    main()
