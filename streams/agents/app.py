"""The faust application: one agent per input group, tables for feeder state, output topics.

Everything that decides anything lives in :mod:`streams.pipeline`; this module moves bytes between Kafka
and it. Processing is at-least-once with idempotent effects: each feeder's state records the last input
offset it applied per partition (events at or below it are skipped after a restart) and is written to
a changelog before the input offsets are committed (faust flushes the producer before committing).

Feeder inputs arrive in whole fetched batches (:mod:`streams.agents.batching`) and are applied control
records first (:class:`~streams.pipeline.intake.Intake`); the agent acknowledges records only once the states
they changed are checkpointed (each partition's feeders every ``EVGRID_CHECKPOINT_SECONDS``, partitions in
turn, and all before partitions move), so a commit never covers an input whose effect is not in the changelog.
Weather is not keyed by feeder: the group's weather agent counts and dead-letters it once per fleet, and every
worker also reads all of it (:mod:`streams.agents.broadcast`) and applies it to the feeders it holds.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from typing import Any, cast

import faust

from streams.agents.batching import BatchingApp
from streams.agents.broadcast import follow_topic, kafka_ssl_context
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
from streams.pipeline.intake import AckSchedule, Intake, QuietPartitions
from streams.pipeline.worker import Emit, FeederWorker
from streams.settings import Settings, pipeline_config

__all__ = ["FEEDER_INPUTS", "SLICE_SECONDS", "create_app", "tune_gc"]

SLICE_SECONDS = 0.1
"""Longest stretch of input applied without yielding: fetches, sends and jumps (a plug-in) are that late at most."""
FEEDER_INPUTS = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, GRID_SIGNALS, INCENTIVE_RESPONSES)


def broker_credentials(settings: Settings) -> Any:
    """faust credentials from the security settings (None for PLAINTEXT; protocol names are case-insensitive)."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
        raise ValueError(f"EVGRID_SECURITY_PROTOCOL={settings.security_protocol!r}: expected PLAINTEXT, SSL, "
                         "SASL_PLAINTEXT or SASL_SSL")
    context = kafka_ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username, password=password, mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


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


