"""FeederRuntime: exactly-once application, event-time alignment across topics, checkpoints."""

from __future__ import annotations

from streams.contracts.codec import default_codec
from streams.contracts.models import GridSignal, MeterReading
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, FORECASTS, METER_READINGS, SETPOINTS
from streams.ingest.validate import RawMessage
from streams.pipeline import statecodec
from streams.pipeline.feeder import FeederRuntime, Reject
from streams.pipeline.worker import Emit, FeederWorker
from streams.settings import Settings, feeder_config, pipeline_config
from tests.fixtures.feeder_records import T0, reg, tel

MIN = 60_000
WALL = T0 + 30 * 24 * 60 * MIN  # the worker's clock in these tests: a month after the events
SETTINGS = Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30)


def meter(ts: int, m: str = "M1", kw: float = 3.0) -> MeterReading:
    return MeterReading(meter_id=m, feeder_id="F1", timestamp=ts, active_power_kw=kw)


def raw(topic: str, offset: int = 0) -> RawMessage:
    return RawMessage(topic, 0, offset, b"F1", b"x", None)


def test_claim_applies_each_offset_once() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    assert rt.claim(METER_READINGS, 0, 5)
    assert not rt.claim(METER_READINGS, 0, 5)
    assert not rt.claim(METER_READINGS, 0, 4)
    assert rt.claim(METER_READINGS, 1, 4)


def test_telemetry_waits_for_the_meter_stream_then_runs_in_event_time_order() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS), wall_ms=1)
    # telemetry read ahead of the meters: one hour later
    rt.apply(tel(T0 + 60 * MIN), raw(CHARGER_TELEMETRY), wall_ms=2)
    assert len(rt.held) == 1 and rt.plan_clock == 0
    rt.apply(meter(T0 + 30 * MIN), raw(METER_READINGS), wall_ms=3)
    assert len(rt.held) == 1, "meters at T0+30 min do not cover telemetry at T0+60 min"
    rt.apply(meter(T0 + 45 * MIN), raw(METER_READINGS), wall_ms=4)
    assert not rt.held and rt.plan_clock == T0 + 60 * MIN


def test_a_plan_at_a_boundary_does_not_wait_for_the_meter_round_stamped_there() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS), wall_ms=1)  # the round at B0 = T0; none yet at B = T0 + 15 min
    rt.apply(tel(T0 + 15 * MIN + 1_000), raw(CHARGER_TELEMETRY), wall_ms=2)
    assert not rt.held and rt.plan_clock == T0 + 15 * MIN + 1_000, "what this plan uses closed with the round at B0"
    rt.apply(tel(T0 + 21 * MIN), raw(CHARGER_TELEMETRY), wall_ms=3)
    assert len(rt.held) == 1, "from B + grace on, a plan uses the interval ending at B0: it waits until it closed"
    assert rt.closed_before(T0 + 21 * MIN) == T0
    rt.apply(meter(T0 + 15 * MIN), raw(METER_READINGS), wall_ms=4)  # the round at B moves the watermark past B0 + grace
    assert not rt.held and rt.plan_clock == T0 + 21 * MIN


def never(topic: str) -> bool:
    return False


def only(*topics: str):  # type: ignore[no-untyped-def]
    return lambda topic: topic in topics


def test_meter_wait_ends_on_event_time_once_the_meter_topic_is_read_to_its_end() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS))
    rt.apply(tel(T0 + 90 * MIN), raw(CHARGER_TELEMETRY, 1), drained=never)
    rt.apply(tel(T0 + 125 * MIN), raw(CHARGER_TELEMETRY, 2), drained=never)
    assert len(rt.held) == 2, "meter readings may still be unread: telemetry waits however far it runs ahead"
    out: list = []
    rt.release(out, wall_ms=10**15, drained=never)
    assert len(rt.held) == 2, "the wall clock never ends the wait"
    rt.release(out, drained=only(METER_READINGS))
    assert [m.offset for _, _, m, _ in rt.held] == [2], "meters all read: what is 2 intervals + grace old goes"
    assert rt.plan_clock == T0 + 90 * MIN


def test_feeder_without_meters_plans_on_telemetry_alone() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    out = rt.apply(tel(T0 + 1), raw(CHARGER_TELEMETRY))
    assert rt.held, "a new feeder first waits for its meter stream"
    out += rt.apply(tel(T0 + 36 * MIN), raw(CHARGER_TELEMETRY))
    setpoints = [o for o in out if not isinstance(o, Reject) and o[0] == SETPOINTS]
    assert setpoints and all(sp[2].charger_id == "C1" for sp in setpoints)
    assert all(0.0 <= sp[2].setpoint_kw <= 7.0 for sp in setpoints)


