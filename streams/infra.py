"""Local service control: thin wrappers around ``infra/services.sh`` (stdlib only).

The shared development services are one Kafka broker (KRaft) on ``127.0.0.1:9092`` and one
InfluxDB 1.8 on ``http://127.0.0.1:8086`` (database ``evgrid``, v2-API bucket ``evgrid/autogen``).
Their state lives under ``<repo>/.run/``.

* :func:`up`, :func:`down`, :func:`status` back ``evgrid infra up|down|status``.
* :func:`start_private_kafka` starts an extra broker on other ports/dirs for tests that must
  restart or kill a broker without disturbing the shared one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "INFLUX_DB",
    "INFLUX_URL",
    "KAFKA_BOOTSTRAP",
    "SERVICES",
    "InfraError",
    "PrivateKafka",
    "ServiceStatus",
    "down",
    "free_ports",
    "influx_ready",
    "kafka_ready",
    "repo_root",
    "start_private_kafka",
    "status",
    "up",
]

KAFKA_BOOTSTRAP: Final = "127.0.0.1:9092"
INFLUX_URL: Final = "http://127.0.0.1:8086"
INFLUX_DB: Final = "evgrid"
SERVICES: Final = ("kafka", "influxdb")


class InfraError(RuntimeError):
    """A service script failed; ``output`` holds what it printed (when captured)."""

    def __init__(self, message: str, returncode: int = 1, output: str = "") -> None:
        super().__init__(message if not output else f"{message}\n{output.rstrip()}")
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``infra/services.sh status``."""

    name: str
    state: str  # running | starting | stopped | external
    pid: int | None
    address: str

    @property
    def ready(self) -> bool:
        """Answering requests (started by us or by someone else)."""
        return self.state in ("running", "external")

    def __str__(self) -> str:
        return f"{self.state} (pid {self.pid or '-'}, {self.address})"

    @classmethod
    def parse(cls, line: str) -> ServiceStatus:
        name, state, *rest = line.split()
        fields = dict(item.split("=", 1) for item in rest if "=" in item)
        pid = fields.get("pid", "-")
        return cls(name, state, int(pid) if pid.isdigit() else None, fields.get("addr", ""))


def repo_root() -> Path:
    """The checkout holding ``infra/`` (``$EVGRID_ROOT`` overrides)."""
    root = Path(os.environ.get("EVGRID_ROOT") or Path(__file__).resolve().parent.parent)
    if not (root / "infra" / "services.sh").is_file():
        raise InfraError(f"infra/services.sh not found under {root}; set EVGRID_ROOT to the evgrid checkout")
    return root


def _targets(services: str | Iterable[str]) -> list[str]:
    names = [services] if isinstance(services, str) else list(services)
    if not names or "all" in names:
        return ["all"]
    unknown = sorted(set(names) - {*SERVICES, "influx"})
    if unknown:
        raise ValueError(f"unknown service(s) {unknown}; choose from {', '.join(SERVICES)} or 'all'")
    return ["influxdb" if n == "influx" else n for n in dict.fromkeys(names)]


def _run(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    capture: bool,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        ["bash", str(repo_root() / "infra" / "services.sh"), *args],
        env=full_env,
        text=True,
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        check=False,
    )
    if check and proc.returncode != 0:
        out = (proc.stdout or "") + (proc.stderr or "")
        raise InfraError(f"infra/services.sh {' '.join(args)} failed (exit {proc.returncode})", proc.returncode, out)
    return proc


def up(services: str | Iterable[str] = "all", *, capture: bool = False) -> None:
    """Start (idempotently) the shared services and wait until they answer requests."""
    for target in _targets(services):
        _run(["up", target], capture=capture)


def down(services: str | Iterable[str] = "all", *, capture: bool = False) -> None:
    """Stop the shared services started by :func:`up` (never a process we did not start)."""
    for target in _targets(services):
        _run(["down", target], capture=capture)


def status(services: str | Iterable[str] = "all") -> dict[str, ServiceStatus]:
    """Current state of each service, keyed by name (``kafka``, ``influxdb``)."""
    result: dict[str, ServiceStatus] = {}
    for target in _targets(services):
        proc = _run(["status", target], capture=True, check=False)
        if proc.returncode not in (0, 3):
            raise InfraError("infra/services.sh status failed", proc.returncode, proc.stdout + proc.stderr)
        for line in proc.stdout.splitlines():
            if line.strip():
                st = ServiceStatus.parse(line)
                result[st.name] = st
    return result


# ------------------------------------------------------------------ probes


def kafka_ready(bootstrap: str = KAFKA_BOOTSTRAP, timeout: float = 2.0) -> bool:
    """True when a broker at ``bootstrap`` answers a Metadata request listing a live broker."""
    probe = repo_root() / "infra" / "kafka" / "probe.py"
    proc = subprocess.run(
        [sys.executable, str(probe), "--quiet", "--timeout", str(timeout), bootstrap],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=timeout + 10,
    )
    return proc.returncode == 0


