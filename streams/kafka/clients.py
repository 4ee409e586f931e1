"""confluent-kafka clients: the producers and consumers of the simulator, replay, backtest, gateway and tests.

Connection and security come from :class:`~streams.kafka.config.KafkaConnection` (built from the settings).
Producers are idempotent (acks=all) with batching and compression from :class:`~streams.settings.Settings`.
Keyword overrides are librdkafka properties with ``_`` for ``.`` (``linger_ms=5`` → ``linger.ms``). The
confluent-kafka names other modules need (errors, ``TopicPartition`` ...) are imported from here.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.kafka.config import KafkaConnection
from streams.settings import Settings

__all__ = [
    "OFFSET_BEGINNING",
    "REPLAY_PRODUCER_TUNING",
    "Consumer",
    "DeliveryStats",
    "KafkaError",
    "KafkaException",
    "KafkaRecord",
    "Message",
    "Producer",
    "TopicPartition",
    "client_config",
    "consume_all",
    "make_consumer",
    "make_producer",
    "new_consumer",
    "new_producer",
    "produce_one",
    "produce_records",
]

REPLAY_PRODUCER_TUNING: dict[str, Any] = {
    "linger.ms": 25,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "enable.idempotence": True,  # keeps per-partition order across retries
    "partitioner": "murmur2_random",  # same key → partition mapping as the Java/aiokafka clients
    "message.max.bytes": 10_000_000,
}
"""Producer settings of record/replay, for throughput (measured in ``benchmarks/bench_replay.py``)."""

KafkaRecord = tuple[bytes | str | None, bytes | None, int | None, Sequence[tuple[str, bytes]] | None]
"""``(key, value, timestamp ms or None, headers or None)``."""


def _overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("_", "."): v for k, v in overrides.items()}


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings common to producers, consumers and admin clients (bootstrap and security)."""
    return KafkaConnection.from_settings(settings).librdkafka()


def new_producer(settings: Settings, properties: dict[str, Any]) -> Producer:
    """A producer with the settings' connection and the librdkafka ``properties`` given (nothing else)."""
    return Producer(client_config(settings) | properties)


def new_consumer(settings: Settings, properties: dict[str, Any]) -> Consumer:
    """A consumer with the settings' connection and the librdkafka ``properties`` given (``group.id`` ...)."""
    return Consumer(client_config(settings) | properties)


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """An idempotent, throughput-tuned producer (acks=all, linger/batch/compression from settings)."""
    conf = client_config(settings) | {
        "enable.idempotence": True,
        "acks": "all",
        # Java/aiokafka-compatible key hashing, so faust tables and every producer agree on partitions.
        "partitioner": "murmur2_random",
        "linger.ms": settings.producer_linger_ms,
        "batch.size": settings.producer_batch_bytes,
        "compression.type": settings.producer_compression,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.max.bytes": max(settings.max_message_bytes, 1_048_576) + 65_536,
    }
    return Producer(conf | _overrides(overrides))


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer in ``group_id`` reading from the earliest offset, committing automatically."""
    conf = client_config(settings) | {
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
    }
    return Consumer(conf | _overrides(overrides))


@dataclass
class DeliveryStats:
    """Delivery accounting of :func:`produce_records`."""

    produced: int = 0
    """Messages handed to the producer."""
    delivered: int = 0
    """Messages the broker acknowledged."""
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Failed deliveries by error name."""

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        """Delivery callback: count the outcome."""
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.errors[err.name()] += 1

    @property
    def pending(self) -> int:
        return self.produced - self.delivered - self.failed


def produce_one(producer: Producer, topic: str, record: KafkaRecord, stats: DeliveryStats) -> None:
    """Produce one record, waiting for queue space when the local queue is full."""
    key, value, ts, headers = record
    kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": stats.on_delivery}
    if ts is not None:
        kwargs["timestamp"] = ts
    if headers:
        kwargs["headers"] = list(headers)
    while True:
        try:
            producer.produce(topic, **kwargs)
            break
        except BufferError:
            producer.poll(0.05)
    stats.produced += 1


def produce_records(producer: Producer, topic: str, records: Iterable[KafkaRecord], *,
                    stats: DeliveryStats | None = None, flush_timeout: float | None = 60.0) -> DeliveryStats:
    """Produce ``(key, value, timestamp_ms, headers)`` records to ``topic`` and count deliveries.

    The Kafka record timestamp is the given event time. With ``flush_timeout`` (seconds) the call
    waits for every acknowledgement; ``None`` returns without flushing (poll or flush later).
    """
    stats = stats or DeliveryStats()
    for i, record in enumerate(records):
        produce_one(producer, topic, record, stats)
        if i % 1000 == 0:
            producer.poll(0)
    if flush_timeout is not None:
        remaining = producer.flush(flush_timeout)
        if remaining:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{remaining} messages not delivered"))
    return stats


def consume_all(settings: Settings, topics: Sequence[str], timeout: float = 30.0, *,
                expected: int | None = None, idle: float = 3.0) -> list[Message]:
    """Every message currently in ``topics`` (from the beginning), for tests and tools.

    Reads with a throw-away consumer group until every assigned partition reached its end and
    nothing arrived for ``idle`` seconds, ``expected`` messages were read, or ``timeout`` seconds passed.
    """
    # a throw-away group inside the settings' namespace (a sandboxed principal may only use groups there)
    consumer = make_consumer(settings, f"{settings.topic_prefix}evgrid-consume-all-{uuid.uuid4().hex}",
                             enable_auto_commit=False, enable_partition_eof=True)
    assigned: set[tuple[str | None, int | None]] = set()
    at_end: set[tuple[str | None, int | None]] = set()

    def on_assign(c: Consumer, parts: list[TopicPartition]) -> None:
        assigned.update((p.topic, p.partition) for p in parts)

    consumer.subscribe(list(topics), on_assign=on_assign)
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(out) >= expected:
                break
            if assigned and at_end >= assigned and time.monotonic() - last_new >= idle:
                break
            for msg in consumer.consume(10_000, 0.2):
                err = msg.error()
                if err is None:
                    out.append(msg)
                    at_end.discard((msg.topic(), msg.partition()))
                    last_new = time.monotonic()
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add((msg.topic(), msg.partition()))
                else:
                    raise KafkaException(err)
    finally:
        consumer.close()
    return out
