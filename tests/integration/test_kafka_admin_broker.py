"""On the real broker: ``topics create``, replay and the backtest create topics with the same configuration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import ConfigResource

from streams.backtest.orchestrator import _create_namespace
from streams.contracts.topics import TOPICS, WEATHER
from streams.kafka.admin import admin_client, create_topics, delete_topics
from streams.replay.replayer import replay_records
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHECKED = ("cleanup.policy", "retention.ms", "max.message.bytes", "message.timestamp.type")


@pytest.fixture
def namespaces(kafka_bootstrap: str) -> Iterator[dict[str, Settings]]:
    tag = uuid.uuid4().hex[:8]
    base = Settings(bootstrap_servers=kafka_bootstrap, partitions=3, topic_retention_ms=-1)
    spaces = {k: base.model_copy(update={"topic_prefix": f"it-admin-{k}-{tag}."}) for k in ("create", "replay", "bt")}
    yield spaces
    for s in spaces.values():
        delete_topics(s)


def _described(settings: Settings, topics: list[str]) -> dict[str, tuple[int, dict[str, str]]]:
    admin = admin_client(settings)
    meta = admin.list_topics(timeout=30).topics
    resources = [ConfigResource(ConfigResource.Type.TOPIC, settings.topic_prefix + t) for t in topics]
    out = {}
    for resource, future in admin.describe_configs(resources).items():
        entries = future.result(30)
        topic = resource.name[len(settings.topic_prefix):]
        out[topic] = (len(meta[resource.name].partitions), {k: entries[k].value for k in CHECKED})
    return out


def test_the_three_creators_agree(namespaces: dict[str, Settings]) -> None:
    create_topics(namespaces["create"])
    replay = namespaces["replay"]
    record = {"topic": WEATHER, "key": b"S1", "value": b"x", "timestamp": 1_550_000_000_000, "partition": -1,
              "headers": []}
    assert replay_records([record], replay).records == 1  # the replayer creates the topic it writes first
    _create_namespace(namespaces["bt"])

    created = _described(namespaces["create"], list(TOPICS))
    assert _described(replay, [WEATHER])[WEATHER] == created[WEATHER]
    backtest = _described(namespaces["bt"], list(TOPICS))
    for name, spec in TOPICS.items():
        partitions, config = created[name]
        assert partitions == (3 if spec.feeder_keyed else 1) and config["retention.ms"] == "-1"
        assert config["cleanup.policy"] == spec.cleanup_policy
        assert backtest[name] == (partitions, config | {"cleanup.policy": "delete"})  # the backtest never compacts
