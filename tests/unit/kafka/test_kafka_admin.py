"""One way to create topics: ``topics create``, replay and the backtest get the same partitions and configuration."""

from __future__ import annotations

from dataclasses import replace

from streams.contracts.topics import SETPOINTS, TOPICS, WEATHER
from streams.kafka.admin import TopicLayout, replay_layout
from streams.settings import Settings


def test_the_layout_renders_the_topic_table() -> None:
    layout = TopicLayout.from_settings(Settings(topic_prefix="ns.", partitions=6, replication_factor=3,
                                                max_message_bytes=4_000_000))
    for name, spec in TOPICS.items():
        config = layout.config_of(name)
        assert config == {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(spec.retention_ms),
                          "max.message.bytes": "8000000", "message.timestamp.type": "CreateTime"}
        topic = layout.new_topic(name)
        assert (topic.topic, topic.num_partitions, topic.replication_factor) == (
            "ns." + name, 6 if spec.feeder_keyed else 1, 3)
    assert layout.config_of(SETPOINTS)["cleanup.policy"] == "compact" and layout.partitions_of(WEATHER) == 1


def test_small_records_still_get_the_broker_default_limit() -> None:
    assert TopicLayout(max_message_bytes=1_000).config_of(WEATHER)["max.message.bytes"] == "1048588"


def test_replay_creates_what_topics_create_would_with_retention_minus_one() -> None:
    s = Settings(partitions=5, max_message_bytes=2_000_000)
    created = TopicLayout.from_settings(s.model_copy(update={"topic_prefix": "r.", "topic_retention_ms": -1}))
    replayed = replay_layout(s, "r.")
    assert replayed == created
    for name in TOPICS:
        assert replayed.config_of(name) == created.config_of(name)
        assert replayed.config_of(name)["retention.ms"] == "-1"


def test_a_replayed_topic_unknown_to_the_table_is_partitioned_and_kept() -> None:
    layout = replay_layout(Settings(partitions=3), "r.")
    assert layout.partitions_of("legacy.topic") == 3
    assert layout.config_of("legacy.topic") == {"cleanup.policy": "delete", "retention.ms": "-1",
                                                "max.message.bytes": "2097152", "message.timestamp.type": "CreateTime"}


def test_the_backtest_differs_only_in_never_compacting() -> None:
    s = Settings(topic_prefix="bt.", topic_retention_ms=-1)
    live, backtest = TopicLayout.from_settings(s), replace(TopicLayout.from_settings(s), compaction=False)
    for name, spec in TOPICS.items():
        expected = live.config_of(name) | {"cleanup.policy": "delete"}
        assert backtest.config_of(name) == expected
        assert (backtest.config_of(name) == live.config_of(name)) == (spec.cleanup_policy == "delete")
