"""A feeder with meters and no charger yet (onboarded before its first EV, or a backtest's history before the first
session) keeps ``max_telemetry_lag_hours`` of meter history: its checkpoint does not grow with time, and its first
plan is the one it would have made keeping all its history, whether that telemetry is read after the meters or
ahead of them (held)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, SETPOINTS
from streams.pipeline import statecodec
from streams.pipeline.feeder import FeederRuntime
from streams.settings import Settings, feeder_config
from tests.fixtures.feeder_records import T0, reg, tel
from tests.unit.pipeline.test_feeder_runtime import MIN, meter, raw

HOUR = 60 * MIN
DAY = 24 * HOUR


def _run(history_hours: int, days: int, ahead: bool) -> tuple[FeederRuntime, dict[int, int], list[object]]:
    cfg = feeder_config(Settings(interval_minutes=15, grace_seconds=300, max_telemetry_lag_hours=history_hours))
    rt = FeederRuntime("F1", cfg)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    sizes: dict[int, int] = {}
    out: list[object] = []
    start = T0 - days * DAY
    for i in range(days * 96 * 3):  # every 5 minutes, a daily shape with an evening peak that grows
        ts = start + i * 5 * MIN
        hour = (i // 12) % 24
        out += rt.apply(meter(ts, kw=20.0 + (15.0 if 17 <= hour < 21 else 0.0) + i / 1000), raw(METER_READINGS, i),
                        wall_ms=ts)
        if ahead and i == 12:  # the charger's first report is read ahead of the meters and held
            out += rt.apply(tel(T0 + 5 * MIN), raw(CHARGER_TELEMETRY, 1), wall_ms=ts)
        if (i + 1) % (96 * 3) == 0:
            sizes[(i + 1) // (96 * 3)] = len(rt.dump()[0])
    if not ahead:
        out += rt.apply(tel(T0 + 5 * MIN), raw(CHARGER_TELEMETRY, 1), wall_ms=T0)
    out += rt.apply(meter(T0 + 30 * MIN), raw(METER_READINGS, 10**6), wall_ms=T0)
    return rt, sizes, [o[2] for o in out if isinstance(o, tuple) and o[0] == SETPOINTS]


@pytest.mark.parametrize("ahead", [False, True], ids=["telemetry-after-meters", "telemetry-held-ahead"])
def test_a_feeder_without_chargers_stops_growing_and_its_first_plan_is_unchanged(ahead: bool) -> None:
    bounded, sizes, setpoints = _run(history_hours=24, days=8, ahead=ahead)
    unbounded, grown, expected = _run(history_hours=10_000, days=8, ahead=ahead)
    assert sizes[7] <= 1.1 * sizes[2], sizes  # flat after the history window (day 8 ends with the first plan)
    assert grown[7] > 2.5 * grown[2], grown  # without the bound it grows with every day
    assert setpoints and setpoints == expected
    for d in (bounded.dispatcher, unbounded.dispatcher):  # the one wall-clock figure: how long HiGHS took
        assert d.plan is not None
        d.plan = replace(d.plan, solve_seconds=0.0)
    assert statecodec.encode(bounded.dispatcher) == statecodec.encode(unbounded.dispatcher)


@pytest.mark.parametrize("ahead", [False, True], ids=["no-telemetry", "next-telemetry-held"])
def test_a_feeder_that_has_planned_stays_bounded_while_its_meters_run_days_ahead(ahead: bool) -> None:
    # A broker backtest's worker released its first telemetry before the 21-day meter warm-up (issue 15's broker
    # run): with a charger active, forecasts were kept for every interval until the next plan (a 7.4 MB checkpoint)
    cfg = feeder_config(Settings(interval_minutes=15, grace_seconds=300, max_telemetry_lag_hours=24))
    rt = FeederRuntime("F1", cfg)
    rt.apply(reg(), raw(CHARGER_REGISTRY))
    for i in range(8):
        rt.apply(meter(T0 - HOUR + i * 15 * MIN), raw(METER_READINGS, i), wall_ms=T0)
    out = rt.apply(tel(T0 + 5 * MIN), raw(CHARGER_TELEMETRY, 1), wall_ms=T0)
    assert rt.active and any(isinstance(o, tuple) and o[0] == SETPOINTS for o in out)  # it has planned
    days = 5
    if ahead:  # the next report is read ahead of the meters: held until they pass it
        rt.apply(tel(T0 + days * DAY), raw(CHARGER_TELEMETRY, 2), wall_ms=T0)
        assert rt.held
    sizes: dict[int, int] = {}
    for i in range(days * 96):
        ts = T0 + HOUR + i * 15 * MIN
        rt.apply(meter(ts, kw=20.0 + (i % 96) / 10), raw(METER_READINGS, 100 + i), wall_ms=T0)
        if (i + 1) % 96 == 0:
            sizes[(i + 1) // 96] = len(rt.dump()[0])
    assert len(rt.forecasts) <= rt.history_ms // (15 * MIN) + 2
    assert sizes[4] <= 1.1 * sizes[2], sizes


def test_a_forecast_kept_by_an_older_checkpoint_is_planned_on_with_its_point_forecast_as_the_bound() -> None:
    """Forecasts are kept as (issued, step, kW, upper bound) since the near-term upper bound; a checkpoint from
    before holds (issued, step, kW): the plan then takes the point forecast for the bound too."""
    rt = FeederRuntime("F1", feeder_config(Settings(interval_minutes=15)))
    rt.forecasts = [(T0, 15 * MIN, [1.0, 2.0])]  # type: ignore[list-item]
    assert rt._history_until(T0) == (T0, 15 * MIN, [1.0, 2.0], [1.0, 2.0])
    rt.forecasts = [(T0, 15 * MIN, [1.0], [3.0]), (T0 + 15 * MIN, 15 * MIN, [4.0], [5.0])]
    assert rt._history_until(T0 + 15 * MIN) == (T0 + 15 * MIN, 15 * MIN, [4.0], [5.0])
    assert len(rt.forecasts) == 1  # the older one can no longer be picked
