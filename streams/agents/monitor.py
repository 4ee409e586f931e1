"""Monitoring: per-worker pipeline metrics inside the worker, and a separate monitor app for per-feeder metrics.

Two parts, both writing through a non-blocking :class:`~streams.sinks.influx.InfluxSink` (bounded buffer,
oldest dropped and counted, background writes), so InfluxDB being slow or down never reaches Kafka:

- :func:`attach_monitoring` (called once at the end of ``create_app``) adds to the *worker* app a timer that
  turns the :class:`~streams.pipeline.worker.FeederWorker` counters into ``throughput`` (events/s per input
  topic), ``dead_letters`` (by reason), ``consumer_lag`` and ``latency`` points; latency is measured on the
  setpoint topic: wall clock when a setpoint is handed to the producer minus its ``issued_at`` (the event
  time of the plan), stage ``setpoint``. The work per setpoint is one Avro decode; per tick, a dict diff.
- :func:`create_monitor_app` is a faust app of its own (``<prefix><app_id>-monitor``: its own consumer group,
  process and event loop; ``evgrid monitor``). It reads the output topics and the inputs it needs (meter
  readings, charger telemetry, grid signals) and turns them into per-feeder points with
  :class:`~streams.sinks.monitor_state.MonitorState`. It is a separate app rather than another agent of the
  worker because faust agents of one app share one consumer group, one fetcher and one event loop: the
  conductor waits for a full agent buffer before delivering to any other agent, so a slow monitor agent
  would throttle the control path, and the monitor's aggregation CPU would run on the worker's loop.
  Run one monitor instance: setpoints and offers are keyed by charger/customer, so the per-feeder buckets
  are complete only when one instance sees every partition.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import faust

from streams.contracts.codec import DecodeError, default_codec
from streams.contracts.topics import (
    CHARGER_TELEMETRY,
    DEADLETTER,
    FLEXIBILITY,
    FORECASTS,
    GRID_SIGNALS,
    INCENTIVE_RESPONSES,
    INCENTIVES,
    METER_READINGS,
    SETPOINTS,
    SETTLEMENTS,
    UTILITY_EVENTS,
    topic_name,
)
from streams.ingest.validate import RawMessage, Rejection, Validator
from streams.kafka.config import KafkaConnection
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings
from streams.sinks.influx import InfluxSink
from streams.sinks.metrics import PipelineCounters, feeder_state_points
from streams.sinks.monitor_state import MonitorConfig, MonitorState

__all__ = ["MONITOR_TOPICS", "PipelineMetrics", "attach_monitoring", "create_monitor_app"]

log = logging.getLogger(__name__)

MONITOR_TOPICS = (FORECASTS, SETPOINTS, INCENTIVES, INCENTIVE_RESPONSES, SETTLEMENTS, DEADLETTER, FLEXIBILITY,
                  METER_READINGS, CHARGER_TELEMETRY, GRID_SIGNALS, UTILITY_EVENTS)
"""Logical topics the monitor app consumes."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def consumer_lag(app: faust.App, prefix: str) -> dict[str, dict[int, int]]:
    """Lag per logical topic and partition of ``app``'s consumer: high watermark minus committed offset.

    Best effort and cheap (cached values of the consumer, no broker round trip); partitions without a
    known high watermark are left out.
    """
    out: dict[str, dict[int, int]] = {}
    try:
        consumer = app.consumer
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        for tp in consumer.assignment():
            hw = consumer.highwater(tp)
            if hw is None:
                continue
            done = committed.get(tp)
            lag = int(hw) - (int(done) + 1 if done is not None else 0)
            out.setdefault(tp.topic.removeprefix(prefix), {})[tp.partition] = max(0, lag)
    except Exception:  # not started, rebalancing, or a transport without these: no lag this tick
        log.debug("consumer lag unavailable", exc_info=True)
    return out


