"""Weather reaches every worker: two workers share the feeder partitions, the weather topic has one partition.

Each worker must apply every valid observation to the feeders it holds (group-less broadcast reader), while the
consumer group counts and dead-letters each weather message exactly once across the fleet.
"""

from __future__ import annotations

import time

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import DeadLetter, WeatherObservation, decode_record, encode_record
from streams.contracts.topics import DEADLETTER, TOPICS, WEATHER
from streams.kafka.clients import consume_all, make_producer
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_every_worker_applies_all_weather_and_bad_weather_is_dead_lettered_once(
    topic_namespace: Settings, start_worker
) -> None:
    s = topic_namespace
    assert not TOPICS[WEATHER].feeder_keyed  # one partition: one worker owns it in the group
    codec = default_codec()
    now = int(time.time() // 3600 * 3600 * 1000)
    good = [WeatherObservation(station_id="S1", timestamp=now - h * 3_600_000, air_temperature_c=5.0 + h,
                               ghi_wm2=100.0, wind_speed_ms=2.0, cloud_cover_pct=40.0) for h in range(12)]

    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix}
    workers = [start_worker(env, name=f"w{i}") for i in range(2)]
    for w in workers:
        w.wait_for(lambda st: "accepted" in st, timeout=90, what="worker up")

    producer = make_producer(s)
    for obs in good:
        producer.produce(s.topic_prefix + WEATHER, key=b"S1", value=encode_record(codec, obs), timestamp=obs.timestamp)
    producer.produce(s.topic_prefix + WEATHER, key=b"S1", value=b"\xc3\x01garbage", timestamp=now)
    producer.flush(30)

    for w in workers:  # both, although only one owns the weather partition in the group
        w.wait_for(lambda st: st.get("weather_observed", 0) >= len(good), timeout=120, what="all weather observed")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        accepted = sum(w.stats()["accepted"].get(WEATHER, 0) for w in workers)
        rejected = sum(n for w in workers for k, n in w.stats()["rejected"].items() if k.startswith(WEATHER))
        if accepted == len(good) and rejected == 1:
            break
        time.sleep(1)
    assert (accepted, rejected) == (len(good), 1), "counted once across the fleet"
    assert all(w.stats()["weather_observed"] == len(good) for w in workers), "the bad one is applied nowhere"

    letters = [decode_record(codec, m.value()) for m in consume_all(s, [s.topic_prefix + DEADLETTER], timeout=20)]
    weather_letters = [d for d in letters if isinstance(d, DeadLetter) and d.source_topic == WEATHER]
    assert len(weather_letters) == 1, "dead-lettered by one worker, not by each"
