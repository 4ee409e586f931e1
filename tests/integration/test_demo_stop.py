"""`evgrid demo` stopped with SIGTERM (`kill`, a scheduler) stops its worker subprocess, as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.processes import children, ended, kill_left


def test_a_terminated_demo_stops_its_worker(tmp_path: Path, kafka_bootstrap: str) -> None:
    # Python's default for SIGTERM ended the demo at once, skipping the `finally` that stops its worker: the worker
    # ran on, reparented
    env = {**os.environ, "EVGRID_BOOTSTRAP_SERVERS": kafka_bootstrap, "EVGRID_DATA_DIR": str(tmp_path),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from streams.cli import app; app()", "demo", "--feeders", "1",
                             "--homes", "2", "--chargers", "1", "--hours", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers: list[str] = []
    try:
        workers = children(proc.pid, "streams.cli worker", timeout=120, alive=proc)
        assert workers, proc.communicate(timeout=30)[0] if proc.poll() is not None else "no worker started"
        time.sleep(2)  # into the run
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert ended(workers, timeout=40)
    finally:  # never leave a process behind, even when this fails
        kill_left([*workers, str(proc.pid)])
