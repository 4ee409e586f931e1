"""``evgrid demo``: start the services, create topics, run a worker and the simulator, print what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerSetpoint,
    DeadLetter,
    DemandForecast,
    Flexibility,
    IncentiveEvent,
    decode_record,
)
from streams.contracts.topics import DEADLETTER, FLEXIBILITY, FORECASTS, INCENTIVES, SETPOINTS
from streams.settings import Settings

__all__ = ["run_demo"]


def run_demo(feeders: int, homes: int, chargers: int, hours: float, bad_rate: float, seed: int,
             console: Console | None = None) -> dict[str, object]:
    """Run the whole pipeline on simulated feeders ending now; return (and print) the summary."""
    from streams import infra
    from streams.kafka.admin import create_topics
    from streams.kafka.clients import consume_all
    from streams.simulate import SimConfig
    from streams.simulate.produce import run_simulation

    console = console or Console()
    console.print("[bold]1/5[/] starting Kafka and InfluxDB (infra/services.sh up)")
    infra.up("all")
    settings = Settings(topic_prefix=f"demo-{int(time.time())}.", topic_retention_ms=-1)
    console.print(f"[bold]2/5[/] creating topics under prefix {settings.topic_prefix!r}")
    create_topics(settings)
    data_dir = Path(settings.data_dir).resolve()
    log = data_dir / f"{settings.topic_prefix}worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EVGRID_TOPIC_PREFIX": settings.topic_prefix, "EVGRID_DATA_DIR": str(data_dir)}
    console.print(f"[bold]3/5[/] starting a worker (log: {log})")
    with open(log, "wb") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=fh,
                                  stderr=subprocess.STDOUT)
    try:
        now = int(time.time() // 900 * 900 * 1000)
        cfg = SimConfig(feeders=feeders, homes=homes, chargers=chargers, hours=hours, seed=seed,
                        bad_rate=bad_rate, start_ms=now - int(hours * 3_600_000))
        console.print(f"[bold]4/5[/] simulating {feeders} feeders x {homes} homes x {chargers} chargers, {hours} h")
        result = run_simulation(settings, cfg, progress=True, console=console)
        stats = _wait_processed(data_dir / f"{settings.topic_prefix}{settings.app_id}", worker.pid,
                                result.summary.total, console)
        console.print("[bold]5/5[/] reading the output topics")
        codec = default_codec()
        outputs: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        setpoint_reasons: Counter[str] = Counter()
        topics = [settings.topic_prefix + t for t in (FORECASTS, SETPOINTS, INCENTIVES, FLEXIBILITY, DEADLETTER)]
        for msg in consume_all(settings, topics, timeout=60):
            record = decode_record(codec, msg.value() or b"")
            outputs[type(record).__name__] += 1
            if isinstance(record, DeadLetter):
                reasons[record.reason_code] += 1
            elif isinstance(record, ChargerSetpoint):
                setpoint_reasons[record.reason] += 1
        summary = {"records_produced": result.summary.total, "bad_injected": dict(result.summary.bad_per_reason),
                   "worker": stats, "outputs": dict(outputs), "dead_letters_by_reason": dict(reasons),
                   "setpoints_by_reason": dict(setpoint_reasons)}
        _print(console, summary)
        return summary
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _wait_processed(stats_dir: Path, pid: int, total: int, console: Console, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    stats: dict = {}
    while time.monotonic() < deadline:
        path = stats_dir / f"stats-{pid}.json"
        if path.exists():
            stats = json.loads(path.read_text())
            done = sum(stats["accepted"].values()) + sum(stats["rejected"].values())
            if done >= total:
                return stats
        time.sleep(1)
    console.print(f"[yellow]worker did not finish within {timeout} s; last stats {stats}")
    return stats


def _print(console: Console, summary: dict) -> None:
    table = Table(title="evgrid demo")
    table.add_column("what")
    table.add_column("count", justify="right")
    worker = summary["worker"]
    for topic, n in sorted(worker.get("accepted", {}).items()):
        table.add_row(f"accepted {topic}", str(n))
    for name in (DemandForecast.__name__, ChargerSetpoint.__name__, IncentiveEvent.__name__, Flexibility.__name__,
                 DeadLetter.__name__):
        table.add_row(f"emitted {name}", str(summary["outputs"].get(name, 0)))
    for reason, n in sorted(summary["dead_letters_by_reason"].items()):
        table.add_row(f"dead letter: {reason}", str(n))
    for reason, n in sorted(summary["setpoints_by_reason"].items()):
        table.add_row(f"setpoint reason: {reason}", str(n))
    console.print(table)
