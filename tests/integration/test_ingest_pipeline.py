"""Simulator → Kafka → faust worker: every valid record accepted, every injected bad one dead-lettered
with the right reason, and nothing the broker acknowledged is lost when it is killed and restarted."""

from __future__ import annotations

from collections import Counter

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import DeadLetter, decode_record
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, DEADLETTER, METER_READINGS, WEATHER
from streams.kafka_io import consume_all, make_producer, produce_records
from streams.settings import Settings
from streams.simulate import SimConfig
from streams.simulate.bad import HEADER_INJECTED
from streams.simulate.produce import run_simulation

pytestmark = [pytest.mark.integration]

INPUTS = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, WEATHER)


def _env(s: Settings) -> dict[str, str]:
    return {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix}


@pytest.mark.timeout(300)
def test_simulated_feeders_through_worker_with_dead_letters(topic_namespace: Settings, start_worker) -> None:
    s = topic_namespace
    now_ms = _now_floor_ms()
    cfg = SimConfig(feeders=2, homes=8, chargers=4, hours=4, seed=7, bad_rate=0.1, start_ms=now_ms - 6 * 3_600_000)
    result = run_simulation(s, cfg, progress=False)
    assert result.delivery.failed == 0
    injected = result.summary.bad_per_reason
    assert len(injected) >= 6, injected
    good = {
        t: n - sum(c for (tt, _), c in _bad_by_topic(s).items() if tt == t) for t, n in result.summary.per_topic.items()
    }
    # One reading per feeder two hours later moves every watermark past the grace of held telemetry.
    codec = default_codec()
    flush = [
        (
            f.encode(),
            codec.encode(
                "MeterReading",
                {"meter_id": f"{f}-FLUSH", "feeder_id": f, "timestamp": now_ms, "active_power_kw": 0.0},
            ),
            now_ms,
            None,
        )
        for f in ("F001", "F002")
    ]
    assert produce_records(make_producer(s), s.topic_prefix + METER_READINGS, flush).failed == 0
    good[METER_READINGS] += len(flush)

    worker = start_worker(_env(s))
    total_bad = sum(injected.values())
    stats = worker.wait_for(
        lambda st: sum(st["accepted"].values()) >= sum(good.values()) and sum(st["rejected"].values()) >= total_bad,
        timeout=180,
        what="all records processed",
    )
    assert stats["accepted"] == {t: n for t, n in good.items() if n}, "every valid record is accepted exactly once"

    dead = consume_all(s, [s.topic_prefix + DEADLETTER], timeout=60, expected=total_bad)
    letters = [decode_record(codec, m.value(), "DeadLetter") for m in dead]
    assert all(isinstance(d, DeadLetter) for d in letters)
    inputs = consume_all(s, [s.topic_prefix + t for t in INPUTS], timeout=60)
    truth = {
        (m.topic().removeprefix(s.topic_prefix), m.partition(), m.offset()): dict(m.headers() or []) for m in inputs
    }
    expected = {k: h[HEADER_INJECTED].decode() for k, h in truth.items() if HEADER_INJECTED in h}
    got = {(d.source_topic, d.partition, d.offset): d.reason_code for d in letters}  # type: ignore[attr-defined]
    assert got == expected, "each injected message is dead-lettered once, with the reason it was injected for"
    assert all(d.reason and d.value is not None for d in letters)  # type: ignore[attr-defined]
    assert Counter(got.values()) == Counter(injected)


def _bad_by_topic(s: Settings) -> Counter[tuple[str, str]]:
    msgs = consume_all(s, [s.topic_prefix + t for t in INPUTS], timeout=60)
    return Counter(
        (m.topic().removeprefix(s.topic_prefix), dict(m.headers() or [])[HEADER_INJECTED].decode())
        for m in msgs
        if HEADER_INJECTED in dict(m.headers() or [])
    )


def _now_floor_ms() -> int:
    import time

    return int(time.time() // 900 * 900 * 1000)


@pytest.mark.timeout(240)
def test_broker_killed_mid_stream_loses_nothing_acknowledged(private_kafka) -> None:
    """acks=all + idempotent producer: every acknowledged record is readable after SIGKILL and restart."""
    from streams.agents.topics import create_topics

    s = Settings(bootstrap_servers=private_kafka.bootstrap, topic_prefix="crash.", topic_retention_ms=-1)
    create_topics(s)
    codec = default_codec()
    producer = make_producer(s, message_timeout_ms=120_000)
    topic = s.topic_prefix + METER_READINGS
    now = _now_floor_ms()

    def batch(start: int, n: int):  # type: ignore[no-untyped-def]
        for i in range(start, start + n):
            value = codec.encode(
                "MeterReading",
                {"meter_id": f"m{i}", "feeder_id": f"F{i % 5}", "timestamp": now, "active_power_kw": float(i)},
            )
            yield f"F{i % 5}".encode(), value, now, None

    first = produce_records(producer, topic, batch(0, 5_000))
    assert first.failed == 0
    private_kafka.kill()
    private_kafka.start()
    second = produce_records(producer, topic, batch(5_000, 5_000))
    assert second.failed == 0
    msgs = consume_all(s, [topic], timeout=120, expected=10_000)
    ids = sorted(int(decode_record(codec, m.value()).meter_id[1:]) for m in msgs)  # type: ignore[attr-defined]
    assert ids == list(range(10_000)), "no acknowledged record lost, none duplicated"
