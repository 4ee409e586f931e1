"""The metric vocabulary: points, line protocol, per-feeder and per-worker metrics."""

from __future__ import annotations

import math

import pytest
from influxdb_client import Point, WritePrecision

from streams.contracts.models import (
    ChargerSetpoint,
    ChargerTelemetry,
    DemandForecast,
    Flexibility,
    FlexibilityPoint,
    ForecastPoint,
    IncentiveEvent,
    IncentiveResponse,
    UtilityEvent,
)
from streams.sinks.metrics import (
    MEASUREMENTS,
    ForecastErrorTracker,
    MetricPoint,
    PipelineCounters,
    consumer_lag_points,
    feeder_point,
    feeder_state_points,
    fleet_point,
    flexibility_point,
    forecast_error_point,
    forecast_points,
    horizon_label,
    incentive_point,
    make_point,
    setpoint_points,
    sink_point,
    utility_event_point,
)

T0 = 1_700_000_100_000 - 1_700_000_100_000 % 900_000  # an interval boundary
STEP = 900_000


def _forecast(feeder: str, issued: int, base: float, model: str = "linear-lag-v1", steps: int = 96) -> DemandForecast:
    return DemandForecast(feeder_id=feeder, issued_at=issued, step_ms=STEP, model_id=model, coverage=0.9,
                          reporting_share=1.0, points=[
                              ForecastPoint(step=k, start=issued + (k - 1) * STEP, kw=base + k, lower_kw=base + k - 5,
                                            upper_kw=base + k + 5) for k in range(1, steps + 1)])


def _telemetry(cid: str, ts: int, kw: float, connected: bool = True) -> ChargerTelemetry:
    return ChargerTelemetry(charger_id=cid, feeder_id="f1", timestamp=ts, connected=connected, power_kw=kw,
                            max_charge_kw=11.0, max_discharge_kw=11.0)


def _setpoint(cid: str, kw: float, reason: str = "optimal", feeder: str = "f1") -> ChargerSetpoint:
    return ChargerSetpoint(charger_id=cid, feeder_id=feeder, sequence=1, setpoint_kw=kw, valid_from=T0,
                           valid_until=T0 + STEP, fallback_kw=0.0, reason=reason, plan_id="p", issued_at=T0)  # type: ignore[arg-type]


# --- points and line protocol ---------------------------------------------------------------------


@pytest.mark.parametrize(("tags", "fields"), [
    ({"feeder": "f 1,a=b"}, {"load_kw": 1.5, "n": 3}),
    ({"feeder": "plain"}, {"label": 'say "hi"\\', "x": -0.000125}),
    ({"worker": "w=1"}, {"count": 0, "big": 1e300}),
])
def test_line_protocol_matches_influxdb_client_rendering(tags: dict[str, str], fields: dict[str, object]) -> None:
    p = make_point("my meas,x", T0, tags, fields)  # type: ignore[arg-type]
    assert p is not None
    ref = Point("my meas,x").time(T0, WritePrecision.MS)
    for k, v in tags.items():
        ref = ref.tag(k, v)
    for k, v in fields.items():
        ref = ref.field(k, v)
    assert p.to_line() == ref.to_line_protocol()


def test_backslashes_in_names_and_tags_stay_literal() -> None:
    p = make_point("m", T0, {"feeder": "f\\2"}, {"label": "a\\b"})
    assert p is not None and p.to_line() == 'm,feeder=f\\2 label="a\\\\b" ' + str(T0)


def test_make_point_drops_empty_values_and_sorts() -> None:
    p = make_point("m", T0, {"b": "2", "a": "1", "empty": "", "none": None},
                   {"z": 1.0, "nan": math.nan, "inf": math.inf, "missing": None, "a": 2})
    assert p == MetricPoint("m", (("a", "1"), ("b", "2")), (("a", 2), ("z", 1.0)), T0)
    assert make_point("m", T0, {"a": "1"}, {"x": None, "y": math.nan}) is None


def test_make_point_rejects_bools_and_empty_measurement() -> None:
    with pytest.raises(TypeError):
        make_point("m", T0, {}, {"ok": True})
    with pytest.raises(ValueError):
        make_point("", T0, {}, {"x": 1.0})


