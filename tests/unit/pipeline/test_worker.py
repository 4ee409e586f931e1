"""FeederWorker: deferred checkpoints (what the batch agent relies on) and weather for every feeder."""

from __future__ import annotations

from streams.contracts.codec import default_codec
from streams.contracts.models import MeterReading, WeatherObservation, encode_record
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, DEADLETTER, METER_READINGS, WEATHER
from streams.ingest.validate import RawMessage
from streams.pipeline.feeder import FeederRuntime
from streams.pipeline.worker import MODEL_KEY, STATE_KEY, FeederWorker
from streams.settings import Settings, pipeline_config
from tests.fixtures.feeder_records import HOUR, T0, reg, tel

SETTINGS = Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30)
CODEC = default_codec()


def worker() -> FeederWorker:
    return FeederWorker(pipeline_config(SETTINGS), clock=lambda: T0 + 30 * 24 * HOUR)


def meter_msg(feeder: str, offset: int, ts: int) -> RawMessage:
    value = encode_record(CODEC, MeterReading(meter_id=f"{feeder}-M1", feeder_id=feeder, timestamp=ts,
                                              active_power_kw=2.0))
    return RawMessage(METER_READINGS, 0, offset, feeder.encode(), value, ts)


def weather_msg(offset: int, ts: int, temp: float = 4.0, value: bytes | None = None) -> RawMessage:
    obs = WeatherObservation(station_id="S1", timestamp=ts, air_temperature_c=temp, ghi_wm2=0.0)
    return RawMessage(WEATHER, 0, offset, b"S1", value if value is not None else encode_record(CODEC, obs), ts)


def test_deferred_checkpoint_covers_every_feeder_changed_since_the_last_one() -> None:
    w = worker()
    first = w.process([meter_msg("F1", 0, T0 + 900_000), meter_msg("F2", 1, T0 + 900_000)], lambda f: None,
                      checkpoint=False)
    assert first.checkpoints == []
    w.process([meter_msg("F1", 2, T0 + 1_800_000)], lambda f: None, checkpoint=False)
    keys = {k for k, _, _ in w.checkpoint().checkpoints}
    assert {STATE_KEY + b"F1", STATE_KEY + b"F2"} <= keys
    assert w.checkpoint().checkpoints == [], "nothing changed since"


def test_a_checkpoint_restores_a_runtime_that_skips_what_it_applied() -> None:
    w = worker()
    w.process([meter_msg("F1", i, T0 + (i + 1) * 900_000) for i in range(8)], lambda f: None, checkpoint=False)
    table = {k: v for k, _, v in w.checkpoint().checkpoints}
    assert MODEL_KEY + b"F1" in table
    restored = worker()
    out = restored.process([meter_msg("F1", i, T0 + (i + 1) * 900_000) for i in range(10)], table.get)
    assert restored.skipped_replayed == 8 and restored.accepted[METER_READINGS] == 2
    assert out.checkpoints, "the two new readings changed the state"
    rt = FeederRuntime.load(table[STATE_KEY + b"F1"], table[MODEL_KEY + b"F1"])
    assert rt.offsets[(METER_READINGS, 0)] == 7


def test_weather_reaches_feeders_loaded_before_and_after_it() -> None:
    w = worker()
    w.process([meter_msg("F1", 0, T0 + 900_000)], lambda f: None)
    assert w.observe_weather([weather_msg(0, T0), weather_msg(1, T0 + HOUR, 7.0)]) == 2
    w.process([meter_msg("F2", 1, T0 + 900_000)], lambda f: None)  # loaded after the weather arrived
    for feeder in (b"F1", b"F2"):
        obs = w.runtimes[feeder].forecaster.state.weather_obs
        assert sorted(v[0] for v in obs.values()) == [4.0, 7.0], feeder


def test_group_weather_is_counted_and_dead_lettered_but_not_applied_twice() -> None:
    w = worker()
    w.process([meter_msg("F1", 0, T0 + 900_000)], lambda f: None)
    bad = weather_msg(1, T0, value=b"\xc3\x01garbage")
    out = w.process_weather([weather_msg(0, T0), bad], observe=False)
    assert [t for t, _, _ in out.messages] == [DEADLETTER]
    assert w.accepted[WEATHER] == 1 and w.weather == {}
    assert not w.runtimes[b"F1"].forecaster.state.weather_obs
    assert w.observe_weather([weather_msg(0, T0), bad]) == 1, "the broadcast reader skips the bad one silently"
    assert w.counters()["weather_observed"] == 1


