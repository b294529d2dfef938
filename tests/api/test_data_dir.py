"""The data directory: one Router at a time, and private (issue 9, items 13 and 14).

A second Router on a data directory in use once took the first one's sandbox
directories for forgotten ones and wiped them; now it exits at once, saying
why. The directory is made 0700, also when the spool inside it is made first.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from router_helpers import config_for, free_port, running_router, wait_phase

SCRIPT = Path(sys.executable).with_name("agenttier-router")


def test_a_second_router_on_the_same_data_dir_exits_and_wipes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", spool_dir=data / "spool")
    with running_router(config) as router:
        alice = router.client("alice")
        sandbox = alice.create_sandbox("minimal", "sb-live")
        wait_phase(alice, "sb-live")
        sandbox.exec("echo precious > work.txt")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("STORAGE_", "AGENTTIER_"))}
        second = subprocess.run(
            [str(SCRIPT), "serve", "--dev-auth", "--port", str(free_port()),
             "--data-dir", str(data), "--storage", f"sqlite:///{tmp_path / 'r2.db'}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env,
            cwd=tmp_path,
        )
        assert second.returncode != 0
        assert f"data directory {data.absolute()} is in use by another Router" in second.stderr
        assert "Traceback" not in second.stderr
        assert (data / "default" / "sb-live" / "work.txt").read_text() == "precious\n"
        assert sandbox.exec("cat work.txt").stdout == "precious\n"
        # Made 0700, though the spool inside it was made first.
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    # Once the first has stopped, the directory is free again (its sandbox is kept, stopped).
    with running_router(config) as router:
        [kept] = router.client("alice").list_sandboxes()
        assert (kept.name, kept.status) == ("sb-live", "Stopped")