@pytest.mark.parametrize(("lead", "label"), [(900_000, "15m"), (3_600_000, "1h"), (5_400_000, "90m"),
                                              (86_400_000, "24h"), (30_000, "30s")])
def test_horizon_label(lead: int, label: str) -> None:
    assert horizon_label(lead) == label


def test_horizon_label_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        horizon_label(0)


# --- per feeder -------------------------------------------------------------------------------------


def test_feeder_point_headroom_signs() -> None:
    over = feeder_point("f1", T0, 420.0, import_limit_kw=400.0, export_limit_kw=50.0, meters_reporting=12)
    assert over is not None
    assert over.field("import_headroom_kw") == pytest.approx(-20.0)
    assert over.field("export_headroom_kw") == pytest.approx(470.0)
    assert over.field("meters_reporting") == 12
    reverse = feeder_point("f1", T0, -60.0, import_limit_kw=400.0, export_limit_kw=50.0)
    assert reverse is not None and reverse.field("export_headroom_kw") == pytest.approx(-10.0)
    no_limits = feeder_point("f1", T0, 10.0, import_limit_kw=None, export_limit_kw=None)
    assert no_limits is not None and no_limits.field("import_headroom_kw") is None


def test_forecast_points_keep_only_selected_horizons() -> None:
    pts = forecast_points(_forecast("f1", T0, 100.0), horizons_min=(15, 60, 1440))
    assert [(p.tag("horizon"), p.time_ms) for p in pts] == [
        ("15m", T0), ("1h", T0 + 3 * STEP), ("24h", T0 + 95 * STEP)]
    assert pts[1].field("kw") == 104.0 and pts[1].tag("model") == "linear-lag-v1"
    assert pts[1].field("lower_kw") == 99.0 and pts[1].field("upper_kw") == 109.0


def test_forecast_error_point_fields() -> None:
    p = forecast_error_point("f1", T0, "1h", "m", actual_kw=100.0, forecast_kw=90.0, naive_kw=130.0,
                             lower_kw=95.0, upper_kw=120.0)
    assert p is not None
    assert p.field("abs_error_kw") == 10.0 and p.field("naive_abs_error_kw") == 30.0
    assert p.field("covered") == 1
    q = forecast_error_point("f1", T0, "1h", "m", actual_kw=100.0, forecast_kw=130.0, naive_kw=None,
                             lower_kw=120.0, upper_kw=140.0)
    assert q is not None and q.field("covered") == 0 and q.field("naive_abs_error_kw") is None


def test_fleet_point_counts_stale_and_splits_charge_and_discharge() -> None:
    tel = [_telemetry("c1", T0 - 60_000, 7.0), _telemetry("c2", T0 - 30_000, -5.0),
           _telemetry("c3", T0 - 10_000, 0.0, connected=False), _telemetry("c4", T0 - 2_000_000, 11.0)]
    p = fleet_point("f1", T0, tel, stale_after_ms=900_000)
    assert p is not None
    assert p.field("charge_kw") == 7.0 and p.field("discharge_kw") == 5.0 and p.field("net_kw") == 2.0
    assert p.field("connected_cars") == 2 and p.field("chargers_reporting") == 3
    assert p.field("stale_chargers") == 1 and p.field("stale_share") == 0.25
    empty = fleet_point("f1", T0, [], stale_after_ms=900_000)
    assert empty is not None and empty.field("stale_share") == 0.0


def test_flexibility_point_uses_first_interval() -> None:
    flex = Flexibility(feeder_id="f1", issued_at=T0, step_ms=STEP, points=[
        FlexibilityPoint(start=T0, baseline_kw=30.0, up_kw=10.0, down_kw=25.0, energy_up_kwh=80.0,
                         energy_down_kwh=40.0),
        FlexibilityPoint(start=T0 + STEP, baseline_kw=1.0, up_kw=1.0, down_kw=1.0, energy_up_kwh=1.0,
                         energy_down_kwh=1.0)])
    p = flexibility_point(flex)
    assert p is not None and p.time_ms == T0 and p.field("energy_up_kwh") == 80.0 and p.field("down_kw") == 25.0
    assert flexibility_point(Flexibility(feeder_id="f1", issued_at=T0, step_ms=STEP, points=[])) is None