def test_weather_kept_for_late_feeders_is_bounded() -> None:
    from streams.pipeline import worker as worker_module

    w = worker()
    n = worker_module.WEATHER_KEPT + 10
    w.observe_weather(weather_msg(i, T0 + i * 60_000) for i in range(n))
    assert len(w.weather) <= worker_module.WEATHER_KEPT
    assert max(k[1] for k in w.weather) == T0 + (n - 1) * 60_000, "the newest are kept"


def _charger_msgs() -> list[RawMessage]:
    msgs = [meter_msg("F1", 0, T0)]
    for i in range(3):
        msgs.append(RawMessage(CHARGER_REGISTRY, 0, i, b"F1", encode_record(CODEC, reg(f"C{i}")), T0))
    for k in range(12):
        ts = T0 + k * 300_000
        msgs.append(RawMessage(CHARGER_TELEMETRY, 0, k, b"F1",
                               encode_record(CODEC, tel(ts, f"C{k % 3}", connected=k % 5 != 4)), ts))
    for k in range(1, 6):
        msgs.append(meter_msg("F1", k, T0 + k * 900_000))
    return msgs


def test_a_batch_applied_in_time_slices_gives_what_it_gives_at_once() -> None:
    msgs = _charger_msgs()
    whole = worker().process(msgs, lambda f: None)
    assert whole.taken == len(msgs) and any(m[0] == "evgrid.setpoints" for m in whole.messages)
    w, rest, messages, slices = worker(), msgs, [], 0
    while rest:
        out = w.process(rest, lambda f: None, until=0.0)  # a deadline long past: one message per slice
        assert out.taken == 1
        messages += out.messages
        rest, slices = rest[out.taken:], slices + 1
    assert slices == len(msgs) and messages == whole.messages


def test_connection_change_tells_plug_ins_and_outs_from_heartbeats() -> None:
    w = worker()
    w.process(_charger_msgs(), lambda f: None)
    w.tick(force=True)

    def tel_at_5h(cid: str, connected: bool, session: str | None = "s1") -> bytes:
        record = tel(T0 + 5 * HOUR, cid, connected)
        return encode_record(CODEC, record.model_copy(update={"session_id": session}) if connected else record)

    state = {c: s.connected for c, s in w.runtimes[b"F1"].dispatcher.sessions.items()}
    assert state == {"C0": False, "C1": True, "C2": True}  # C0's last report (k = 9) was unplugged
    assert not w.connection_change(b"F1", tel_at_5h("C1", True))  # a heartbeat of the session in progress
    assert w.connection_change(b"F1", tel_at_5h("C1", True, "s2"))  # a new session
    assert w.connection_change(b"F1", tel_at_5h("C1", False))  # unplugged
    assert w.connection_change(b"F1", tel_at_5h("C0", True))  # plugged in
    assert not w.connection_change(b"F1", tel_at_5h("C0", False))
    assert w.connection_change(b"F9", tel_at_5h("C7", True)) and not w.connection_change(b"F9", tel_at_5h("C7", False))
    assert not w.connection_change(b"F1", b"\xc3\x01garbage") and not w.connection_change(b"F1", None)


def _decoded_deadletters(emit) -> list:  # type: ignore[no-untyped-def]
    from streams.contracts.models import DeadLetter, decode_record

    return [decode_record(CODEC, v, "DeadLetter") for t, _, v in emit.messages if t == DEADLETTER
            if isinstance(decode_record(CODEC, v, "DeadLetter"), DeadLetter)]


def test_ids_over_the_limit_or_with_control_characters_are_invalid_and_nothing_they_make_is_oversized() -> None:
    w = worker()
    long_id = "C" * 600_000
    for i, cid in enumerate([long_id, "C\x00model", "C1\n"]):
        value = CODEC.encode("ChargerRegistration", {**reg().to_avro(), "charger_id": cid})
        emit = w.process([RawMessage(CHARGER_REGISTRY, 0, i, b"F1", value, T0)], lambda f: None)
        [dl] = _decoded_deadletters(emit)
        assert dl.reason_code == "invalid_value" and "charger_id" in dl.reason
        assert all(len(k) + len(v) < SETTINGS.max_message_bytes for _, k, v in emit.messages)


