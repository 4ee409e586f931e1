"""The gateway's Kafka edge: registrations and setpoints in, telemetry, dead letters and metrics out.

* **In.** A reader thread *assigns itself every partition* of ``evgrid.charger.registry`` and ``evgrid.setpoints``
  from the beginning (no consumer group): each gateway holds every registration and the newest setpoint of
  every charger, so a station may connect to any gateway and reconnect to another one (see docs/ocpp.md).
  The setpoint topic is compacted by charger, so this is one record per charger plus the recent changes.
  A tombstone (null value) on the setpoint topic revokes the charger's setpoint (ClearChargingProfile).
  The gateway opens its port only after both topics were read up to the end offsets seen at start.
* **Out.** ``ChargerTelemetry`` keyed by feeder with the station's event time as the Kafka timestamp, dead letters
  keyed by their source (``ocpp:<station>``), and an InfluxDB point ``ocpp_profile`` per station answer
  (tags gateway, status, action, version; fields clipped, discharge, latency_ms, setpoint_kw) plus an
  ``ocpp_gateway`` point of the gateway's counters every ``stats_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from streams.contracts.codec import DecodeError, default_codec
from streams.contracts.models import ChargerRegistration, ChargerSetpoint, ChargerTelemetry, DeadLetter, decode_record
from streams.contracts.models import encode_record as encode
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, DEADLETTER, SETPOINTS, topic_name
from streams.kafka.clients import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
    client_config,
    make_producer,
)
from streams.ocpp.gateway import Gateway, ProfileOutcome
from streams.settings import Settings
from streams.sinks.influx import InfluxSink
from streams.sinks.metrics import make_point

__all__ = ["ControlFeed", "KafkaOutputs", "gateway_point"]

log = logging.getLogger(__name__)


class KafkaOutputs:
    """:class:`~streams.ocpp.gateway.Outputs` to Kafka (and InfluxDB when a sink is given)."""

    def __init__(self, settings: Settings, name: str, sink: InfluxSink | None = None) -> None:
        self.codec = default_codec()
        self.producer = make_producer(settings, linger_ms=5)
        self.telemetry_topic = topic_name(CHARGER_TELEMETRY, settings.topic_prefix)
        self.deadletter_topic = topic_name(DEADLETTER, settings.topic_prefix)
        self.name = name
        self.sink = sink
        self.failed = 0

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            log.error("delivery failed: %s", err)

    def _produce(self, topic: str, key: bytes, value: bytes, ts: int) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, timestamp=ts, on_delivery=self._on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def telemetry(self, record: ChargerTelemetry) -> None:
        self._produce(self.telemetry_topic, record.feeder_id.encode(), encode(self.codec, record), record.timestamp)

    def dead_letter(self, record: DeadLetter) -> None:
        self._produce(self.deadletter_topic, record.source_topic.encode(), encode(self.codec, record),
                      record.rejected_at)

    def outcome(self, o: ProfileOutcome) -> None:
        if self.sink is not None:
            self.sink.write([make_point(
                "ocpp_profile", o.at_ms, {"gateway": self.name, "status": o.status, "action": o.action,
                                          "version": o.version, "feeder": o.feeder_id},
                {"clipped": int(o.clipped), "discharge": int(o.discharge), "latency_ms": o.latency_ms,
                 "setpoint_kw": o.setpoint_kw, "station": o.station_id})])

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout: float = 10.0) -> int:
        return int(self.producer.flush(timeout))


def gateway_point(gw: Gateway, now_ms: int) -> Any:
    """The ``ocpp_gateway`` counters point."""
    s = gw.stats
    return make_point("ocpp_gateway", now_ms, {"gateway": gw.config.name}, {
        "connected": len(gw.connected), "connections": s.connections, "refused": sum(s.refused.values()),
        "telemetry": s.telemetry, "dead_letters": s.dead_letters, "call_errors": sum(s.call_errors.values()),
        "accepted": s.answers.get("Accepted", 0), "rejected": s.answers.get("Rejected", 0),
        "clipped": s.clipped, "messages": sum(s.messages.values())})


class ControlFeed:
    """Reader thread: every partition of the registry and setpoint topics into the gateway's event loop."""

    def __init__(self, settings: Settings, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.gateway = gateway
        self.loop = loop
        self.codec = default_codec()
        self.registry_topic = topic_name(CHARGER_REGISTRY, settings.topic_prefix)
        self.setpoint_topic = topic_name(SETPOINTS, settings.topic_prefix)
        self.caught_up = asyncio.Event()
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ocpp-control-feed", daemon=True)
        self._consumer = Consumer(client_config(settings) | {
            "group.id": f"{settings.app_id}-ocpp-unused", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 20})  # a setpoint is latency-critical

    def start(self) -> None:
        parts: list[TopicPartition] = []
        self._ends: dict[tuple[str, int], int] = {}
        meta = self._consumer.list_topics(timeout=30)
        for topic in (self.registry_topic, self.setpoint_topic):
            tmeta = meta.topics.get(topic)
            if tmeta is None or tmeta.error is not None:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic} does not exist"))
            for p in tmeta.partitions:
                lo, hi = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                if hi > lo:
                    self._ends[(topic, p)] = hi
                parts.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        self._consumer.assign(parts)
        if not self._ends:
            self.caught_up.set()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        pending = dict(self._ends)
        while not self._stop.is_set():
            try:
                msgs = self._consumer.consume(1000, 0.2)
            except KafkaException as exc:
                log.error("control feed: %s", exc)
                continue
            for msg in msgs:
                if msg.error() is not None:
                    log.warning("control feed: %s", msg.error())
                    continue
                self._apply(msg.topic() or "", msg.key(), msg.value())
                tp = (msg.topic(), msg.partition())
                if tp in pending and (msg.offset() or 0) + 1 >= pending[tp]:
                    del pending[tp]
            if pending:
                for (topic, p), end in list(pending.items()):
                    pos = self._consumer.position([TopicPartition(topic, p)])[0].offset
                    if pos >= end:  # the end was a transaction marker or compacted away
                        del pending[(topic, p)]
            if not pending and not self.caught_up.is_set():
                self._call(self.caught_up.set)

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if topic == self.setpoint_topic and value is None:
            if key:
                self._call(self.gateway.apply_setpoint, key.decode(errors="replace"), None)
            return
        if value is None:
            return
        try:
            record = decode_record(self.codec, value)
        except DecodeError as exc:  # the worker dead-letters bad inputs; the gateway only skips them
            self.skipped += 1
            log.warning("control feed: skipped a record of %s: %s", topic, exc)
            return
        if isinstance(record, ChargerRegistration) and topic == self.registry_topic:
            self._call(self.gateway.apply_registration, record)
        elif isinstance(record, ChargerSetpoint) and topic == self.setpoint_topic:
            self._call(self.gateway.apply_setpoint, record.charger_id, record)
        else:
            self.skipped += 1
