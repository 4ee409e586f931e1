"""Every hostile input ends in a dead letter with its precise reason, or is handled as documented; the worker
never raises, and valid records around the bad ones are processed."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts.codec import default_codec
from streams.contracts.models import DeadLetter, decode_record
from streams.contracts.topics import DEADLETTER, METER_READINGS, TOPICS
from streams.ingest.validate import RawMessage
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings
from tests.fixtures.hostile import T0, corpus

WALL = T0 + 40 * 86_400_000


def run(cases, clock=lambda: WALL):  # type: ignore[no-untyped-def]
    worker = FeederWorker(Settings(), clock=clock)
    msgs = [RawMessage(case.topic, 0, i, case.key, case.value, None) for i, case in enumerate(cases)]
    emit = worker.process([m for m in msgs if m.topic != "evgrid.weather"], lambda f: None)
    emit.messages += worker.process_weather([m for m in msgs if m.topic == "evgrid.weather"]).messages
    worker.clock = lambda: WALL + 3_600_000  # an hour later: held telemetry of unknown chargers is given up
    emit.messages += worker.tick().messages
    return worker, emit


def test_each_hostile_input_gets_its_reason_and_good_ones_pass() -> None:
    cases = corpus()
    worker, emit = run(cases)
    codec = default_codec()
    letters = {d.offset: d for d in (decode_record(codec, v) for t, _, v in emit.messages if t == DEADLETTER)}
    for offset, case in enumerate(cases):
        letter = letters.get(offset)
        got = "accepted" if letter is None else letter.reason_code  # type: ignore[attr-defined]
        assert got == case.expect, f"{case.name}: expected {case.expect}, got {got}"
        if letter is not None:
            assert isinstance(letter, DeadLetter) and letter.reason and letter.value == case.value[:65_536]
    accepted = Counter({k: v for k, v in worker.accepted.items() if v})
    assert accepted == Counter(c.topic for c in cases if c.expect == "accepted")


def test_a_flood_from_one_key_does_not_starve_others() -> None:
    codec = default_codec()
    flood = [RawMessage(METER_READINGS, 0, i, b"F1", codec.encode("MeterReading", {
        "meter_id": f"M{i % 50}", "feeder_id": "F1", "timestamp": T0 + (i // 50) * 60_000, "active_power_kw": 1.0}),
        None) for i in range(20_000)]
    other = RawMessage(METER_READINGS, 1, 0, b"F2", codec.encode("MeterReading", {
        "meter_id": "X", "feeder_id": "F2", "timestamp": T0, "active_power_kw": 2.0}), None)
    worker = FeederWorker(Settings(), clock=lambda: WALL)
    for k in range(0, len(flood), 2000):
        worker.process(flood[k:k + 2000] + ([other] if k == 10_000 else []), lambda f: None)
    assert worker.accepted[METER_READINGS] == 20_001 and b"F2" in worker.runtimes


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(sorted(TOPICS)), key=st.binary(max_size=20), value=st.binary(max_size=300))
def test_worker_never_raises_on_arbitrary_bytes(topic: str, key: bytes, value: bytes) -> None:
    worker = FeederWorker(Settings(), clock=lambda: WALL)
    msg = RawMessage(topic, 0, 0, key, value, None)
    emit = worker.process_weather([msg]) if topic == "evgrid.weather" else worker.process([msg], lambda f: None)
    assert sum(worker.rejected.values()) + sum(worker.accepted.values()) == 1
    assert all(t == DEADLETTER for t, _, _ in emit.messages)