def test_unregistered_charger_blocks_until_the_registry_is_read_then_is_dead_lettered() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg("C1"), raw(CHARGER_REGISTRY))
    meters_read = only(METER_READINGS)
    assert rt.apply(tel(T0, cid="GHOST"), raw(CHARGER_TELEMETRY, 1), drained=meters_read) == []
    early = rt.apply(tel(T0 + 61 * MIN, cid="C1"), raw(CHARGER_TELEMETRY, 2), drained=meters_read)
    assert early == [] and len(rt.held) == 2, "telemetry after it waits: the registration may still come"
    out = rt.apply(tel(T0 + 62 * MIN, cid="C1"), raw(CHARGER_TELEMETRY, 3))
    rejects = [o for o in out if isinstance(o, Reject)]
    assert [(r.msg.offset, r.rejection.code) for r in rejects] == [(1, "unknown_charger")]
    assert [m.offset for _, _, m, _ in rt.held] == [2, 3] and rt.plan_clock == 0
    again = rt.apply(tel(T0 + 63 * MIN, cid="GHOST"), raw(CHARGER_TELEMETRY, 4))
    again += rt.apply(tel(T0 + 100 * MIN, cid="C1"), raw(CHARGER_TELEMETRY, 5))
    assert [(o.msg.offset, o.rejection.code) for o in again if isinstance(o, Reject)] == [(4, "unknown_charger")]


def test_registration_arriving_late_releases_held_telemetry_in_order() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(tel(T0, cid="C2"), raw(CHARGER_TELEMETRY), drained=never)
    rt.apply(tel(T0 + 60 * MIN, cid="C2"), raw(CHARGER_TELEMETRY, 1), drained=only(METER_READINGS))
    assert rt.held and "C2" not in rt.dispatcher.sessions
    rt.apply(reg("C2"), raw(CHARGER_REGISTRY), drained=only(METER_READINGS))
    assert [m.offset for _, _, m, _ in rt.held] == [1] and "C2" in rt.dispatcher.sessions


def test_held_telemetry_is_checkpointed_as_offsets_and_applied_again_after_a_restore() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS))
    for i in range(200):  # read far ahead of the meters
        assert rt.claim(CHARGER_TELEMETRY, 0, 10 + i)
        rt.apply(tel(T0 + 60 * MIN + i * MIN), raw(CHARGER_TELEMETRY, 10 + i), drained=never)
    assert len(rt.held) == 200
    state, model = rt.dump()
    assert model is not None
    many = FeederRuntime("F1", feeder_config(SETTINGS))
    many.__dict__.update(rt.__dict__)
    many.held = []
    small, _ = many.dump()
    assert len(state) < len(small) + 4 * 200, "the state holds offsets, not records"
    back = FeederRuntime.load(state, model)
    assert not back.held and back.held_offsets() == {(CHARGER_TELEMETRY, 0): set(range(10, 210))}
    assert not back.claim(CHARGER_TELEMETRY, 0, 9), "applied before the checkpoint: skipped"
    assert back.claim(CHARGER_TELEMETRY, 0, 10) and not back.claim(CHARGER_TELEMETRY, 0, 10)
    assert back.claim(CHARGER_TELEMETRY, 0, 210), "new"


