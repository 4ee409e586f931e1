"""The stateless checks of one message: each refusal has its code, its reason and the original message."""

from __future__ import annotations

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.topics import METER_READINGS, TOPICS
from streams.ingest.validate import RawMessage, Rejection, Validator, dead_letter

T0 = 1_767_571_200_000
CODEC = default_codec()


def reading(ts: int = T0, feeder: str = "F1") -> bytes:
    return CODEC.encode("MeterReading", {"meter_id": "M1", "feeder_id": feeder, "timestamp": ts,
                                         "active_power_kw": 1.0})


def check(value: bytes | None, topic: str = METER_READINGS, key: bytes | None = b"F1", **kw: int) -> object:
    return Validator(CODEC, clock=lambda: T0, **kw).check(RawMessage(topic, 0, 7, key, value, T0 - 5))


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_a_tombstone_or_empty_value_is_truncated(topic: str) -> None:
    for value in (None, b""):
        got = check(value, topic)
        assert isinstance(got, Rejection) and got.code == "truncated" and "0 bytes" in got.reason


def test_an_unknown_topic_is_named() -> None:
    got = check(reading(), "evgrid.nope")
    assert got == Rejection("unknown_topic", "no contract for topic evgrid.nope")


def test_size_limit_is_inclusive_and_one_mebibyte_by_default() -> None:
    at_limit = check(b"\xc3\x01" + bytes(1_048_574))  # 1 MiB: past the size check (an unknown schema)
    assert isinstance(at_limit, Rejection) and at_limit.code == "unknown_schema"
    over = check(b"\xc3\x01" + bytes(1_048_575))
    assert isinstance(over, Rejection) and over.code == "oversized" and "1048577 bytes" in over.reason
    assert check(reading(), max_message_bytes=len(reading()) - 1).code == "oversized"  # type: ignore[attr-defined]


def test_future_bound_is_inclusive_and_an_hour_by_default() -> None:
    assert not isinstance(check(reading(T0 + 3_600_000)), Rejection)
    late = check(reading(T0 + 3_600_001))
    assert isinstance(late, Rejection) and late.code == "out_of_window" and late.reason.startswith("timestamp ")
    assert not isinstance(check(reading(T0 + 5), max_future_ms=5), Rejection)
    far = check(reading(T0 + 3_600_000 + 36_000_000))
    assert far == Rejection("out_of_window", f"timestamp {T0 + 39_600_000} is 10.0 h beyond now + max future")
    earlier = Validator(CODEC, clock=lambda: T0).check(RawMessage(METER_READINGS, 0, 7, b"F1", reading(), T0),
                                                        now_ms=T0 - 7_200_000)  # the batch's clock reading wins
    assert isinstance(earlier, Rejection) and earlier.code == "out_of_window"


def test_key_mismatch_shows_the_key_it_got() -> None:
    got = check(reading(), key=b"F9")
    assert got == Rejection("key_mismatch", "key 'F9' is not the record's feeder_id 'F1'")
    long_key = check(reading(), key=b"\xff" + b"K" * 200)
    assert isinstance(long_key, Rejection) and "'\ufffd" + "K" * 79 + "'" in long_key.reason
    assert check(reading(), key=None) == Rejection("key_mismatch", "key None is not the record's feeder_id 'F1'")


def test_a_dead_letter_keeps_the_original_message() -> None:
    msg = RawMessage(METER_READINGS, 3, 41, b"F1", b"x" * 70_000, T0 - 5)
    letter = dead_letter(msg, Rejection("corrupt", "why"), "w1", T0)
    assert (letter.source_topic, letter.partition, letter.offset, letter.key) == (METER_READINGS, 3, 41, b"F1")
    assert letter.value == b"x" * 65_536 and letter.record_timestamp == T0 - 5
    assert (letter.reason_code, letter.reason, letter.rejected_at, letter.worker) == ("corrupt", "why", T0, "w1")
    assert dead_letter(msg._replace(value=None), Rejection("truncated", "t"), "w1", T0).value is None


H = 3_600_000
# One valid record of every input type, its event time ``ts`` (the contract's event-time field, docs/contracts.md)
INPUTS = {
    "MeterReading": lambda ts: {"meter_id": "M1", "feeder_id": "F1", "timestamp": ts, "active_power_kw": 1.0},
    "ChargerTelemetry": lambda ts: {"charger_id": "C1", "feeder_id": "F1", "timestamp": ts, "connected": True,
                                    "power_kw": 3.0, "max_charge_kw": 7.0},
    "ChargerRegistration": lambda ts: {"charger_id": "C1", "feeder_id": "F1", "site_id": "S1", "customer_id": "U1",
                                       "bidirectional": False, "inverter_location": "offboard",
                                       "interconnection_class": "non_parallel", "max_charge_kw": 7.0,
                                       "registered_at": ts},
    "SiteRegistration": lambda ts: {"site_id": "S1", "feeder_id": "F1", "interconnection_class": "non_parallel",
                                    "registered_at": ts},
    "GridSignal": lambda ts: {"signal_id": "g1", "feeder_id": "F1", "issued_at": ts, "valid_from": T0 + H,
                              "valid_until": T0 + 2 * H},
    "IncentiveResponse": lambda ts: {"offer_id": "o1", "feeder_id": "F1", "customer_id": "U1", "accepted": True,
                                     "responded_at": ts},
    "WeatherObservation": lambda ts: {"station_id": "W1", "timestamp": ts, "air_temperature_c": 10.0,
                                      "ghi_wm2": 0.0},
}


