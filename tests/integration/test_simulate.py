"""Simulator → real Kafka → consume back: every message arrives once, in order, with the right bytes."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from streams.cli import app
from streams.contracts.codec import DecodeError, default_codec
from streams.contracts.models import decode_record
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, TOPICS, WEATHER
from streams.kafka.clients import client_config, consume_all
from streams.settings import Settings
from streams.simulate import DECODE_DETECTABLE, KIND_REASON, SimConfig, simulate
from streams.simulate.bad import HEADER_INJECTED, HEADER_KIND
from streams.simulate.produce import TopicsMissing, run_simulation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

INPUTS = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, WEATHER)


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[Settings]:
    """Settings with a unique topic prefix whose input topics exist (deleted afterwards)."""
    prefix = f"t-sim-{uuid.uuid4().hex[:10]}."
    s = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    admin = AdminClient(client_config(s))
    new = [NewTopic(prefix + name, num_partitions=4 if TOPICS[name].feeder_keyed else 1, replication_factor=1,
                    config=TOPICS[name].config()) for name in INPUTS]
    for future in admin.create_topics(new).values():
        future.result(30)
    yield s
    for future in admin.delete_topics([t.topic for t in new]).values():
        with contextlib.suppress(Exception):  # best-effort cleanup
            future.result(30)


def test_simulated_stream_round_trips_through_kafka(settings: Settings) -> None:
    cfg = SimConfig(feeders=3, homes=6, chargers=4, hours=6, seed=42, bad_rate=0.03)
    result = run_simulation(settings, cfg, progress=False)
    assert result.delivery.failed == 0 and result.delivery.delivered == result.summary.total
    assert result.summary.bad_total > 0

    msgs = consume_all(settings, [settings.topic_prefix + t for t in INPUTS], timeout=120)  # to the end
    assert len(msgs) == result.summary.total
    per_topic = Counter(m.topic().removeprefix(settings.topic_prefix) for m in msgs)
    assert per_topic == result.summary.per_topic

    # exactly the deterministic stream, byte for byte (no loss, no duplicates)
    def ident(topic: str, key: bytes, value: bytes, ts: int, headers: list | tuple | None) -> tuple:
        return topic, key, value, ts, tuple(headers or ())

    expected = Counter(ident(m.topic, m.key, m.value, m.timestamp, m.headers) for m in simulate(cfg))
    got = Counter(ident(m.topic().removeprefix(settings.topic_prefix), m.key(), m.value(), m.timestamp()[1],
                        m.headers()) for m in msgs)
    assert got == expected

    codec = default_codec()
    last_ts: dict[tuple[str, int], int] = defaultdict(int)
    detected = Counter()
    for m in msgs:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_CREATE_TIME
        assert ts >= last_ts[(m.topic(), m.partition())]  # event-time order within each partition
        last_ts[(m.topic(), m.partition())] = ts
        record_type = TOPICS[m.topic().removeprefix(settings.topic_prefix)].record
        headers = dict(m.headers() or [])
        if HEADER_INJECTED not in headers:
            record = decode_record(codec, m.value(), record_type)
            key_field = "station_id" if record_type == "WeatherObservation" else "feeder_id"
            assert m.key() == getattr(record, key_field).encode()
            assert getattr(record, "timestamp", ts) == ts
            continue
        reason, bad_kind = headers[HEADER_INJECTED].decode(), headers[HEADER_KIND].decode()
        assert KIND_REASON[bad_kind] == reason
        if bad_kind in DECODE_DETECTABLE:
            with pytest.raises(DecodeError) as err:
                decode_record(codec, m.value(), record_type)
            assert err.value.code == reason
            detected[reason] += 1
    assert sum(detected.values()) > 0
    assert sum(result.summary.bad_per_reason.values()) == sum(
        1 for m in msgs if HEADER_INJECTED in dict(m.headers() or []))


def test_cli_simulate_produces_to_prefixed_topics(settings: Settings) -> None:
    env = {"EVGRID_BOOTSTRAP_SERVERS": settings.bootstrap_servers, "EVGRID_TOPIC_PREFIX": settings.topic_prefix}
    res = CliRunner().invoke(app, ["simulate", "--feeders", "2", "--homes", "3", "--chargers", "2", "--hours", "2",
                                   "--seed", "5", "--bad-rate", "0.02", "--quiet"], env=env)
    assert res.exit_code == 0, res.output
    cfg = SimConfig(feeders=2, homes=3, chargers=2, hours=2, seed=5, bad_rate=0.02,
                    latitude=settings.sim_latitude, longitude=settings.sim_longitude,
                    timezone=settings.local_timezone)
    n = sum(1 for _ in simulate(cfg))
    assert re.search(rf"\b{n} messages", res.output)
    msgs = consume_all(settings, [settings.topic_prefix + t for t in INPUTS], timeout=60)
    assert len(msgs) == n


def test_missing_topics_fail_fast(kafka_bootstrap: str) -> None:
    s = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t-sim-missing-{uuid.uuid4().hex[:8]}.")
    with pytest.raises(TopicsMissing, match="evgrid topics create"):
        run_simulation(s, SimConfig(feeders=1, homes=1, chargers=1, hours=1), progress=False)