def test_a_record_that_raises_is_dead_lettered_and_the_feeder_goes_on(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    real = rt.dispatcher.on_telemetry

    def boom(t):  # type: ignore[no-untyped-def]
        if t.soc_pct == 13.0:
            raise ZeroDivisionError("bad luck")
        return real(t)

    monkeypatch.setattr(rt.dispatcher, "on_telemetry", boom)
    out = rt.apply(tel(T0).model_copy(update={"soc_pct": 13.0}), raw(CHARGER_TELEMETRY, 1))
    out += rt.apply(tel(T0 + 1 * MIN), raw(CHARGER_TELEMETRY, 2))
    out += rt.apply(tel(T0 + 40 * MIN), raw(CHARGER_TELEMETRY, 3))
    rejects = [(o.msg.offset, o.rejection.code, o.rejection.reason) for o in out if isinstance(o, Reject)]
    assert rejects == [(1, "processing_error", "ZeroDivisionError: bad luck")]
    assert "C1" in rt.dispatcher.sessions and rt.dispatcher.sessions["C1"].last_heard_ms == T0 + 1 * MIN


def test_grid_signal_applies_at_the_first_plan_after_it_was_issued() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    sig = GridSignal(signal_id="g1", feeder_id="F1", issued_at=T0 + 20 * MIN, valid_from=T0 + 20 * MIN,
                     valid_until=T0 + 120 * MIN, import_limit_kw=3.0)
    rt.apply(sig, raw("evgrid.grid.signals"))
    assert rt.inbox
    rt.apply(tel(T0 + 16 * MIN), raw(CHARGER_TELEMETRY), wall_ms=40_000)
    rt.apply(tel(T0 + 52 * MIN), raw(CHARGER_TELEMETRY), wall_ms=40_000)  # no meters: 35 min later releases T0 + 16
    assert rt.plan_clock == T0 + 16 * MIN and rt.inbox, "not applied before its issue time"
    rt.apply(tel(T0 + 90 * MIN), raw(CHARGER_TELEMETRY), wall_ms=40_000)
    assert not rt.inbox


def test_stale_plans_are_skipped_when_catching_up_a_backlog() -> None:
    live = Settings(interval_minutes=15, max_plan_lag_seconds=60)
    rt = FeederRuntime("F1", feeder_config(live))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    wall = T0 + 10 * 60 * MIN  # ten hours after the telemetry's event time
    rt.apply(tel(T0 + 1), raw(CHARGER_TELEMETRY), wall_ms=wall)
    out = rt.apply(tel(T0 + 61 * MIN), raw(CHARGER_TELEMETRY), wall_ms=wall)
    out += rt.apply(tel(T0 + 100 * MIN), raw(CHARGER_TELEMETRY), wall_ms=wall)
    assert rt.skipped_stale_plans == 5  # the plug-in re-plan and 4 boundaries, all over an hour ago
    assert not [o for o in out if not isinstance(o, Reject) and o[0] == SETPOINTS and o[2].reason == "optimal"
                and o[2].valid_from in (T0 + 15 * MIN, T0 + 30 * MIN)]


def test_checkpoint_round_trip_gives_identical_future_outputs() -> None:
    codec = default_codec()
    msgs = [RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", codec.encode("ChargerRegistration", reg().to_avro()), T0)]
    for i in range(1, 200):
        ts = T0 + i * 5 * MIN
        msgs.append(RawMessage(METER_READINGS, 0, i, b"F1", codec.encode("MeterReading", meter(ts, kw=3 + i % 5)
                                                                           .to_avro()), ts))
    msgs.append(RawMessage(CHARGER_TELEMETRY, 0, 500, b"F1", codec.encode("ChargerTelemetry", tel(T0 + 995 * MIN)
                                                                          .to_avro()), T0))
    config = pipeline_config(SETTINGS)
    a, b = FeederWorker(config, clock=lambda: WALL), FeederWorker(config, clock=lambda: WALL)
    first = a.process(msgs[:120], lambda f: None)
    table = {k: v for k, _, v in first.checkpoints}
    b.process([], table.get)
    rest_a, rest_b = a.process(msgs[120:], lambda f: None), b.process(msgs[120:], table.get)
    assert [m for m in rest_a.messages if m[0] == FORECASTS]
    assert rest_a.messages == rest_b.messages
    # replaying inputs already applied changes nothing
    again = b.process(msgs[100:120], table.get)
    assert again.messages == [] and b.skipped_replayed == 20


def test_worker_tick_force_releases_everything() -> None:
    codec = default_codec()
    w = FeederWorker(pipeline_config(SETTINGS), clock=lambda: WALL)
    w.process([RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", codec.encode("ChargerRegistration", reg().to_avro()), T0),
               RawMessage(METER_READINGS, 0, 1, b"F1", codec.encode("MeterReading", meter(T0).to_avro()), T0),
               RawMessage(CHARGER_TELEMETRY, 0, 2, b"F1", codec.encode("ChargerTelemetry",
                                                                       tel(T0 + 99 * MIN).to_avro()), T0)],
              lambda f: None)
    assert w.counters()["held_telemetry"] == 1
    emit: Emit = w.tick(force=True)
    assert w.counters()["held_telemetry"] == 0 and emit.checkpoints


def test_when_every_input_has_stopped_the_tail_is_applied() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS))
    rt.apply(tel(T0 + 90 * MIN), raw(CHARGER_TELEMETRY, 1))
    rt.apply(tel(T0 + 91 * MIN, cid="GHOST"), raw(CHARGER_TELEMETRY, 2))
    out: list = []
    rt.release(out)  # in-process default: meters all read, telemetry still coming
    assert len(rt.held) == 2
    rt.release(out, drained=only(METER_READINGS, CHARGER_TELEMETRY))
    assert not rt.held and [(o.msg.offset, o.rejection.code) for o in out if isinstance(o, Reject)] == [
        (2, "unknown_charger")]


