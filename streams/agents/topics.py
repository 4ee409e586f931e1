"""Create evgrid's topics with explicit partitions, cleanup policy and retention (idempotent)."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from streams.contracts.topics import TOPICS, topic_name
from streams.kafka_io import client_config
from streams.settings import Settings

__all__ = ["admin_client", "create_topics", "delete_topics"]


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create every topic of the table under ``settings.topic_prefix``; ``{name: 'created'|'exists'}``."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    result: dict[str, str] = {}
    new = []
    for spec in TOPICS.values():
        name = topic_name(spec.name, settings.topic_prefix)
        if name in existing:
            result[name] = "exists"
            continue
        partitions = settings.partitions if spec.feeder_keyed else 1
        config = spec.config()
        if settings.topic_retention_ms is not None:
            config["retention.ms"] = str(settings.topic_retention_ms)
        config["max.message.bytes"] = str(max(settings.max_message_bytes * 2, 1_048_588))
        new.append(NewTopic(name, num_partitions=partitions, replication_factor=settings.replication_factor,
                            config=config))
    futures = admin.create_topics(new, request_timeout=timeout) if new else {}
    for name, future in futures.items():
        try:
            future.result()
            result[name] = "created"
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            result[name] = "exists"
    return result


def delete_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Delete every topic under ``settings.topic_prefix`` (only when a prefix is set: never live topics)."""
    if not settings.topic_prefix:
        raise ValueError("refusing to delete un-prefixed (live) topics")
    admin = admin_client(settings)
    names = [n for n in admin.list_topics(timeout=timeout).topics if n.startswith(settings.topic_prefix)]
    for future in admin.delete_topics(names, request_timeout=timeout).values() if names else []:
        future.result()
    return names
