"""The benchmarks' check for leftover servers (bench/_util.py): a run notes
them, since they skew its figures even when idle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from _util import competing_processes  # noqa: E402


def test_a_leftover_server_is_found_and_this_process_is_not():
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", "cobrowse"])
    try:
        for _ in range(50):  # until its command line is readable
            found = [line for line in competing_processes() if line.startswith(f"{leftover.pid} ")]
            if found:
                break
        assert found and "-m cobrowse" in found[0]
        assert not any(line.startswith(f"{os.getpid()} ") for line in competing_processes())
    finally:
        leftover.kill()
        leftover.wait()
