"""The faust application: one agent per input group, tables for feeder state, output topics.

Everything that decides anything lives in :mod:`streams.pipeline`; this module moves bytes between Kafka
and it. Processing is at-least-once with idempotent effects: each feeder's state records the last input
offset it applied per partition (events at or below it are skipped after a restart) and is written to
a changelog before the input offsets are committed (faust flushes the producer before committing).

Feeder inputs arrive in whole fetched batches (:mod:`streams.kafka.faust_internals`) and are applied by
:class:`~streams.pipeline.loop.WorkerLoop` (control records first; records acknowledged only once the states they
changed are checkpointed: each partition's feeders every ``EVGRID_CHECKPOINT_SECONDS``, partitions in turn, and all
before partitions move), so a commit never covers an input whose effect is not in the changelog. This module only
wires that loop to faust (:class:`FaustPort`).
Weather is not keyed by feeder: the group's weather agent counts and dead-letters it once per fleet, and every
worker also reads all of it (:mod:`streams.kafka.broadcast`) and applies it to the feeders it holds. Every worker
reads the whole registry topic the same way, for the charger ownership rule (:mod:`streams.pipeline.ownership`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, cast

import faust

from streams.agents.diagnostics import install_stack_dumps
from streams.agents.failpoints import Failpoints
from streams.agents.monitor import attach_monitoring
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    CHARGER_TELEMETRY,
    GRID_SIGNALS,
    INCENTIVE_RESPONSES,
    METER_READINGS,
    TOPICS,
    WEATHER,
    topic_name,
)
from streams.ingest.validate import RawMessage
from streams.kafka.broadcast import follow_topic
from streams.kafka.config import KafkaConnection
from streams.kafka.faust_internals import BatchingApp, FetchedBatch, changelog_sent
from streams.pipeline.loop import WorkerLoop
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings, pipeline_config

__all__ = ["FEEDER_INPUTS", "FaustPort", "create_app", "tune_gc"]

FEEDER_INPUTS = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, GRID_SIGNALS, INCENTIVE_RESPONSES)


class GcPauses:
    """The longest garbage-collector pause of each generation in this process, ms (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.max_ms = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            gen = info["generation"]
            self.max_ms[gen] = max(self.max_ms[gen], (time.perf_counter() - self._started) * 1000)


GC_PAUSES = GcPauses()


def tune_gc(gen0_threshold: int) -> None:
    """Freeze the objects allocated so far out of collection; collect the young generation less often (0: no-op)."""
    if GC_PAUSES not in gc.callbacks:
        gc.callbacks.append(GC_PAUSES)
    if gen0_threshold > 0:
        gc.collect()
        gc.freeze()
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


class FaustPort:
    """The :class:`~streams.pipeline.loop.WorkerPort` of the worker app: batches from the feeders agent's stream,
    outputs to ``out_topics`` (by logical name), checkpoints to the ``state`` table and its changelog."""

    def __init__(self, app: BatchingApp, out_topics: Mapping[str, Any], state: Any,
                 drained_topics: Mapping[str, str]) -> None:
        self.app, self.out_topics, self.state, self.drained_topics = app, out_topics, state, drained_topics
        self._stream: Any = None
        self._batches: AsyncIterator[FetchedBatch] | None = None

    def follow(self, stream: Any) -> None:
        """Read batches from ``stream`` (the feeders agent's)."""
        self._stream, self._batches = stream, aiter(stream)

    async def next_batch(self) -> FetchedBatch | None:
        assert self._batches is not None, "follow(stream) first"
        return await anext(self._batches, None)

    def ready_batch(self) -> FetchedBatch | None:
        return self.app.ready_batch(self._stream)

    async def usable(self, generation: int) -> bool:
        return await self.app.usable(generation)

    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        return cast(Awaitable[Any], await self.out_topics[topic].send(key=key, value=value))

    async def checkpoint(self, key: bytes, partition: int, blob: bytes) -> Awaitable[Any]:
        state = self.state
        state.data[key] = blob
        return cast(Awaitable[Any], await state.changelog_topic.send(key=key, value=blob, partition=partition,
                                                                      callback=changelog_sent(state)))

    def load(self, key: bytes) -> bytes | None:
        return cast(bytes | None, self.state.data.get(key))

    def acknowledge(self, records: Sequence[Any]) -> None:
        self.app.ack(records)

    async def drained_partitions(self) -> set[tuple[str, int]]:
        return await self.app.drained_partitions(self.drained_topics)


def create_app(settings: Settings | None = None) -> faust.App:
    """Build the worker app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    prefix = settings.topic_prefix
    datadir = os.path.abspath(os.path.join(settings.data_dir, f"{prefix}{settings.app_id}"))
    os.makedirs(datadir, exist_ok=True)
    app = BatchingApp(
        f"{prefix}{settings.app_id}",
        **KafkaConnection.from_settings(settings).faust(),
        store=settings.store,
        datadir=datadir,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=100_000,  # plus every second: checkpoints, not commits, bound the work redone
        broker_commit_interval=1.0,
        web_enabled=False,
        table_standby_replicas=settings.table_standby_replicas,
        stream_wait_empty=False,
        broker_max_poll_records=10_000,
        broker_session_timeout=10.0,  # a crashed worker's partitions move within ~10 s
        broker_heartbeat_interval=3.0,
        stream_buffer_maxsize=50_000,
        consumer_max_fetch_size=1024 * 1024,  # per partition: results of several partitions interleave
        # aiokafka fills one batch per partition and waits for it to be sent before the next: at 16 kB (the
        # default) a plan's setpoints wait a broker round trip per 30 records; 512 kB stays below message.max.bytes
        producer_max_batch_size=512 * 1024,
        producer_max_request_size=max(settings.checkpoint_max_bytes, 2 * settings.max_message_bytes),
    )
    names = {topic_name(t, prefix): t for t in TOPICS}
    worker = FeederWorker(pipeline_config(settings), worker_id=f"{socket.gethostname()}:{os.getpid()}")
    out_topics = {t: app.topic(topic_name(t, prefix), key_type=bytes, value_type=bytes) for t in TOPICS}
    state = app.Table("feeder-state", key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      extra_topic_configs={"max.message.bytes": str(settings.checkpoint_max_bytes)})
    inputs = app.topic(*(topic_name(t, prefix) for t in FEEDER_INPUTS), key_type=bytes, value_type=bytes)
    weather = app.topic(topic_name(WEATHER, prefix), key_type=bytes, value_type=bytes)
    drained_topics = {topic_name(t, prefix): t for t in (METER_READINGS, CHARGER_REGISTRY, CHARGER_TELEMETRY)}
    port = FaustPort(app, out_topics, state, drained_topics)
    failpoints = Failpoints(settings.failpoint, datadir)
    loop: WorkerLoop[Any] = WorkerLoop(
        worker, port, names, checkpoint_seconds=settings.checkpoint_seconds,
        max_meter_records=settings.intake_max_meter_records, max_held_telemetry=settings.max_held_telemetry,
        quiet_seconds=settings.align_idle_seconds, failpoint=failpoints.reach,
        ordered_dead_letters=settings.ordered_dead_letters)
    batches = app.batch_topic(inputs, bulk_topics={topic_name(METER_READINGS, prefix)},
                              bulk_wanted=loop.bulk_wanted, control_wanted=loop.control_wanted)

    @app.agent(batches, name="feeders")
    async def feeders(stream: Any) -> None:
        port.follow(stream)
        await loop.run()

    @app.agent(weather, name="weather")
    async def weather_agent(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.5):  # once per fleet: counts and dead letters
            await loop.apply_weather([worker.raw(WEATHER, e.message) for e in events])

    async def observe_weather(records: list[Any]) -> None:
        worker.observe_weather(RawMessage(WEATHER, r.partition, r.offset, r.key, r.value, r.timestamp)
                               for r in records)

    @app.task
    async def weather_everywhere() -> None:  # every worker applies all weather to the feeders it holds
        await follow_topic(settings, topic_name(WEATHER, prefix), observe_weather)

    async def observe_registry(records: list[Any]) -> None:
        worker.observe_registry(RawMessage(CHARGER_REGISTRY, r.partition, r.offset, r.key, r.value, r.timestamp)
                                for r in records)

    @app.task
    async def registry_everywhere() -> None:  # one charger, one controller: every worker sees every registration
        await follow_topic(settings, topic_name(CHARGER_REGISTRY, prefix), observe_registry)

    stats_path = os.path.join(datadir, f"stats-{os.getpid()}.json")

    ticked = [time.monotonic()]

    @app.timer(1.0)
    async def tick() -> None:
        await loop.tick()
        ticked[0] = time.monotonic()

    @app.timer(1.0)
    async def stats() -> None:  # apart from the tick, so a stuck tick shows (tick_lag_s) instead of freezing them
        worker.write_stats(stats_path, gc_pause_ms_max=[round(x, 1) for x in GC_PAUSES.max_ms],
                           tick_lag_s=round(time.monotonic() - ticked[0], 1))

    @app.task
    async def stack_dumps() -> None:
        install_stack_dumps(asyncio.get_running_loop())

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        await loop.revoked()

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        loop.assigned()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    attach_monitoring(app, settings, worker, out_topics)
    app.evgrid_worker = worker  # type: ignore[attr-defined]
    return app
