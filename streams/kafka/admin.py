"""Topic namespaces: create evgrid's topics from the topic table, one way for every caller, and delete them.

``evgrid topics create``, replay (a namespace of history: retention -1) and the backtest (retention -1, nothing
compacted) all create topics through :func:`ensure_topics`, so a topic gets the same partitions and
configuration whoever creates it; only the :class:`TopicLayout` differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from streams.contracts.topics import TOPICS
from streams.kafka.clients import client_config
from streams.settings import Settings

__all__ = ["TopicLayout", "admin_client", "create_topics", "delete_topics", "ensure_topics", "live_brokers",
           "replay_layout"]

MIN_MAX_MESSAGE_BYTES = 1_048_588
"""The broker's default ``max.message.bytes``: a topic never accepts less."""


@dataclass(frozen=True)
class TopicLayout:
    """How the topics of one namespace are created (built from the settings at the edge)."""

    prefix: str = ""
    """EVGRID_TOPIC_PREFIX: the namespace (prepended to every topic name)."""
    partitions: int = 4
    """EVGRID_PARTITIONS: partitions of the feeder-keyed topics (the others have 1)."""
    replication_factor: int = 1
    """EVGRID_REPLICATION_FACTOR."""
    retention_ms: int | None = None
    """EVGRID_TOPIC_RETENTION_MS: overrides the table's retention of every topic (-1: keep forever)."""
    max_message_bytes: int = 1_048_576
    """EVGRID_MAX_MESSAGE_BYTES: the largest record; topics accept twice that (at least the broker default)."""
    compaction: bool = True
    """False: compacted topics are created with ``delete`` cleanup (a backtest keeps every setpoint it made)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicLayout:
        return cls(prefix=settings.topic_prefix, partitions=settings.partitions,
                   replication_factor=settings.replication_factor, retention_ms=settings.topic_retention_ms,
                   max_message_bytes=settings.max_message_bytes)

    def partitions_of(self, topic: str) -> int:
        """Partitions of ``topic`` (a table name; unknown names are partitioned like the feeder-keyed topics)."""
        spec = TOPICS.get(topic)
        return self.partitions if spec is None or spec.feeder_keyed else 1

    def config_of(self, topic: str) -> dict[str, str]:
        """Broker configuration of ``topic`` (a table name; unknown names: ``delete``, retention of this layout)."""
        spec = TOPICS.get(topic)
        config = spec.config() if spec is not None else {"cleanup.policy": "delete", "retention.ms": "-1"}
        if not self.compaction:
            config["cleanup.policy"] = "delete"
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        config["max.message.bytes"] = str(max(self.max_message_bytes * 2, MIN_MAX_MESSAGE_BYTES))
        config["message.timestamp.type"] = "CreateTime"  # record timestamps are event time, never the broker's clock
        return config

    def new_topic(self, topic: str) -> NewTopic:
        return NewTopic(self.prefix + topic, num_partitions=self.partitions_of(topic),
                        replication_factor=self.replication_factor, config=self.config_of(topic))


def admin_client(settings: Settings, properties: dict[str, Any] | None = None) -> AdminClient:
    """An admin client with the settings' connection (plus client ``properties``, e.g. ``{"log_level": 4}``)."""
    return AdminClient(client_config(settings) | (properties or {}))


def live_brokers(settings: Settings, timeout: float, logger: Any = None) -> int:
    """How many brokers a Metadata answer lists, asked within ``timeout`` seconds (quietly: no retry log lines).

    Raises ``KafkaException`` when no broker answers in time.
    """
    conf = client_config(settings) | {"socket.connection.setup.timeout.ms": int(timeout * 1000),
                                      "reconnect.backoff.max.ms": 1000}
    admin = AdminClient(conf, logger=logger) if logger is not None else AdminClient(conf)
    return len(admin.list_topics(timeout=timeout).brokers)


def ensure_topics(settings: Settings, layout: TopicLayout, topics: Iterable[str] | None = None,
                  timeout: float = 30.0) -> dict[str, str]:
    """Create the missing topics (table names; default: the whole table) under ``layout``.

    Returns ``{name: 'created' | 'exists'}`` (a concurrent creator's topic counts as existing).
    """
    admin = admin_client(settings, {"log_level": 4})
    existing = set(admin.list_topics(timeout=timeout).topics)
    result: dict[str, str] = {}
    new = []
    for topic in (TOPICS if topics is None else sorted(set(topics))):
        name = layout.prefix + topic
        if name in existing:
            result[name] = "exists"
        else:
            new.append(layout.new_topic(topic))
    for name, future in (admin.create_topics(new, request_timeout=timeout) if new else {}).items():
        try:
            future.result()
            result[name] = "created"
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            result[name] = "exists"
    return result


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create every topic of the table under ``settings.topic_prefix``; ``{name: 'created'|'exists'}``."""
    return ensure_topics(settings, TopicLayout.from_settings(settings), timeout=timeout)


def replay_layout(settings: Settings, prefix: str) -> TopicLayout:
    """The layout of a namespace replayed history goes to: retention -1 (Kafka ages records by event time)."""
    return replace(TopicLayout.from_settings(settings), prefix=prefix, retention_ms=-1)


def delete_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Delete every topic under ``settings.topic_prefix`` (only when a prefix is set: never live topics)."""
    if not settings.topic_prefix:
        raise ValueError("refusing to delete un-prefixed (live) topics")
    admin = admin_client(settings)
    names = [n for n in admin.list_topics(timeout=timeout).topics if n.startswith(settings.topic_prefix)]
    for future in admin.delete_topics(names, request_timeout=timeout).values() if names else []:
        future.result()
    return names