class PipelineMetrics:
    """Per-worker counters → points: diffs :class:`FeederWorker` counters into :class:`PipelineCounters`.

    Parameters
    ----------
    worker : FeederWorker
        The worker whose ``accepted``/``rejected`` counters are read.
    name : str
        Tag ``worker`` of the points.
    """

    def __init__(self, worker: FeederWorker, name: str) -> None:
        self.worker = worker
        self.counters = PipelineCounters(worker=name)
        self._accepted: Counter[str] = Counter()
        self._rejected: Counter[tuple[str, str]] = Counter()

    def setpoint_emitted(self, issued_at_ms: int, now_ms: int) -> None:
        """Record the latency of one setpoint (event time of its plan → handed to the producer)."""
        self.counters.latency("setpoint", now_ms - issued_at_ms)

    def tick(self, now_ms: int, lag: Mapping[str, Mapping[int, int]]) -> list[Any]:
        """Points of the window ending at ``now_ms`` (events and dead letters since the previous tick)."""
        accepted, rejected = Counter(self.worker.accepted), Counter(self.worker.rejected)
        for topic in set(accepted) | set(self._accepted):
            self.counters.event(topic, accepted[topic] - self._accepted[topic])
        for (topic, reason), n in rejected.items():
            new = n - self._rejected[(topic, reason)]
            if new:
                self.counters.event(topic, new)
                self.counters.dead_letter(reason, new)
        self._accepted, self._rejected = accepted, rejected
        for topic, parts in lag.items():
            for partition, n in parts.items():
                self.counters.lag(topic, partition, n)
        w = self.worker
        held = {f: len(rt.held) for f, rt in w.runtimes.items()}
        return self.counters.snapshot(now_ms) + feeder_state_points(
            self.counters.worker, now_ms, w.state_bytes, held, w.state_decode_failures, w.state_encode_failures)


class _LatencyTopic:
    """Stands in for the setpoint output topic: sends, then records the setpoint's latency."""

    def __init__(self, topic: Any, metrics: PipelineMetrics, codec: Any) -> None:
        self._topic = topic
        self._metrics = metrics
        self._codec = codec

    async def send(self, *, key: bytes, value: bytes) -> Any:
        result = await self._topic.send(key=key, value=value)
        try:
            _, record = self._codec.decode(value, "ChargerSetpoint")
            self._metrics.setpoint_emitted(int(record["issued_at"]), _now_ms())
        except (DecodeError, KeyError, TypeError):
            pass
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._topic, name)


def _sink_closer(sink: InfluxSink) -> Any:
    async def close(sender: Any, *args: Any, **kwargs: Any) -> None:
        sink.close(timeout=5.0)
    return close


def attach_monitoring(app: faust.App, settings: Settings, worker: FeederWorker,
                      out_topics: dict[str, Any]) -> PipelineMetrics | None:
    """Add per-worker pipeline metrics to the worker ``app`` (see the module docstring).

    Wraps ``out_topics[SETPOINTS]`` to time setpoints and adds a timer every EVGRID_MONITOR_PIPELINE_SECONDS.
    The sink is created when the timer first runs (so building an app for tests starts no thread) and
    closed on shutdown. Does nothing when EVGRID_MONITOR_ENABLED is false.

    Returns
    -------
    PipelineMetrics or None
        The counters (also ``app.evgrid_pipeline_metrics``), ``None`` when disabled.
    """
    if not settings.monitor_enabled:
        return None
    metrics = PipelineMetrics(worker, worker.worker_id)
    out_topics[SETPOINTS] = _LatencyTopic(out_topics[SETPOINTS], metrics, worker.codec)
    holder: dict[str, InfluxSink] = {}

    @app.timer(settings.monitor_pipeline_seconds, name="evgrid-pipeline-metrics")
    async def write_pipeline_metrics() -> None:
        sink = holder.get("sink")
        if sink is None:
            sink = holder["sink"] = InfluxSink.from_settings(settings, worker=worker.worker_id)
            app.on_before_shutdown.connect(_sink_closer(sink))
            metrics.counters.start(_now_ms())
            return
        sink.write(metrics.tick(_now_ms(), consumer_lag(app, settings.topic_prefix)))

    app.evgrid_pipeline_metrics = metrics  # type: ignore[attr-defined]
    return metrics