def test_setpoint_points_group_by_reason_for_one_feeder() -> None:
    pts = setpoint_points("f1", T0, [_setpoint("a", 7.0), _setpoint("b", -3.0), _setpoint("c", 0.0, "unplugged"),
                                     _setpoint("d", 9.0, feeder="f2")])
    by_reason = {p.tag("reason"): p for p in pts}
    assert set(by_reason) == {"optimal", "unplugged"}
    assert by_reason["optimal"].field("count") == 2
    assert by_reason["optimal"].field("charge_kw") == 7.0 and by_reason["optimal"].field("discharge_kw") == 3.0
    assert by_reason["unplugged"].field("count") == 1


def test_incentive_point_counts() -> None:
    offers = [IncentiveEvent(offer_id=f"o{i}", feeder_id="f1", charger_id="c", customer_id="u", action="export",
                             window_start=T0, window_end=T0 + STEP, expected_kwh=2.5, compensation=1.25,
                             expires_at=T0, issued_at=T0, reason="peak") for i in range(3)]
    responses = [IncentiveResponse(offer_id="o0", feeder_id="f1", customer_id="u", accepted=True, responded_at=T0),
                 IncentiveResponse(offer_id="o1", feeder_id="f1", customer_id="u", accepted=False, responded_at=T0),
                 IncentiveResponse(offer_id="x", feeder_id="f2", customer_id="u", accepted=True, responded_at=T0)]
    p = incentive_point("f1", T0, offered=offers, responses=responses, active=1)
    assert p is not None
    assert (p.field("offered"), p.field("accepted"), p.field("declined"), p.field("active")) == (3, 1, 1, 1)
    assert p.field("offered_kwh") == 7.5 and p.field("compensation") == 3.75


def test_forecast_error_tracker_scores_against_seasonal_naive() -> None:
    day = 86_400_000
    tracker = ForecastErrorTracker(horizons_min=(15, 60), season_ms=day)
    # a day of actuals: flat 100 kW, so the naive forecast for the next day is 100
    for k in range(96):
        assert tracker.add_actual("f1", T0 + k * STEP, 100.0) == []
    tracker.add_forecast(_forecast("f1", T0 + day, 100.0))  # step k forecasts 100 + k
    assert tracker.pending() == 2  # the 15m and the 1h point target different intervals
    first = tracker.add_actual("f1", T0 + day, 120.0)
    assert [(p.tag("horizon"), p.field("abs_error_kw"), p.field("naive_abs_error_kw")) for p in first] == [
        ("15m", 19.0, 20.0)]
    assert first[0].field("covered") == 0
    later = tracker.add_actual("f1", T0 + day + 3 * STEP, 104.0)
    assert [(p.tag("horizon"), p.field("abs_error_kw")) for p in later] == [("1h", 0.0)]
    assert later[0].field("covered") == 1


def test_forecast_error_tracker_without_history_has_no_naive_and_prunes() -> None:
    tracker = ForecastErrorTracker(horizons_min=(15,), season_ms=86_400_000)
    tracker.add_forecast(_forecast("f1", T0, 50.0, steps=1))
    (p,) = tracker.add_actual("f1", T0, 55.0)
    assert p.field("naive_abs_error_kw") is None and p.field("abs_error_kw") == 4.0
    tracker.add_forecast(_forecast("f1", T0 + STEP, 50.0, steps=1))  # never gets an actual
    tracker.add_actual("f1", T0 + 10 * 86_400_000, 1.0)
    assert tracker.pending() == 0


# --- per worker --------------------------------------------------------------------------------------