def create_app(settings: Settings | None = None) -> faust.App:
    """Build the worker app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    prefix = settings.topic_prefix
    datadir = os.path.abspath(os.path.join(settings.data_dir, f"{prefix}{settings.app_id}"))
    os.makedirs(datadir, exist_ok=True)
    app = BatchingApp(
        f"{prefix}{settings.app_id}",
        broker=[f"kafka://{s.strip()}" for s in settings.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),
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
    )
    names = {topic_name(t, prefix): t for t in TOPICS}
    worker = FeederWorker(pipeline_config(settings), worker_id=f"{socket.gethostname()}:{os.getpid()}")
    worker.drained = set()  # until the consumer says which partitions are read to their end
    out_topics = {t: app.topic(topic_name(t, prefix), key_type=bytes, value_type=bytes) for t in TOPICS}
    state = app.Table("feeder-state", key_type=bytes, value_type=bytes, partitions=settings.partitions)
    inputs = app.topic(*(topic_name(t, prefix) for t in FEEDER_INPUTS), key_type=bytes, value_type=bytes)
    weather = app.topic(topic_name(WEATHER, prefix), key_type=bytes, value_type=bytes)

    sent: list[Any] = []  # delivery futures of what was produced since the last checkpoint
    lock = asyncio.Lock()  # a checkpoint never runs while a chunk's outputs are being sent

    failpoints = Failpoints(settings.failpoint, datadir)

    async def emit(out: Emit) -> None:
        for i, (logical, key, value) in enumerate(out.messages):
            if i == len(out.messages) // 2 and i:
                await failpoints.reach("emit")
            sent.append(await out_topics[logical].send(key=key, value=value))
        for feeder, partition, blob in out.checkpoints:
            state.data[feeder] = blob
            sent.append(await state.changelog_topic.send(key=feeder, value=blob, partition=partition,
                                                         callback=cast(Any, state)._on_changelog_sent))

    async def delivered() -> None:
        """Wait until every output and checkpoint sent so far is written by the broker (acks=all); raises if one
        cannot be: nothing is then acknowledged, and the worker stops (a restart reads the inputs again)."""
        pending = sent[:]
        sent.clear()
        await asyncio.gather(*pending)

    meters, telemetry = topic_name(METER_READINGS, prefix), topic_name(CHARGER_TELEMETRY, prefix)
    registry = topic_name(CHARGER_REGISTRY, prefix)
    intake: Intake[Any] = Intake(  # a plug-in goes ahead of other feeders' work (e.g. all re-planning at a boundary)
        {meters}, settings.intake_max_meter_records, key=lambda m: m.key,
        jumps=lambda m: m.topic == telemetry and worker.connection_change(m.key, m.value))
    batches = app.batch_topic(inputs, bulk_topics={meters}, bulk_wanted=intake.wants_more,
                              control_wanted=lambda: worker.held_total() < settings.max_held_telemetry)
    acks: AckSchedule[Any] = AckSchedule(settings.checkpoint_seconds, time.monotonic(), lambda m: m.partition)

    @app.agent(batches, name="feeders")
    async def feeders(stream: Any) -> None:
        async for batch in stream:
            intake.add(batch.generation, batch.messages)
            while intake:
                while (more := app.ready_batch(stream)) is not None:  # (meters are fetched while intake.wants_more)
                    intake.add(more.generation, more.messages)  # control records jump the meters waiting
                if not await app.usable(intake.generation):
                    intake.clear()  # a rebalance came between: the rest is fetched again
                    break
                async with lock:
                    chunk = intake.take()
                    out = worker.process([worker.raw(names.get(m.topic, m.topic), m) for m in chunk],
                                         state.data.get, checkpoint=False, until=time.perf_counter() + SLICE_SECONDS)
                    intake.put_back(chunk[out.taken:])  # the slice ran out: new arrivals may jump the rest
                    acks.applied(chunk[:out.taken])
                    await emit(out)

    async def checkpoint(partitions: list[int] | None = None) -> None:
        # records that jumped others, and records from the lowest one held for a meter stream on, wait
        waiting, unapplied = intake.ahead_of_waiting(), worker.unapplied()

        def hold(m: Any) -> bool:
            low = unapplied.get((names.get(m.topic, m.topic), m.partition))
            return (low is not None and m.offset >= low) or waiting(m)

        done = acks.checkpointed(time.monotonic(), partitions, hold=hold)
        await delivered()  # the outputs first: a checkpoint in Kafka whose outputs are not would lose them
        await emit(worker.checkpoint(partitions))  # covers exactly ``done``: nothing was applied in between
        if done:
            await failpoints.reach("delivery")
        await delivered()  # then the checkpoint, and only then may the inputs be committed
        app.ack(done)
        if done:
            await failpoints.reach("acked")

    @app.agent(weather, name="weather")
    async def weather_agent(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.5):  # once per fleet: counts and dead letters
            msgs = [worker.raw(WEATHER, e.message) for e in events]
            await emit(worker.process_weather(msgs, observe=False))

    async def observe_weather(records: list[Any]) -> None:
        worker.observe_weather(RawMessage(WEATHER, r.partition, r.offset, r.key, r.value, r.timestamp)
                               for r in records)

    @app.task
    async def weather_everywhere() -> None:  # every worker applies all weather to the feeders it holds
        await follow_topic(settings, topic_name(WEATHER, prefix), observe_weather)

    stats_path = os.path.join(datadir, f"stats-{os.getpid()}.json")

    quiet = QuietPartitions(settings.align_idle_seconds)  # a stream that stopped, not a producer's pause

    @app.timer(1.0)
    async def tick() -> None:
        drained = await app.drained_partitions({meters: METER_READINGS, registry: CHARGER_REGISTRY,
                                                telemetry: CHARGER_TELEMETRY})
        async with lock:
            waiting = {(names.get(t, t), p) for t, p in intake.waiting()}
            worker.drained = quiet.update(drained, waiting, time.monotonic())
            await emit(worker.tick(checkpoint=False))
            if due := acks.due(time.monotonic()):
                await checkpoint(due)
        worker.write_stats(stats_path, gc_pause_ms_max=[round(x, 1) for x in GC_PAUSES.max_ms])

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        async with lock:
            await checkpoint()  # tables are the truth afterwards
            worker.pause()  # no releases while partitions move

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        worker.resume()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    attach_monitoring(app, settings, worker, out_topics)
    app.evgrid_worker = worker  # type: ignore[attr-defined]
    return app
