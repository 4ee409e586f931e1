"""FeederRuntime: exactly-once application, event-time alignment across topics, checkpoints."""

from __future__ import annotations

from streams.contracts.codec import default_codec
from streams.contracts.models import GridSignal, MeterReading
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, FORECASTS, METER_READINGS, SETPOINTS
from streams.ingest.validate import RawMessage
from streams.pipeline.feeder import FeederRuntime, Reject
from streams.pipeline.worker import Emit, FeederWorker
from streams.settings import Settings
from tests.fixtures.feeder_records import T0, reg, tel

MIN = 60_000
WALL = T0 + 30 * 24 * 60 * MIN  # the worker's clock in these tests: a month after the events
SETTINGS = Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30)


def meter(ts: int, m: str = "M1", kw: float = 3.0) -> MeterReading:
    return MeterReading(meter_id=m, feeder_id="F1", timestamp=ts, active_power_kw=kw)


def raw(topic: str, offset: int = 0) -> RawMessage:
    return RawMessage(topic, 0, offset, b"F1", b"x", None)


def test_claim_applies_each_offset_once() -> None:
    rt = FeederRuntime("F1", SETTINGS)
    assert rt.claim(METER_READINGS, 0, 5)
    assert not rt.claim(METER_READINGS, 0, 5)
    assert not rt.claim(METER_READINGS, 0, 4)
    assert rt.claim(METER_READINGS, 1, 4)


def test_telemetry_waits_for_the_meter_stream_then_runs_in_event_time_order() -> None:
    rt = FeederRuntime("F1", SETTINGS)
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
    rt = FeederRuntime("F1", SETTINGS)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS), wall_ms=1)  # the round at B0 = T0; none yet at B = T0 + 15 min
    rt.apply(tel(T0 + 15 * MIN + 1_000), raw(CHARGER_TELEMETRY), wall_ms=2)
    assert not rt.held and rt.plan_clock == T0 + 15 * MIN + 1_000, "what this plan uses closed with the round at B0"
    rt.apply(tel(T0 + 21 * MIN), raw(CHARGER_TELEMETRY), wall_ms=3)
    assert len(rt.held) == 1, "from B + grace on, a plan uses the interval ending at B0: it waits until it closed"
    assert rt.closed_before(T0 + 21 * MIN) == T0
    rt.apply(meter(T0 + 15 * MIN), raw(METER_READINGS), wall_ms=4)  # the round at B moves the watermark past B0 + grace
    assert not rt.held and rt.plan_clock == T0 + 21 * MIN


def test_quiet_meter_stream_stops_the_wait() -> None:
    rt = FeederRuntime("F1", SETTINGS)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    rt.apply(meter(T0), raw(METER_READINGS), wall_ms=1_000)
    rt.apply(tel(T0 + 90 * MIN), raw(CHARGER_TELEMETRY), wall_ms=2_000)
    assert rt.held
    out: list = []
    rt.release(1_000 + 30_000, out)
    assert not rt.held


def test_feeder_without_meters_plans_on_telemetry_alone() -> None:
    rt = FeederRuntime("F1", SETTINGS)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    out = rt.apply(tel(T0 + 1), raw(CHARGER_TELEMETRY), wall_ms=1_000)
    assert rt.held, "a new feeder first waits for its meter stream"
    out += rt.apply(tel(T0 + 16 * MIN), raw(CHARGER_TELEMETRY), wall_ms=31_000)
    setpoints = [o for o in out if not isinstance(o, Reject) and o[0] == SETPOINTS]
    assert setpoints and all(sp[2].charger_id == "C1" for sp in setpoints)
    assert all(0.0 <= sp[2].setpoint_kw <= 7.0 for sp in setpoints)