def test_a_dead_letter_always_fits_whatever_the_key() -> None:
    w = worker()
    key = b"k" * 1_000_000
    emit = w.process([RawMessage(METER_READINGS, 0, 0, key, b"\xc3\x01" + b"x" * 900_000, T0)], lambda f: None)
    [(topic, k, v)] = emit.messages
    assert topic == DEADLETTER and len(k) + len(v) < 70_000
    [dl] = _decoded_deadletters(emit)
    assert "1000000 bytes" in dl.reason and len(dl.key) == 1_024


def test_an_output_too_large_to_send_dead_letters_its_input_and_nothing_else() -> None:
    small = Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30, max_message_bytes=1_500)
    w = FeederWorker(pipeline_config(small), clock=lambda: T0 + 30 * 24 * HOUR)
    msgs = [meter_msg("F1", i, T0 + i * 900_000) for i in range(4)]  # each after the first closes an interval
    emit = w.process(msgs, lambda f: None)
    dls = _decoded_deadletters(emit)
    assert [(d.offset, d.reason_code) for d in dls] == [(1, "processing_error"), (2, "processing_error"),
                                                        (3, "processing_error")]
    assert "DemandForecast output" in dls[0].reason
    assert w.oversized_outputs == 3 and w.counters()["oversized_outputs"] == 3
    assert not [m for m in emit.messages if m[0] != DEADLETTER]


def test_held_telemetry_is_reported_unapplied_so_its_offset_is_never_acknowledged() -> None:
    w = worker()
    w.drained = set()  # as in the agent before the consumer reports: nothing known to be read to its end
    reg_value = CODEC.encode("ChargerRegistration", reg().to_avro())
    msgs = [RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", reg_value, T0), meter_msg("F1", 1, T0)]
    msgs += [RawMessage(CHARGER_TELEMETRY, 0, 5 + n, b"F1", encode_record(CODEC, tel(T0 + HOUR + i * 60_000)),
                        T0) for n, i in enumerate([0, 1, 2, 37])]
    w.process(msgs, lambda f: None)
    assert w.held_total() == 4 and w.unapplied() == {(CHARGER_TELEMETRY, 0): 5}
    w.drained = {(METER_READINGS, 0)}
    w.tick()
    assert w.unapplied() == {(CHARGER_TELEMETRY, 0): 8}, "released on event time once the meters are all read"


def test_a_restart_applies_the_settings_changed_since_the_checkpoint(caplog) -> None:
    w = worker()
    w.process([meter_msg("F1", i, T0 + (i + 1) * 900_000) for i in range(4)], lambda f: None, checkpoint=False)
    table = {k: v for k, _, v in w.checkpoint().checkpoints}
    changed = Settings(interval_minutes=15, grace_seconds=600, align_idle_seconds=30, reserve_soc_pct=50.0,
                       dispatch_upper_peak_per_kw=0.0)
    restored = FeederWorker(pipeline_config(changed), clock=lambda: T0 + 30 * 24 * HOUR)
    restored.process([meter_msg("F1", 4, T0 + 5 * 900_000)], table.get)
    rt = restored.runtimes[b"F1"]
    assert rt.dispatcher.config == pipeline_config(changed).feeder.dispatch, "the safety rules and weights now set"
    assert rt.dispatcher.config.rules.reserve_soc_pct == 50.0 and rt.grace_ms == rt.aggregator.grace_ms == 600_000
    assert rt.offsets[(METER_READINGS, 0)] == 4, "what the checkpoint applied is kept"
    caplog.set_level("WARNING")
    other = FeederWorker(pipeline_config(Settings(interval_minutes=5, grace_seconds=300, align_idle_seconds=30)),
                         clock=lambda: T0 + 30 * 24 * HOUR)
    other.process([meter_msg("F1", 4, T0 + 5 * 900_000)], table.get)
    assert other.runtimes[b"F1"].step_ms == 900_000, "the interval length stays the checkpoint's"
    assert "delete the feeder's checkpoint" in caplog.text and "step_ms" in caplog.text