def test_a_checkpoint_from_before_dead_reckoning_moved_into_dispatch_restores_its_power_log() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS))
    rt.apply(tel(T0 + MIN), raw(CHARGER_TELEMETRY, 1), drained=only(METER_READINGS))
    log = {"C1": [(T0, 7.0)]}
    state, model = rt.dump()
    assert model is not None
    old = statecodec.decode(state)  # the old layout: the log on the runtime, none in the dispatcher
    old["power_log"] = log
    del old["dispatcher"].__dict__["power_log"]
    back = FeederRuntime.load(statecodec.encode(old), model)
    assert back.dispatcher.power_log == log and "power_log" not in back.__dict__


def test_a_checkpoint_from_before_stations_answers_restores_with_none() -> None:
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS))
    state, model = rt.dump()
    assert model is not None
    old = statecodec.decode(state)
    del old["dispatcher"].__dict__["setpoint_answers"], old["dispatcher"].__dict__["n_refused_setpoints"]
    back = FeederRuntime.load(statecodec.encode(old), model)
    assert back.dispatcher.setpoint_answers == {} and back.dispatcher.n_refused_setpoints == 0
    back.apply(tel(T0 + MIN).model_copy(update={"setpoint_sequence": 1, "setpoint_answer": "rejected"}),
               raw(CHARGER_TELEMETRY, 1), drained=only(METER_READINGS, CHARGER_TELEMETRY))
    assert back.dispatcher.setpoint_answers == {"C1": (1, "rejected")} and back.dispatcher.n_refused_setpoints == 1


def test_a_forecaster_checkpoint_of_the_v1_layout_is_migrated_on_load() -> None:
    from pathlib import Path

    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(meter(T0), raw(METER_READINGS))
    state, _ = rt.dump()
    v1 = Path(__file__).resolve().parents[2] / "fixtures" / "forecaster_river-blr_v1.bin"
    back = FeederRuntime.load(state, v1.read_bytes())
    assert back.forecaster.model_id == "river-blr-v1" and back.forecaster.config.model == "river-blr-raw"
    assert back.forecaster.state.ring == 4 * back.forecaster.state.week + 1
    applied, kept = back.reconfigure(feeder_config(SETTINGS))
    assert applied == [] and "forecaster.model" in kept, "the migrated model stays, and the worker says so"
    assert back.forecaster.config.model == "river-blr-raw"


def test_a_forecaster_checkpoint_of_an_unknown_layout_is_a_decode_error() -> None:
    import numpy as np
    import pytest

    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(meter(T0), raw(METER_READINGS))
    state, model = rt.dump()
    assert model is not None
    fc = statecodec.decode(model)
    fc.model.w = np.zeros((fc.model.w.shape[0], fc.model.w.shape[1] + 3))
    with pytest.raises(statecodec.StateDecodeError, match="forecaster checkpoint"):
        FeederRuntime.load(state, statecodec.encode(fc))


def test_a_meter_history_before_the_first_car_keeps_a_bounded_state_and_the_first_plan_its_forecast() -> None:
    # 3 days of 15-minute meter readings before any telemetry (a backtest's warm-up): the forecasts issued before the
    # first telemetry are kept for EVGRID_MAX_TELEMETRY_LAG_HOURS only (before: every one, and 14 days of 5-minute
    # forecasts over 24 h made a checkpoint larger than the broker's 1 MB message limit); see test_idle_feeder.py
    rt = FeederRuntime("F1", feeder_config(SETTINGS))
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    n = 3 * 96
    for k in range(n):
        rt.apply(meter(T0 + k * 15 * MIN, kw=3.0 + k % 4), raw(METER_READINGS, k), wall_ms=k)
    assert rt.forecaster.closed >= n - 2  # the forecaster learnt from all of it
    assert len(rt.forecasts) <= rt.history_ms // (15 * MIN) + 2
    assert len(rt.loads) <= rt.history_ms // (15 * MIN) + 2  # older loads are the dispatcher's history already
    last = T0 + (n - 1) * 15 * MIN
    out = rt.apply(tel(last + 5 * MIN), raw(CHARGER_TELEMETRY), wall_ms=n)
    assert rt.plan_clock == last + 5 * MIN and any(o[0] == SETPOINTS for o in out if isinstance(o, tuple))
    assert rt.dispatcher.plan_request is not None and any(rt.dispatcher.plan_request.base_kw)  # with a forecast
    assert rt.dispatcher.peak_kw >= 6.0  # the month's peak from the history before the car
