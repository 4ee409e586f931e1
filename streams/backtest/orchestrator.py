"""Run a backtest through the real pipeline: fresh topic namespace, one ``evgrid worker``, replay, collect.

Steps: create a unique prefix namespace (retention -1; output topics with ``delete`` cleanup so the log
cleaner never compacts old setpoints away), start a worker subprocess with ``EVGRID_TOPIC_PREFIX`` and the
run's settings, replay the inputs (Kafka timestamp = event time) plus a flush record, wait until the
worker's stats file counts every record as accepted or rejected, stop it gracefully (its producer is
flushed), read the output topics, delete the namespace (unless kept).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streams.backtest.inputs import BacktestInputs, merged_records
from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerSetpoint,
    DeadLetter,
    DemandForecast,
    IncentiveEvent,
    Settlement,
    decode_record,
)
from streams.contracts.topics import CHARGER_REGISTRY, DEADLETTER, FORECASTS, INCENTIVES, SETPOINTS, SETTLEMENTS, TOPICS
from streams.kafka.admin import TopicLayout, delete_topics, ensure_topics
from streams.kafka.clients import TopicPartition, consume_all, new_consumer
from streams.replay.replayer import replay_records
from streams.settings import Settings

__all__ = ["PipelineOutputs", "RunTimings", "run_pipeline", "worker_env"]

OUTPUT_TOPICS = (SETPOINTS, FORECASTS, INCENTIVES, SETTLEMENTS, DEADLETTER)


@dataclass
class RunTimings:
    """Wall-clock seconds of each phase."""

    worker_start: float = 0.0
    replay: float = 0.0
    processing: float = 0.0
    collect: float = 0.0
    total: float = 0.0


@dataclass
class PipelineOutputs:
    """What the pipeline emitted, decoded."""

    prefix: str
    records_replayed: int
    setpoints: list[ChargerSetpoint] = field(default_factory=list)
    forecasts: list[DemandForecast] = field(default_factory=list)
    incentives: list[IncentiveEvent] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    worker_stats: dict[str, Any] = field(default_factory=dict)
    timings: RunTimings = field(default_factory=RunTimings)


def _env_value(v: Any) -> str:
    if isinstance(v, list | tuple | dict):
        return json.dumps(list(v) if isinstance(v, tuple) else v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def worker_env(inputs: BacktestInputs, base: Settings, prefix: str, data_dir: str) -> dict[str, str]:
    """EVGRID_* environment of the run's worker (the scenario's settings, then the run's own)."""
    if inputs.step_ms % 60_000 or not 1 <= inputs.step_ms // 60_000 <= 60:
        raise ValueError("the step must be a whole number of minutes between 1 and 60")
    env = {f"EVGRID_{k.upper()}": _env_value(v) for k, v in inputs.settings.items()}
    env.update({
        "EVGRID_BOOTSTRAP_SERVERS": base.bootstrap_servers,
        "EVGRID_TOPIC_PREFIX": prefix,
        "EVGRID_TOPIC_RETENTION_MS": "-1",
        "EVGRID_DATA_DIR": data_dir,
        "EVGRID_INTERVAL_MINUTES": str(inputs.step_ms // 60_000),
        "EVGRID_HORIZON_HOURS": str(max(1, inputs.horizon_ms // 3_600_000)),
    })
    if inputs.import_limit_kw is not None:
        env["EVGRID_DEFAULT_IMPORT_LIMIT_KW"] = str(inputs.import_limit_kw)
    if inputs.export_limit_kw is not None:
        env["EVGRID_DEFAULT_EXPORT_LIMIT_KW"] = str(inputs.export_limit_kw)
    return env


def _create_namespace(settings: Settings) -> None:
    """Every topic of the table under the prefix, retention -1 (the settings'), outputs never compacted."""
    ensure_topics(settings, replace(TopicLayout.from_settings(settings), compaction=False))


def _processed(stats: dict[str, Any]) -> int:
    return (sum(stats.get("accepted", {}).values()) + sum(stats.get("rejected", {}).values())
            + int(stats.get("skipped_replayed", 0)))


def _decode_all(msgs: list[Any], prefix: str) -> dict[str, list[Any]]:
    codec = default_codec()
    out: dict[str, list[Any]] = {t: [] for t in OUTPUT_TOPICS}
    for m in msgs:
        topic = m.topic()[len(prefix):]
        out[topic].append(decode_record(codec, m.value(), TOPICS[topic].record))
    return out


def run_pipeline(inputs: BacktestInputs, base: Settings | None = None, *, keep_topics: bool = False,
                 timeout_s: float | None = None, log: Callable[[str], None] | None = None,
                 work_dir: str | None = None) -> PipelineOutputs:
    """Replay ``inputs`` through a fresh namespace and one worker; return the decoded outputs.

    Parameters
    ----------
    inputs
        From :mod:`streams.backtest.inputs` (a flush record is added here).
    base
        Connection settings (bootstrap, security); default from the environment.
    keep_topics
        Leave the namespace's topics in place (their prefix is in the result).
    timeout_s
        Give up waiting for the worker after this long (default: 60 s + 20 ms per record).
    log
        Progress messages.
    work_dir
        Worker data directory and log (default: a temporary directory, removed afterwards).

    Raises
    ------
    RuntimeError
        If the worker exits or does not consume every record in time (its log tail is in the message).
    """
    base = base or Settings()
    say = log or (lambda _m: None)
    t_all = time.perf_counter()
    inputs = inputs.with_flush()
    prefix = f"bt-{uuid.uuid4().hex[:10]}."
    settings = base.model_copy(update={"topic_prefix": prefix, "topic_retention_ms": -1})
    tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="evgrid-backtest-")
    wdir = Path(work_dir or tmp.name)  # type: ignore[union-attr]
    wdir.mkdir(parents=True, exist_ok=True)
    out = PipelineOutputs(prefix=prefix, records_replayed=0)
    proc: subprocess.Popen[bytes] | None = None
    try:
        say(f"namespace {prefix}")
        _create_namespace(settings)
        env = {**os.environ, **worker_env(inputs, base, prefix, str(wdir / "data")), "PYTHONUNBUFFERED": "1"}
        t0 = time.perf_counter()
        with open(wdir / "worker.log", "ab") as fh:
            proc = subprocess.Popen([sys.executable, "-c", "from streams.cli import app; app()", "worker",
                                     "--loglevel", "warning"], env=env, stdout=fh, stderr=subprocess.STDOUT)
        out.timings.worker_start = time.perf_counter() - t0
        stats_glob = f"*/stats-{proc.pid}.json"
        records = list(merged_records(inputs))
        # Registrations first, and applied before any telemetry: the worker consumes its input topics
        # independently, so telemetry of a charger whose registration it has not read yet would be held and
        # miss the plans made meanwhile (real chargers are registered before they are used).
        phases = [[d for d in records if d["topic"] == CHARGER_REGISTRY],
                  [d for d in records if d["topic"] != CHARGER_REGISTRY]]
        t0 = time.perf_counter()
        replayed = 0
        for recs in phases:
            if not recs:
                continue
            summary = replay_records(recs, settings, prefix=prefix, create_topics=False)
            replayed += summary.records
            out.timings.replay += summary.seconds
            say(f"replayed {summary.records} records in {summary.seconds:.1f} s; waiting for the worker")
            out.worker_stats = _wait(proc, wdir, stats_glob, replayed, say,
                                     timeout_s if timeout_s is not None else 60 + 0.02 * summary.records)
        out.records_replayed = replayed
        _settle(settings, proc, wdir, say, len({r.feeder_id for r in inputs.registrations.values()}))
        out.worker_stats = _read_stats(wdir, stats_glob) or out.worker_stats  # as the run ends
        out.timings.processing = time.perf_counter() - t0
        t0 = time.perf_counter()
        _stop(proc)
        msgs = consume_all(settings, [prefix + t for t in OUTPUT_TOPICS], timeout=600, idle=1.0)
        dec = _decode_all(msgs, prefix)
        out.setpoints, out.forecasts, out.incentives = dec[SETPOINTS], dec[FORECASTS], dec[INCENTIVES]
        out.settlements, out.deadletters = dec[SETTLEMENTS], dec[DEADLETTER]
        out.timings.collect = time.perf_counter() - t0
        say(f"collected {len(msgs)} output records")
    finally:
        if proc is not None:
            _stop(proc)
        if not keep_topics:
            try:
                delete_topics(settings)
            except Exception as exc:  # best effort: never hide the run's own error
                say(f"could not delete topics {prefix}*: {exc}")
        if tmp is not None:
            tmp.cleanup()
    out.timings.total = time.perf_counter() - t_all
    return out


def _read_stats(wdir: Path, pattern: str) -> dict[str, Any]:
    files = sorted((wdir / "data").glob(pattern))
    if not files:
        return {}
    try:
        return dict(json.loads(files[0].read_text()))
    except (OSError, ValueError):
        return {}


def _wait(proc: subprocess.Popen[bytes], wdir: Path, pattern: str, n: int, say: Callable[[str], None],
          timeout_s: float) -> dict[str, Any]:
    """Until the worker's stats count ``n`` records processed; its stats."""
    deadline = time.monotonic() + timeout_s
    last_report = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}: {_tail(wdir / 'worker.log')}")
        stats = _read_stats(wdir, pattern)
        done = _processed(stats)
        if done >= n:
            return stats
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker processed {done}/{n} records before the timeout: {_tail(wdir / 'worker.log')}")
        if time.monotonic() - last_report > 30:
            say(f"worker processed {done}/{n}")
            last_report = time.monotonic()
        time.sleep(0.25)


def _output_ends(consumer: Any, prefix: str) -> int:
    """Sum of the end offsets of the namespace's output topics."""
    total = 0
    meta = consumer.list_topics(timeout=30)
    for t in OUTPUT_TOPICS:
        tm = meta.topics.get(prefix + t)
        for p in (tm.partitions if tm is not None else {}):
            total += consumer.get_watermark_offsets(TopicPartition(prefix + t, p), timeout=30)[1]
    return total


def _settle(settings: Settings, proc: subprocess.Popen[bytes], wdir: Path, say: Callable[[str], None],
            feeders: int, quiet_s: float = 3.0, timeout_s: float = 600.0) -> None:
    """Wait until the worker holds no telemetry but the flush's last heartbeat of each of its ``feeders``, and its
    outputs stopped growing for ``quiet_s`` seconds.

    The stats count a record when the worker reads it; what it produces for the last batches may still be in
    its producer's buffer, so stopping it at once could lose the tail of the outputs.
    """
    consumer = new_consumer(settings, {"group.id": f"bt-settle-{uuid.uuid4().hex}"})
    try:
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {_tail(wdir / 'worker.log')}")
            held = int(_read_stats(wdir, f"*/stats-{proc.pid}.json").get("held_telemetry", 0) or 0)
            held = max(0, held - feeders)  # each feeder's last flush heartbeat stays held: nothing comes after it
            ends = _output_ends(consumer, settings.topic_prefix)
            if ends != last or held:
                last, since = ends, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.5)
        say("outputs still growing at the settle timeout; collecting what is there")
    finally:
        consumer.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"