def _encode(name: str, fields: dict) -> bytes:
    from streams.contracts import models

    rec = getattr(models, name).model_validate(fields)
    return models.encode_record(CODEC, rec)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_input_is_keyed_by_its_topics_partitioning_field_and_bounded_in_event_time(name: str) -> None:
    """The contract (streams/contracts/topics.py, written in docs): each input topic is keyed by one field of its
    records; a message keyed otherwise is ``key_mismatch``; an event time more than an hour ahead of the clock is
    ``out_of_window``."""
    topic = next(t for t, spec in TOPICS.items() if name in spec.records)
    field = TOPICS[topic].key
    fields = INPUTS[name](T0)
    key = str(fields[field]).encode()
    got = check(_encode(name, fields), topic=topic, key=key)
    assert type(got).__name__ == name
    assert check(_encode(name, fields), topic=topic, key=key + b"x") == Rejection(
        "key_mismatch", f"key {(key + b'x').decode()!r} is not the record's {field} {key.decode()!r}")
    assert type(check(_encode(name, INPUTS[name](T0 + H)), topic=topic, key=key)).__name__ == name
    late = check(_encode(name, INPUTS[name](T0 + H + 1)), topic=topic, key=key)
    assert isinstance(late, Rejection) and late.code == "out_of_window"


def test_a_dead_letters_key_and_reason_are_bounded_exactly() -> None:
    """A dead letter keeps at most 1,024 bytes of the key (saying how long it was) and 2,000 characters of the
    reason (the last one an ellipsis when cut)."""
    msg = RawMessage(METER_READINGS, 0, 1, b"k" * 1_024, b"v", T0)
    kept = dead_letter(msg, Rejection("corrupt", "r" * 2_000), "w", T0)
    assert kept.key == b"k" * 1_024 and kept.reason == "r" * 2_000
    cut = dead_letter(msg._replace(key=b"k" * 1_025), Rejection("corrupt", "why"), "w", T0)
    assert cut.key == b"k" * 1_024 and cut.reason == "why (key of 1025 bytes, first 1024 kept)"
    long = dead_letter(msg, Rejection("corrupt", "r" * 2_001), "w", T0)
    assert long.reason == "r" * 1_999 + "…" and len(long.reason) == 2_000


def test_each_refusal_says_why_in_words() -> None:
    """Every refusal has its code and a reason a person can act on (docs/contracts.md, dead letters)."""
    assert check(b"") == Rejection("truncated", "empty message value (0 bytes)")
    assert check(None) == Rejection("truncated", "empty message value (0 bytes)")
    one = check(b"\xc3")  # one byte is not empty: the codec says it is shorter than the header
    assert isinstance(one, Rejection) and one.code == "truncated" and one.reason != "empty message value (0 bytes)"
    big = reading()
    assert check(big, max_message_bytes=len(big) - 1) == Rejection(
        "oversized", f"{len(big)} bytes is above the {len(big) - 1}-byte limit")
    registry = next(t for t, spec in TOPICS.items() if len(spec.records) > 1)  # the registry: two record types
    assert check(reading(), topic=registry) == Rejection(
        "wrong_record_type", f"got a MeterReading, this topic carries {' or '.join(TOPICS[registry].records)}")


def test_the_default_clock_is_the_wall_clock_in_milliseconds() -> None:
    """``max_future_ms`` is counted from now (epoch milliseconds) when no clock is given."""
    import time

    now = int(time.time() * 1000)
    v = Validator(CODEC)
    assert type(v.check(RawMessage(METER_READINGS, 0, 1, b"F1", reading(now), now))).__name__ == "MeterReading"
    ahead = v.check(RawMessage(METER_READINGS, 0, 1, b"F1", reading(now + 7_200_000), now))
    assert isinstance(ahead, Rejection) and ahead.code == "out_of_window"


def test_a_message_without_a_broker_timestamp_is_dead_lettered_without_one() -> None:
    msg = RawMessage(METER_READINGS, 0, 1, b"F1", b"x")
    assert dead_letter(msg, Rejection("corrupt", "why"), "w", T0).record_timestamp is None