def test_unregistered_charger_blocks_briefly_then_is_dead_lettered() -> None:
    rt = FeederRuntime("F1", SETTINGS)
    rt.apply(reg("C1"), raw(CHARGER_REGISTRY))
    assert rt.apply(tel(T0, cid="GHOST"), raw(CHARGER_TELEMETRY, 1), wall_ms=1_000) == []
    early = rt.apply(tel(T0 + 61 * MIN, cid="C1"), raw(CHARGER_TELEMETRY, 2), wall_ms=2_000)
    assert early == [] and len(rt.held) == 2, "telemetry after it waits: the registration may still come"
    assert rt.apply(tel(T0 + 62 * MIN, cid="C1"), raw(CHARGER_TELEMETRY, 3), wall_ms=31_000) == [], \
        "no meter stream: released after 30 s, then the unknown charger waits 30 s for its registration"
    out: list = []
    rt.release(61_000, out)
    rejects = [o for o in out if isinstance(o, Reject)]
    assert [(r.msg.offset, r.rejection.code) for r in rejects] == [(1, "unknown_charger")]
    assert not rt.held and rt.plan_clock == T0 + 62 * MIN
    again = rt.apply(tel(T0 + 63 * MIN, cid="GHOST"), raw(CHARGER_TELEMETRY, 4), wall_ms=62_000)
    assert [o.rejection.code for o in again if isinstance(o, Reject)] == ["unknown_charger"]


def test_registration_arriving_late_releases_held_telemetry_in_order() -> None:
    rt = FeederRuntime("F1", SETTINGS)
    rt.apply(tel(T0, cid="C2"), raw(CHARGER_TELEMETRY), wall_ms=1_000)
    assert rt.held and "C2" not in rt.dispatcher.sessions
    rt.apply(reg("C2"), raw(CHARGER_REGISTRY), wall_ms=31_500)
    assert not rt.held and "C2" in rt.dispatcher.sessions


def test_grid_signal_applies_at_the_first_plan_after_it_was_issued() -> None:
    rt = FeederRuntime("F1", SETTINGS)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    sig = GridSignal(signal_id="g1", feeder_id="F1", issued_at=T0 + 20 * MIN, valid_from=T0 + 20 * MIN,
                     valid_until=T0 + 120 * MIN, import_limit_kw=3.0)
    rt.apply(sig, raw("evgrid.grid.signals"))
    assert rt.inbox
    rt.apply(tel(T0 + 16 * MIN), raw(CHARGER_TELEMETRY), wall_ms=40_000)
    assert rt.inbox, "not applied before its issue time"
    rt.apply(tel(T0 + 31 * MIN), raw(CHARGER_TELEMETRY), wall_ms=40_000)
    assert not rt.inbox


def test_stale_plans_are_skipped_when_catching_up_a_backlog() -> None:
    live = Settings(interval_minutes=15, max_plan_lag_seconds=60)
    rt = FeederRuntime("F1", live)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    wall = T0 + 10 * 60 * MIN  # ten hours after the telemetry's event time
    rt.apply(tel(T0 + 1), raw(CHARGER_TELEMETRY), wall_ms=wall)
    out = rt.apply(tel(T0 + 61 * MIN), raw(CHARGER_TELEMETRY), wall_ms=wall)
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
    a, b = FeederWorker(SETTINGS, clock=lambda: WALL), FeederWorker(SETTINGS, clock=lambda: WALL)
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
    w = FeederWorker(SETTINGS, clock=lambda: WALL)
    w.process([RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", codec.encode("ChargerRegistration", reg().to_avro()), T0),
               RawMessage(METER_READINGS, 0, 1, b"F1", codec.encode("MeterReading", meter(T0).to_avro()), T0),
               RawMessage(CHARGER_TELEMETRY, 0, 2, b"F1", codec.encode("ChargerTelemetry",
                                                                       tel(T0 + 99 * MIN).to_avro()), T0)],
              lambda f: None)
    assert w.counters()["held_telemetry"] == 1
    emit: Emit = w.tick(force=True)
    assert w.counters()["held_telemetry"] == 0 and emit.checkpoints
