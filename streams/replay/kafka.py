"""confluent-kafka plumbing of record/replay: producer tuning and replay-topic creation.

Connection settings come from :func:`streams.kafka_io.client_config`.

Replayed history carries old event timestamps, and Kafka's time-based retention looks at record
timestamps: a 2019 record in a 7-day topic is deleted at the next retention check. Topics created here
for a replay therefore get ``retention.ms = -1`` (delete the whole prefix namespace when done).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from streams.contracts.topics import TOPICS
from streams.kafka_io import client_config
from streams.settings import Settings

__all__ = ["PRODUCER_TUNING", "client_config", "ensure_replay_topics"]

PRODUCER_TUNING: dict[str, Any] = {
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
"""Producer settings for throughput (measured in ``benchmarks/bench_replay.py``)."""


def ensure_replay_topics(settings: Settings, prefix: str, topics: Iterable[str],
                         timeout: float = 30.0) -> dict[str, str]:
    """Create the missing ``prefix + topic`` topics; ``{name: 'created' | 'exists'}``.

    Partitions, replication and cleanup policy follow the topic table (unknown topics: EVGRID_PARTITIONS,
    ``delete``); retention is unlimited (see the module doc).
    """
    admin = AdminClient({**client_config(settings), "log_level": 4})
    existing = set(admin.list_topics(timeout=timeout).topics)
    result: dict[str, str] = {}
    new = []
    for topic in sorted(set(topics)):
        name = f"{prefix}{topic}"
        if name in existing:
            result[name] = "exists"
            continue
        spec = TOPICS.get(topic)
        partitions = settings.partitions if spec is None or spec.feeder_keyed else 1
        config = {"cleanup.policy": spec.cleanup_policy if spec else "delete", "retention.ms": "-1",
                  "message.timestamp.type": "CreateTime"}
        new.append(NewTopic(name, num_partitions=partitions, replication_factor=settings.replication_factor,
                            config=config))
    for name, future in (admin.create_topics(new, request_timeout=timeout) if new else {}).items():
        try:
            future.result()
            result[name] = "created"
        except Exception as exc:  # a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            result[name] = "exists"
    return result
