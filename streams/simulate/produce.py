"""Run the simulator against Kafka (or into a JSON-lines file), paced in event time, with a progress bar."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, WEATHER, topic_name
from streams.kafka.clients import DeliveryStats, KafkaException, Producer, make_producer, produce_one
from streams.settings import Settings
from streams.simulate.chargers import SetpointFn
from streams.simulate.config import SimConfig
from streams.simulate.stream import SimMessage, SimSummary, simulate

__all__ = ["INPUT_TOPICS", "RunResult", "TopicsMissing", "message_json", "run_simulation"]

INPUT_TOPICS = (CHARGER_REGISTRY, WEATHER, METER_READINGS, CHARGER_TELEMETRY)


@dataclass
class RunResult:
    """Outcome of :func:`run_simulation`."""

    summary: SimSummary
    wall_seconds: float
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    dry_run: bool = False

    @property
    def rate(self) -> float:
        """Messages per wall-clock second."""
        return self.summary.total / self.wall_seconds if self.wall_seconds > 0 else 0.0


def message_json(msg: SimMessage, prefix: str = "") -> dict[str, Any]:
    """One message as a JSON-lines object: topic, key, timestamp, headers, base64 value, decoded record."""
    return {
        "topic": topic_name(msg.topic, prefix),
        "key": msg.key.decode(),
        "timestamp": msg.timestamp,
        "headers": {k: v.decode() for k, v in msg.headers},
        "value_b64": base64.b64encode(msg.value).decode(),
        "record_type": type(msg.record).__name__ if msg.record is not None else None,
        "record": msg.record.model_dump() if msg.record is not None else None,
        "injected": msg.injected,
    }


class TopicsMissing(RuntimeError):
    """The broker is unreachable or lacks an input topic (the simulator never creates topics)."""


def _check_topics(producer: Producer, prefix: str) -> None:
    try:
        existing = set(producer.list_topics(timeout=15).topics)
    except KafkaException as exc:
        raise TopicsMissing(f"cannot reach the Kafka broker: {exc}") from exc
    missing = [topic_name(t, prefix) for t in INPUT_TOPICS if topic_name(t, prefix) not in existing]
    if missing:
        raise TopicsMissing(f"topics {', '.join(missing)} do not exist; create them with `evgrid topics create`")


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def run_simulation(settings: Settings, cfg: SimConfig, *, speed: float = 0.0, dry_run: bool = False,
                   out: Path | None = None, progress: bool = True, console: Console | None = None,
                   setpoint_fn: SetpointFn | None = None, flush_timeout: float = 120.0) -> RunResult:
    """Produce the stream of ``cfg`` to the prefixed input topics (or only to ``out`` when ``dry_run``).

    ``speed`` 0 runs as fast as possible; X > 0 paces event time at X times wall time. Keys are the
    feeder id (station id for weather); the Kafka timestamp is the event time. Raises if the broker
    does not acknowledge everything within ``flush_timeout`` seconds after the last message.
    """
    console = console or Console(stderr=True)
    producer = None if dry_run else make_producer(settings)
    if producer is not None:
        _check_topics(producer, settings.topic_prefix)
    stats = DeliveryStats()
    summary = SimSummary()
    fh: IO[str] | None = out.open("w") if out is not None else None
    span_s = (cfg.end_ms - cfg.start_ms) / 1000.0
    bar = Progress(TextColumn("[bold]simulate[/]"), BarColumn(), TextColumn("{task.fields[clock]}"),
                   TextColumn("{task.fields[count]} msgs"), TimeElapsedColumn(),
                   console=console, disable=not progress, transient=False)
    t0 = time.monotonic()
    try:
        with bar:
            task = bar.add_task("simulate", total=span_s, clock=_iso(cfg.start_ms), count=0)
            for msg in simulate(cfg, setpoint_fn=setpoint_fn):
                if speed > 0:
                    wait = t0 + (msg.timestamp - cfg.start_ms) / 1000.0 / speed - time.monotonic()
                    while wait > 0:
                        if producer is not None:
                            producer.poll(min(wait, 0.1))
                        else:
                            time.sleep(min(wait, 0.1))
                        wait = t0 + (msg.timestamp - cfg.start_ms) / 1000.0 / speed - time.monotonic()
                summary.add(msg)
                if fh is not None:
                    fh.write(json.dumps(message_json(msg, settings.topic_prefix), separators=(",", ":")) + "\n")
                if producer is not None:
                    produce_one(producer, topic_name(msg.topic, settings.topic_prefix),
                                (msg.key, msg.value, msg.timestamp, msg.headers), stats)
                    if summary.total % 1000 == 0:
                        producer.poll(0)
                if summary.total % 500 == 0:
                    bar.update(task, completed=(msg.timestamp - cfg.start_ms) / 1000.0,
                               clock=_iso(msg.timestamp), count=summary.total)
            if producer is not None:
                remaining = producer.flush(flush_timeout)
                if remaining:
                    raise RuntimeError(f"{remaining} messages not acknowledged after {flush_timeout} s")
            bar.update(task, completed=span_s, clock=_iso(cfg.end_ms), count=summary.total)
    finally:
        if fh is not None:
            fh.close()
    return RunResult(summary, time.monotonic() - t0, stats, dry_run)
