"""Bad-message injection: the rate, the kinds, the headers, and what decoding alone detects."""

from __future__ import annotations

import itertools
import math

import pytest

from streams.contracts.codec import DecodeError, default_codec
from streams.contracts.models import decode_record
from streams.contracts.topics import TOPICS
from streams.simulate import DECODE_DETECTABLE, KIND_REASON, REASON_CODES, SimConfig, simulate, summarize
from streams.simulate.bad import HEADER_INJECTED, HEADER_KIND, OUT_OF_WINDOW, TS_2099, UNKNOWN_CHARGER

CODEC = default_codec()


@pytest.fixture(scope="module")
def messages() -> list:
    return list(simulate(SimConfig(feeders=2, homes=20, chargers=10, hours=12, seed=21, bad_rate=0.05)))


def test_reason_codes_are_the_dead_letter_codes() -> None:
    assert set(REASON_CODES) == {"truncated", "bad_magic", "unknown_schema", "wrong_record_type",
                                 "invalid_value", "unknown_charger", "out_of_window"}
    assert set(KIND_REASON.values()) == set(REASON_CODES)


def test_bad_share_matches_the_rate(messages: list) -> None:
    n = len(messages)
    bad = sum(m.injected is not None for m in messages)
    assert n > 5000
    assert abs(bad - 0.05 * n) <= 4 * math.sqrt(n * 0.05 * 0.95)
    summary = summarize(messages)
    assert summary.bad_total == bad and summary.total == n
    assert set(summary.bad_per_kind) == set(KIND_REASON)  # every kind shows up in a run this long


def test_no_bad_messages_at_rate_zero() -> None:
    msgs = list(simulate(SimConfig(feeders=1, homes=5, chargers=3, hours=4, seed=21)))
    assert all(m.injected is None and not m.headers for m in msgs)


def test_every_injected_message_is_labelled_and_detected(messages: list) -> None:
    for m in messages:
        expected = TOPICS[m.topic].record
        if m.injected is None:
            assert m.record is not None
            assert decode_record(CODEC, m.value, expected) == m.record
            continue
        headers = dict(m.headers)
        assert headers[HEADER_INJECTED].decode() == m.injected == KIND_REASON[m.kind]
        assert headers[HEADER_KIND].decode() == m.kind
        assert m.record is None
        if m.kind in DECODE_DETECTABLE:
            with pytest.raises(DecodeError) as err:
                decode_record(CODEC, m.value, expected)
            assert err.value.code == m.injected, (m.kind, err.value)
        else:
            record = decode_record(CODEC, m.value, expected)  # valid alone; needs registry / watermark
            if m.injected == UNKNOWN_CHARGER:
                assert record.charger_id.startswith("UNREGISTERED-")  # type: ignore[attr-defined]
            else:
                assert m.injected == OUT_OF_WINDOW and record.timestamp == TS_2099  # type: ignore[attr-defined]


def test_bad_message_precedes_the_good_record_it_damages(messages: list) -> None:
    for a, b in itertools.pairwise(messages):
        if a.injected is not None:
            assert b.injected is None and (a.topic, a.key, a.timestamp) == (b.topic, b.key, b.timestamp)


def test_bad_kinds_can_be_restricted() -> None:
    msgs = list(simulate(SimConfig(feeders=1, homes=10, chargers=5, hours=6, seed=3, bad_rate=0.2,
                                   bad_kinds=("soc_140", "random_bytes"))))
    kinds = {m.kind for m in msgs if m.injected}
    assert kinds == {"soc_140", "random_bytes"}
    assert all(m.topic == "evgrid.charger.telemetry" for m in msgs if m.kind == "soc_140")
