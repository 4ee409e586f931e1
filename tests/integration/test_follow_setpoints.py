"""The simulator's setpoint listener reads setpoints from the real broker into the chargers' store."""

from __future__ import annotations

import time

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, encode_record
from streams.contracts.topics import SETPOINTS
from streams.kafka.clients import make_producer
from streams.settings import Settings
from streams.simulate.follow import LatestSetpoints, SetpointListener

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_767_571_200_000


def test_listener_keeps_the_latest_setpoint_per_charger(topic_namespace: Settings) -> None:
    s = topic_namespace
    codec = default_codec()
    producer = make_producer(s)
    for seq, kw in ((1, 5.0), (3, 2.5), (2, 7.0)):  # sequence 2 arrives last and must not win
        sp = ChargerSetpoint(charger_id="c1", feeder_id="F001", sequence=seq, setpoint_kw=kw, valid_from=T0,
                             valid_until=T0 + 3_600_000, fallback_kw=0.0, reason="optimal", plan_id="p",
                             issued_at=T0)
        producer.produce(s.topic_prefix + SETPOINTS, key=b"c1", value=encode_record(codec, sp), timestamp=T0)
    producer.produce(s.topic_prefix + SETPOINTS, key=b"c1", value=b"\x00garbage", timestamp=T0)
    assert producer.flush(30) == 0
    store = LatestSetpoints(schedule_ms=4 * 3_600_000)
    listener = SetpointListener(s, store).start()
    try:
        deadline = time.monotonic() + 60
        while store.received + listener.skipped < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.stop()
    assert store.received == 3 and listener.skipped == 1
    assert store("c1", T0 + 60_000) == 2.5 and store.latest["c1"].sequence == 3
