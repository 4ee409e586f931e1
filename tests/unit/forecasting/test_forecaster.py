"""The online forecaster: progressive validation, restarts, intervals, clipping, contracts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from streams.contracts.models import DemandForecast, WeatherObservation
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig
from tests.unit.forecasting.conftest import T0, Q, intervals, synthetic_load


def run(fc: FeederForecaster, values: np.ndarray, start: int = T0) -> list:
    return [fc.update(iv) for iv in intervals(values, start)]


def test_forecast_shape_and_contract(load_21d: np.ndarray) -> None:
    fc = FeederForecaster(ForecasterConfig(horizon=96))
    res = run(fc, load_21d[:800])[-1]
    assert res.issued_at == T0 + 800 * Q
    assert res.kw.shape == res.lower_kw.shape == res.upper_kw.shape == (96,)
    assert np.all(res.lower_kw <= res.kw) and np.all(res.kw <= res.upper_kw)
    record = res.to_contract("F1")
    assert isinstance(record, DemandForecast)
    assert [p.step for p in record.points] == list(range(1, 97))
    assert record.points[0].start == res.issued_at and record.points[1].start == res.issued_at + Q
    assert record.model_id == "river-blr-v2" and record.coverage == 0.9
    for c in (0.8, 0.9, 0.95):
        lo, hi = res.bands[c]
        assert np.all(lo <= res.kw) and np.all(res.kw <= hi)
    assert np.all(res.bands[0.95][1] >= res.bands[0.8][1]) and np.all(res.bands[0.95][0] <= res.bands[0.8][0])
    # the naive baselines are what they claim to be
    assert res.naive_day_kw[0] == pytest.approx(load_21d[800 - 96])
    assert res.naive_week_kw[5] == pytest.approx(load_21d[805 - 672])


def test_scores_the_forecasts_issued_before_learning(load_21d: np.ndarray) -> None:
    cfg = ForecasterConfig(warmup_intervals=0, monitor_horizons=(1, 4))
    fc = FeederForecaster(cfg)
    results = run(fc, load_21d)
    acc = fc.accuracy()
    for h in (1, 4):
        # the forecast issued after interval i for interval i + h, scored once both naives exist (i + h >= 672)
        issued = [i for i in range(len(load_21d) - h) if i + h >= 672]
        errs = [abs(load_21d[i + h] - results[i].kw[h - 1]) for i in issued]
        assert acc[h].n == len(issued)
        assert acc[h].mae == pytest.approx(np.mean(errs), rel=1e-12)


def test_learns_to_beat_seasonal_naive_on_synthetic_load() -> None:
    load = synthetic_load(35, seed=3)
    fc = FeederForecaster(ForecasterConfig(warmup_intervals=14 * 96))
    run(fc, load)
    acc = fc.accuracy()
    assert acc[1].skill > 0.3
    assert acc[16].skill > 0.0
    assert 0.75 < acc[1].coverage < 0.97


def test_restart_from_pickle_gives_identical_forecasts(load_21d: np.ndarray) -> None:
    fc = FeederForecaster(ForecasterConfig(holiday_country="US", timezone="America/New_York"))
    run(fc, load_21d[:1000])
    fc.observe_weather(WeatherObservation(station_id="w", timestamp=T0 + 1000 * Q, air_temperature_c=4.0,
                                          ghi_wm2=120.0))
    restored = pickle.loads(pickle.dumps(fc))
    a = run(fc, load_21d[1000:1100], T0 + 1000 * Q)
    b = run(restored, load_21d[1000:1100], T0 + 1000 * Q)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.kw, y.kw)
        assert np.array_equal(x.lower_kw, y.lower_kw) and np.array_equal(x.upper_kw, y.upper_kw)
        assert all(np.array_equal(x.bands[c][i], y.bands[c][i]) for c in (0.8, 0.95) for i in (0, 1))
    assert fc.accuracy() == restored.accuracy()
    # ~35 kB river models, ~40 kB issued-forecast ring (float32), ~45 kB quantile trackers, ~20 kB features,
    # ~166 kB hour-and-day-type medians (96 horizons x 72 bins x q, mae, n)
    assert len(pickle.dumps(fc)) < 400_000


def test_missing_intervals_keep_the_clock_but_do_not_learn(load_21d: np.ndarray) -> None:
    fc = FeederForecaster()
    run(fc, load_21d[:800])
    w_before = fc.model.w.copy()  # type: ignore[union-attr]
    res = run(fc, np.full(3, np.nan), T0 + 800 * Q)
    assert np.array_equal(fc.model.w, w_before)  # type: ignore[union-attr]
    assert res[-1].issued_at == T0 + 803 * Q and res[-1].reporting_share == 0.0
    assert np.all(np.isfinite(res[-1].kw))
    with pytest.raises(ValueError):
        fc.update(intervals(np.ones(1), T0 + 802 * Q)[0])  # not after the last closed interval


def test_predictions_clipped_to_zero_and_twice_the_running_peak() -> None:
    rng = np.random.default_rng(7)
    load = np.where(rng.random(21 * 96) < 0.05, rng.uniform(50, 100, 21 * 96), 0.0)  # rare bursts
    load[10] = 100.0
    fc = FeederForecaster()
    lows, highs = [], []
    for iv in intervals(load):
        res = fc.update(iv)
        cap = 2 * fc.peak_kw
        assert res.kw.min() >= 0 and res.lower_kw.min() >= 0
        assert res.kw.max() <= cap and res.upper_kw.max() <= cap
        lows.append(res.kw.min())
        highs.append(res.upper_kw.max())
    assert min(lows) == 0.0  # clipping was active


def test_interval_coverage_close_to_nominal() -> None:
    load = synthetic_load(42, seed=11, noise=0.1)
    fc = FeederForecaster(ForecasterConfig(coverage=0.8, monitor_horizons=(1, 16, 96)))
    run(fc, load)
    for score in fc.accuracy().values():
        assert 0.7 < score.coverage < 0.9


def test_weather_forecasts_are_used_when_load_depends_on_temperature() -> None:
    days = 35
    rng = np.random.default_rng(5)
    temp = np.repeat(rng.normal(5, 6, days), 96)  # daily temperature, unpredictable from the load
    base = synthetic_load(days, seed=5, noise=0.02)
    load = base + 3.0 * np.maximum(0, 15 - temp)
    cfg = ForecasterConfig(monitor_horizons=(16,))
    blind, seeing = FeederForecaster(cfg), FeederForecaster(cfg)
    for i, iv in enumerate(intervals(load)):
        if i % 96 == 0:  # a day-ahead forecast of the next two days, issued at midnight
            for k in range(i, min(i + 192, len(load))):
                seeing.observe_weather(WeatherObservation(
                    station_id="w", timestamp=iv.start, forecast_for=T0 + k * Q, air_temperature_c=float(temp[k]),
                    ghi_wm2=0.0))
        seeing.observe_weather(WeatherObservation(station_id="w", timestamp=iv.start,
                                                  air_temperature_c=float(temp[i]), ghi_wm2=0.0))
        blind.update(iv)
        seeing.update(iv)
    assert seeing.accuracy()[16].mae < 0.8 * blind.accuracy()[16].mae


@pytest.mark.parametrize("model", ["river-linear", "naive-day", "naive-week"])
def test_other_model_families_run(model: str, load_21d: np.ndarray) -> None:
    fc = FeederForecaster(ForecasterConfig(model=model))
    res = run(fc, load_21d[:900])[-1]
    assert np.all(np.isfinite(res.kw)) and res.kw.max() <= 2 * fc.peak_kw
    if model == "naive-day":
        assert res.kw[0] == pytest.approx(load_21d[900 - 96])


def test_unknown_model_rejected() -> None:
    with pytest.raises(ValueError, match="unknown forecast model"):
        ForecasterConfig(model="prophet")