class Monitor:
    """The monitor app's processing, independent of faust: raw messages in, points into the sink."""

    def __init__(self, settings: Settings, sink: InfluxSink, name: str) -> None:
        self.settings = settings
        self.sink = sink
        self.state = MonitorState(MonitorConfig.from_settings(settings))
        self.counters = PipelineCounters(worker=name)
        self.validator = Validator(default_codec(), settings.max_message_bytes,
                                   settings.max_future_seconds * 1000, _now_ms)
        self.invalid = 0

    def process(self, msgs: list[RawMessage]) -> None:
        """Validate, aggregate and enqueue the points of a batch (never blocks on InfluxDB)."""
        points: list[Any] = []
        for msg in msgs:
            self.counters.event(msg.topic)
            record = self.validator.check(msg)
            if isinstance(record, Rejection):
                self.invalid += 1  # the worker dead-letters and counts these; here they are just skipped
                continue
            points += self.state.observe(record)
        self.sink.write(points)

    def tick(self, now_ms: int, lag: Mapping[str, Mapping[int, int]]) -> None:
        """Write completed bucket points and the monitor's own throughput/lag."""
        for topic, parts in lag.items():
            for partition, n in parts.items():
                self.counters.lag(topic, partition, n)
        self.sink.write(self.state.flush() + self.counters.snapshot(now_ms))


def create_monitor_app(settings: Settings | None = None) -> faust.App:
    """The monitor app (own consumer group ``<prefix><app_id>-monitor``); run it with ``evgrid monitor``."""
    settings = settings or Settings()
    prefix = settings.topic_prefix
    app_id = f"{prefix}{settings.app_id}-monitor"
    datadir = os.path.abspath(os.path.join(settings.data_dir, app_id))
    os.makedirs(datadir, exist_ok=True)
    app = faust.App(
        app_id,
        **KafkaConnection.from_settings(settings).faust(),
        datadir=datadir,
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=False,
        consumer_auto_offset_reset=settings.monitor_offset_reset,
        broker_commit_interval=5.0,
        web_enabled=False,
        stream_wait_empty=False,
        broker_max_poll_records=10_000,
        stream_buffer_maxsize=50_000,
    )
    name = f"monitor:{socket.gethostname()}:{os.getpid()}"
    names = {topic_name(t, prefix): t for t in MONITOR_TOPICS}
    source = app.topic(*names, key_type=bytes, value_type=bytes)
    holder: dict[str, Monitor] = {}

    def monitor() -> Monitor:
        m = holder.get("m")
        if m is None:
            sink = InfluxSink.from_settings(settings, worker=name)
            m = holder["m"] = Monitor(settings, sink, name)
            m.counters.start(_now_ms())
            app.on_before_shutdown.connect(_sink_closer(sink))
        return m

    @app.agent(source, name="monitor")
    async def consume(stream: Any) -> None:
        async for events in stream.take_events(5_000, within=0.5):
            msgs = [FeederWorker.raw(names.get(e.message.topic, e.message.topic), e.message) for e in events]
            monitor().process(msgs)

    @app.timer(settings.influx_flush_seconds, name="evgrid-monitor-flush")
    async def flush() -> None:
        monitor().tick(_now_ms(), consumer_lag(app, prefix))

    stats_path = os.path.join(datadir, f"monitor-stats-{os.getpid()}.json")

    @app.timer(1.0, name="evgrid-monitor-stats")
    async def write_stats() -> None:
        m = holder.get("m")
        if m is None:
            return
        import json

        s = m.sink.stats
        tmp = f"{stats_path}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"written_at": _now_ms(), "invalid": m.invalid, "written": s.written, "dropped": s.dropped,
                       "buffered": s.buffered, "write_errors": s.write_errors}, fh)
        os.replace(tmp, stats_path)

    app.evgrid_monitor = monitor  # type: ignore[attr-defined]
    return app
