"""Service fixtures for integration tests.

``.ci/run`` starts the shared services (``bash infra/up.sh``) before pytest; when a developer just
runs ``python3 -m pytest`` the session fixtures below start whatever is missing (and leave it
running, like ``infra/up.sh`` would).  Tests that need to crash or restart a broker must use
``private_kafka`` — never the shared broker that other tests rely on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import infra
from tests.fixtures.private_influx import INFLUXD, PrivateInflux


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the shared broker (started if it is not answering)."""
    if not infra.kafka_ready(infra.KAFKA_BOOTSTRAP):
        infra.up("kafka", capture=True)
    return infra.KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def influx_url() -> str:
    """URL of the shared InfluxDB 1.8 (database ``evgrid``, bucket ``evgrid/autogen``)."""
    if not infra.influx_ready(infra.INFLUX_URL):
        infra.up("influxdb", capture=True)
    return infra.INFLUX_URL


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[infra.PrivateKafka]:
    """A started broker of this test's own (free ports, data under tmp_path); killed afterwards."""
    port, controller_port = infra.free_ports(2)
    broker = infra.start_private_kafka(port, controller_port, tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.kill()


class WorkerProcess:
    """An ``evgrid worker`` subprocess with its own environment; its counters come from its stats file."""

    def __init__(self, env: dict[str, str], data_dir: Path, log: Path, preamble: str = "") -> None:
        import os
        import subprocess
        import sys

        self.data_dir = data_dir
        self.log = log
        full_env = {**os.environ, **env, "EVGRID_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"{preamble}\nfrom streams.cli import app; app()", "worker", "--loglevel",
                 "warn"],
                env=full_env, stdout=fh, stderr=subprocess.STDOUT,
            )

    def stats(self) -> dict:
        import json

        files = sorted(self.data_dir.glob(f"*/stats-{self.proc.pid}.json"))
        return json.loads(files[0].read_text()) if files else {}

    def wait_for(self, predicate, timeout: float = 120.0, what: str = "condition") -> dict:  # type: ignore[no-untyped-def]
        import time

        deadline = time.monotonic() + timeout
        stats: dict = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}; log:\n{self.log.read_text()[-3000:]}")
            stats = self.stats()
            if stats and predicate(stats):
                return stats
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; {self.report()}")

    def report(self, log_chars: int = 8000) -> str:
        """The worker's stacks (dumped into its log first), last stats and log tail, for a failure message."""
        self.dump_stacks()
        return f"last stats {self.stats()}; log:\n{self.log.read_text()[-log_chars:]}"

    def dump_stacks(self) -> None:
        """Ask the worker for every thread's and task's stack (``evgrid worker`` prints them on SIGUSR1 / SIGUSR2)."""
        import signal
        import time

        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                time.sleep(2.0)

    def stop(self, kill: bool = False) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Start ``evgrid worker`` processes for a test (stopped afterwards): ``start_worker(env)``."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "w", preamble: str = "") -> WorkerProcess:
        w = WorkerProcess(env, tmp_path / "worker-data", tmp_path / f"{name}.log", preamble)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop(kill=True)


@pytest.fixture
def topic_namespace(kafka_bootstrap: str) -> Iterator:  # type: ignore[type-arg]
    """Settings with a unique prefix whose topics are created (retention forever) and deleted afterwards."""
    import uuid

    from streams.kafka.admin import create_topics, delete_topics
    from streams.settings import Settings

    s = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"it-{uuid.uuid4().hex[:8]}.", topic_retention_ms=-1)
    create_topics(s)
    yield s
    with contextlib.suppress(Exception):  # best-effort cleanup
        delete_topics(s)


@pytest.fixture
def private_influx(tmp_path: Path) -> Iterator[PrivateInflux]:
    """A started influxd of this test's own (free ports, data under tmp_path); stopped afterwards."""
    if not INFLUXD.exists():
        pytest.skip(f"influxd not built at {INFLUXD} (run bash infra/install.sh influxdb)")
    port, rpc_port = infra.free_ports(2)
    server = PrivateInflux(tmp_path / "influxdb", port, rpc_port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