def influx_ready(url: str = INFLUX_URL, timeout: float = 2.0) -> bool:
    """True when ``GET {url}/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


# ------------------------------------------------------------------ private brokers


def _alive(pid: int) -> bool:
    """The process still has a non-zombie thread (a SIGKILLed JVM keeps its sockets until none has)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
            return True
    return False


_LIVE: set[PrivateKafka] = set()


class PrivateKafka:
    """A broker of its own (same config template as the shared one) under ``data_dir``.

    ``data_dir`` receives ``server.properties``, ``data/`` (kept across restarts), ``logs/``
    and ``kafka.pid``.  Use as a context manager or call :meth:`stop`; brokers still running
    at interpreter exit are killed.

    ``template`` replaces ``infra/kafka/server.properties`` (e.g. ``server-sasl-ssl.properties``),
    ``template_vars`` fills its extra ``@@NAME@@`` placeholders and ``scram`` lists SCRAM
    credentials (``SCRAM-SHA-512=[name=u,password=p]``) created when the storage is first formatted.
    """

    def __init__(
        self,
        port: int,
        controller_port: int,
        data_dir: str | os.PathLike[str],
        heap: str = "-Xms128m -Xmx512m",
        session_timeout_ms: int = 2000,
        template: str | os.PathLike[str] | None = None,
        template_vars: Mapping[str, str] | None = None,
        scram: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.controller_port = controller_port
        self.data_dir = Path(data_dir).resolve()
        self.heap = heap
        # short broker session: a restart after kill() re-registers once the old session expired
        self.session_timeout_ms = session_timeout_ms
        self.template = Path(template).resolve() if template is not None else None
        self.template_vars = dict(template_vars or {})
        self.scram = tuple(scram)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _env(self) -> dict[str, str]:
        extra = {f"EVGRID_KAFKA_VAR_{k}": v for k, v in self.template_vars.items()}
        if self.template is not None:
            extra["EVGRID_KAFKA_TEMPLATE"] = str(self.template)
        if self.scram:
            extra["EVGRID_KAFKA_SCRAM"] = "\n".join(self.scram)
        return extra | {
            "EVGRID_KAFKA_PORT": str(self.port),
            "EVGRID_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "EVGRID_KAFKA_RUN_DIR": str(self.data_dir),
            "EVGRID_KAFKA_HEAP_OPTS": self.heap,
            "EVGRID_KAFKA_SESSION_TIMEOUT_MS": str(self.session_timeout_ms),
            "EVGRID_KAFKA_HEARTBEAT_INTERVAL_MS": str(max(100, self.session_timeout_ms // 4)),
        }

    @property
    def pid(self) -> int | None:
        """Pid of the running broker, or None."""
        try:
            pid = int((self.data_dir / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if str(self.data_dir / "server.properties") in cmdline else None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self) -> PrivateKafka:
        """Start (or keep) the broker and wait until it answers metadata requests."""
        _run(["up", "kafka"], env=self._env, capture=True)
        _LIVE.add(self)
        return self

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM, then SIGKILL after the stop timeout)."""
        _run(["down", "kafka"], env=self._env, capture=True)
        _LIVE.discard(self)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the broker (simulated crash); its data stays for the next :meth:`start`."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while _alive(pid):
                if time.monotonic() > deadline:
                    raise InfraError(f"private kafka pid {pid} still alive {timeout}s after SIGKILL")
                time.sleep(0.05)
        (self.data_dir / "kafka.pid").unlink(missing_ok=True)
        _LIVE.discard(self)

    def __enter__(self) -> PrivateKafka:
        return self if self.is_running() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PrivateKafka(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


def start_private_kafka(
    port: int,
    controller_port: int,
    data_dir: str | os.PathLike[str],
    *,
    heap: str = "-Xms128m -Xmx512m",
    session_timeout_ms: int = 2000,
    start: bool = True,
    template: str | os.PathLike[str] | None = None,
    template_vars: Mapping[str, str] | None = None,
    scram: Sequence[str] = (),
) -> PrivateKafka:
    """Create (and by default start) a private single-node broker on ``127.0.0.1:port``.

    ``data_dir`` is the broker's own directory; reusing it after :meth:`PrivateKafka.kill`
    or :meth:`PrivateKafka.stop` restarts the same cluster with its data. ``template``,
    ``template_vars`` and ``scram``: see :class:`PrivateKafka` (a secured broker for tests).
    """
    if port == controller_port:
        raise ValueError("port and controller_port must differ")
    handle = PrivateKafka(port, controller_port, data_dir, heap, session_timeout_ms, template, template_vars, scram)
    return handle.start() if start else handle


@atexit.register
def _kill_leftover_private_brokers() -> None:
    for handle in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            handle.kill()
