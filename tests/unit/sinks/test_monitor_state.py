"""MonitorState: records in, the points they complete out (pure, event time only)."""

from __future__ import annotations

from streams.contracts.models import (
    ChargerSetpoint,
    ChargerTelemetry,
    DemandForecast,
    ForecastPoint,
    GridSignal,
    IncentiveEvent,
    IncentiveResponse,
    MeterReading,
)
from streams.sinks.monitor_state import MonitorConfig, MonitorState, fleet_flexibility

T0 = 1_767_571_200_000
STEP = 900_000


def _state() -> MonitorState:
    return MonitorState(MonitorConfig(grace_ms=0, horizons_min=(15,), season_ms=2 * STEP,
                                      default_import_limit_kw=500.0, default_export_limit_kw=0.0))


def _reading(meter: str, ts: int, kw: float) -> MeterReading:
    return MeterReading(meter_id=meter, feeder_id="f1", timestamp=ts, active_power_kw=kw)


def _tel(charger: str, ts: int, kw: float, connected: bool = True, **kw_args: float) -> ChargerTelemetry:
    return ChargerTelemetry(charger_id=charger, feeder_id="f1", timestamp=ts, connected=connected, power_kw=kw,
                            max_charge_kw=11.0, **kw_args)  # type: ignore[arg-type]


def test_closed_interval_gives_load_with_the_signal_limit_in_force() -> None:
    st = _state()
    st.observe(GridSignal(signal_id="s", feeder_id="f1", issued_at=T0, valid_from=T0 + STEP, valid_until=T0 + 9 * STEP,
                          import_limit_kw=120.0))
    assert st.observe(_reading("m1", T0 + STEP, 10.0)) == []  # stamped at the end of [T0, T0+STEP)
    st.observe(_reading("m2", T0 + STEP, 30.0))
    out = st.observe(_reading("m1", T0 + 2 * STEP, 50.0))  # closes [T0, T0+STEP): default limit
    out += st.observe(_reading("m1", T0 + 3 * STEP, 60.0))  # closes [T0+STEP, ...): the signal's limit
    got = [(p.time_ms, p.field("load_kw"), p.field("import_limit_kw"), p.field("meters_reporting"))
           for p in out if p.measurement == "feeder"]
    assert got == [(T0, 40.0, 500.0, 2), (T0 + STEP, 100.0, 120.0, 1)]  # 1 of 2 meters: scaled by the share
    assert st.limits("f1", T0) == (500.0, 0.0)


def test_signal_read_after_the_intervals_it_covers_restates_their_limits() -> None:
    st = _state()
    for k in range(1, 5):
        st.observe(_reading("m1", T0 + k * STEP, 10.0 * k))  # a reading at t ends [t - STEP, t)
    out = st.observe(GridSignal(signal_id="s", feeder_id="f1", issued_at=T0 - STEP, valid_from=T0 + STEP,
                                valid_until=T0 + 9 * STEP, import_limit_kw=120.0))
    got = [(p.time_ms, p.field("load_kw"), p.field("import_limit_kw")) for p in out]
    assert got == [(T0 + STEP, 20.0, 120.0), (T0 + 2 * STEP, 30.0, 120.0)]  # not [T0, T0+STEP): not covered


def test_forecast_read_after_its_actual_is_still_scored() -> None:
    st = _state()
    st.observe(_reading("m1", T0 + STEP, 40.0))
    st.observe(_reading("m1", T0 + 2 * STEP, 40.0))  # actual of [T0, T0+STEP) known: 40
    fc = DemandForecast(feeder_id="f1", issued_at=T0 - STEP, step_ms=STEP, model_id="m", coverage=0.9,
                        reporting_share=1.0, points=[ForecastPoint(step=1, start=T0, kw=45.0, lower_kw=30.0,
                                                                   upper_kw=50.0)])
    out = st.observe(fc)
    assert [p.measurement for p in out] == ["forecast", "forecast_error"]
    assert out[1].field("abs_error_kw") == 5.0 and out[1].field("covered") == 1


def test_setpoint_buckets_are_rewritten_complete() -> None:
    st = _state()

    def sp(charger: str, kw: float, t: int) -> ChargerSetpoint:
        return ChargerSetpoint(charger_id=charger, feeder_id="f1", sequence=0, setpoint_kw=kw, valid_from=t,
                               valid_until=t + STEP, fallback_kw=0.0, reason="optimal", plan_id="p", issued_at=t)

    st.observe(sp("c1", 7.0, T0 + 10))
    (first,) = st.flush()
    st.observe(sp("c2", -3.0, T0 + 20))
    (second,) = st.flush()
    assert (first.time_ms, first.field("count")) == (T0, 1)
    assert (second.time_ms, second.field("count"), second.field("charge_kw"), second.field("discharge_kw")) == (
        T0, 2, 7.0, 3.0)
    assert st.flush() == []  # nothing changed


def test_fleet_snapshot_per_boundary_and_accepted_offer_is_active() -> None:
    st = _state()
    st.observe(_tel("c1", T0 + 60_000, 7.0))
    st.observe(_tel("c2", T0 + 120_000, -2.0, max_discharge_kw=5.0))
    offer = IncentiveEvent(offer_id="o1", feeder_id="f1", charger_id="c1", customer_id="u1",
                           action="delay_charging", window_start=T0, window_end=T0 + 4 * STEP, expected_kwh=2.0,
                           compensation=0.2, expires_at=T0 + STEP, issued_at=T0, reason="r")
    st.observe(offer)
    st.observe(IncentiveResponse(offer_id="o1", feeder_id="f1", customer_id="u1", accepted=True,
                                 responded_at=T0 + 5))
    out = st.observe(_tel("c1", T0 + 2 * STEP + 5, 7.0))  # passes two boundaries
    fleet = [p for p in out if p.measurement == "fleet"]
    assert [p.time_ms for p in fleet] == [T0 + STEP, T0 + 2 * STEP]
    assert fleet[0].field("charge_kw") == 7.0 and fleet[0].field("discharge_kw") == 2.0
    assert fleet[0].field("connected_cars") == 2 and fleet[1].field("stale_chargers") == 2  # 28 min unheard
    flex = [p for p in out if p.measurement == "flexibility"]
    assert len(flex) == 2 and flex[0].field("up_kw") == 4.0 + 13.0 and flex[0].field("down_kw") == 7.0 + 3.0
    inc = {p.time_ms: p for p in st.flush() if p.measurement == "incentives"}
    assert inc[T0].field("offered") == 1 and inc[T0].field("accepted") == 1
    assert inc[T0 + STEP].field("active") == 1 and inc[T0 + STEP].field("offered") == 0


def test_fleet_flexibility_caps_energy_by_battery_room_and_reserve() -> None:
    t = _tel("c1", T0, 0.0, soc_pct=90.0, battery_capacity_kwh=50.0, reserve_soc_pct=80.0, max_discharge_kw=10.0)
    (p,) = fleet_flexibility("f1", T0, 3_600_000, [t], 900_000).points
    assert p.up_kw == 11.0 and p.energy_up_kwh == 5.0  # 10 % of 50 kWh room
    assert p.down_kw == 10.0 and p.energy_down_kwh == 5.0  # 10 % above the reserve
    stale = fleet_flexibility("f1", T0 + 2_000_000, 900_000, [t], 900_000).points[0]
    assert stale.up_kw == 0.0 and stale.baseline_kw == 0.0