def test_pipeline_counters_rates_percentiles_and_reset() -> None:
    c = PipelineCounters("w1")
    c.start(T0)
    for _ in range(50):
        c.event("meter")
    c.event("telemetry", 10)
    c.dead_letter("invalid_value", 5)
    for ms in range(1, 101):
        c.latency("setpoint", float(ms))
    c.lag("meter", 0, 7)
    c.lag("meter", 1, 3)
    pts = c.snapshot(T0 + 10_000)
    by = {(p.measurement, p.tag("topic") or p.tag("reason") or p.tag("stage")): p for p in pts}
    assert by[("throughput", "meter")].field("events_per_s") == 5.0
    assert by[("throughput", "telemetry")].field("events") == 10
    assert by[("dead_letters", "invalid_value")].field("per_s") == 0.5
    lat = by[("latency", "setpoint")]
    assert (lat.field("p50_ms"), lat.field("p95_ms"), lat.field("max_ms")) == (50.0, 95.0, 100.0)
    assert lat.field("count") == 100
    assert by[("consumer_lag", "meter")].field("lag") == 10
    assert by[("consumer_lag", "meter")].field("max_partition_lag") == 7
    quiet = {(p.measurement, p.tag("topic") or p.tag("reason")): p for p in c.snapshot(T0 + 20_000)}
    assert quiet[("throughput", "meter")].field("events") == 0
    assert quiet[("dead_letters", "invalid_value")].field("per_s") == 0.0
    assert ("latency", None) not in quiet
    assert quiet[("consumer_lag", "meter")].field("lag") == 10


def test_pipeline_counters_without_start_omit_rates_and_bound_samples() -> None:
    c = PipelineCounters("w1", max_latency_samples=10)
    c.event("meter", 3)
    for ms in range(100):
        c.latency("setpoint", float(ms))
    pts = {p.measurement: p for p in c.snapshot(T0)}
    assert pts["throughput"].field("events_per_s") is None and pts["throughput"].field("events") == 3
    assert pts["latency"].field("count") == 100
    assert pts["latency"].field("max_ms") == 99.0  # the newest samples overwrote the oldest
    assert pts["latency"].field("p50_ms") >= 90.0  # type: ignore[operator]


def test_every_point_uses_the_documented_schema() -> None:
    c = PipelineCounters("w")
    c.start(T0)
    c.event("t")
    c.dead_letter("r")
    c.latency("s", 1.0)
    c.lag("t", 0, 1)
    pts: list[MetricPoint | None] = [
        feeder_point("f1", T0, 1.0, import_limit_kw=2.0, export_limit_kw=3.0, meters_reporting=1),
        *forecast_points(_forecast("f1", T0, 1.0)),
        forecast_error_point("f1", T0, "1h", "m", actual_kw=1.0, forecast_kw=2.0, naive_kw=3.0, lower_kw=0.0,
                             upper_kw=4.0),
        fleet_point("f1", T0, [_telemetry("c", T0, 1.0)], 900_000),
        *setpoint_points("f1", T0, [_setpoint("a", 1.0)]),
        incentive_point("f1", T0, offered=[], responses=[], active=0),
        *consumer_lag_points("w", T0, {"t": {0: 1}}),
        *feeder_state_points("w", T0, {b"f1": 9_000}, {b"f1": 2}, 0, 0),
        sink_point("w", T0, dropped=1, buffered=2, written=3, rejected=4, write_errors=5),
        *c.snapshot(T0 + 1000),
        utility_event_point(UtilityEvent(event_id="e", kind="backup_ended", feeder_id="f1", site_id="s", at=T0,
                                         duration_s=1.0, message="m")),
    ]
    seen = set()
    for p in pts:
        assert p is not None
        tags, fields = MEASUREMENTS[p.measurement]
        assert {k for k, _ in p.tags} <= set(tags)
        assert {k for k, _ in p.fields} <= set(fields)
        seen.add(p.measurement)
    assert seen == set(MEASUREMENTS) - {"flexibility"}


def test_schema_documentation_names_every_measurement_tag_and_field() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "grafana" / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `")}
    for measurement, (tags, fields) in MEASUREMENTS.items():
        assert measurement in rows, f"grafana/README.md does not document {measurement}"
        for name in (*tags, *fields):
            assert f"`{name}`" in rows[measurement], f"{measurement}.{name} is not documented"
