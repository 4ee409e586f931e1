"""Offline evaluation that runs the streaming code path: CSV rows become meter readings, go through the
``IntervalAggregator`` and the ``FeederForecaster`` exactly as on the broker, and every issued forecast is
scored against the load that later closes."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from streams.contracts.models import WeatherObservation
from streams.forecasting.aggregate import IntervalAggregator
from streams.forecasting.csvio import LoadRow, WeatherRow
from streams.forecasting.forecaster import BAND_COVERAGES, FeederForecaster, ForecasterConfig
from streams.forecasting.metrics import HorizonScore, Scoreboard

__all__ = ["BASELINES", "EvalReport", "evaluate", "median_step_ms"]

BASELINES = ("naive-day", "naive-week")


@dataclass
class EvalReport:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    model : str
        Model family evaluated.
    scores : dict[(model, horizon), HorizonScore]
        Over all scored forecasts (after the warm-up), for ``model`` and the seasonal-naive baselines.
    monthly : dict[(model, horizon, 'YYYY-MM'), HorizonScore]
        The same per month of the target (UTC).
    us_per_interval : float
        Mean wall time of ``FeederForecaster.update`` (learn + full-horizon forecast with intervals), µs.
    intervals, out_of_range : int
        Closed intervals processed; forecast values outside [0, 2 x running peak] (must be 0).
    """

    model: str
    scores: dict[tuple[str, int], HorizonScore]
    monthly: dict[tuple[str, int, str], HorizonScore]
    us_per_interval: float
    intervals: int
    out_of_range: int = 0
    horizons: tuple[int, ...] = field(default=())


def median_step_ms(rows: list[LoadRow]) -> int:
    """Median spacing of the load rows, ms (the period each ``kw`` value averages over)."""
    if len(rows) < 2:
        raise ValueError("need at least two load rows")
    return int(np.median(np.diff([r.timestamp for r in rows])))


class _Reading:
    __slots__ = ("active_power_kw", "meter_id", "timestamp")

    def __init__(self, timestamp: int, kw: float) -> None:
        self.meter_id = "csv"
        self.timestamp = timestamp
        self.active_power_kw = kw


def _month(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m")


def evaluate(load: list[LoadRow], config: ForecasterConfig, horizons: tuple[int, ...] = (1, 4, 16, 96),
             weather: list[WeatherRow] | None = None, *, weather_as_forecast: bool = False,
             warmup_days: float = 14.0) -> EvalReport:
    """Run the forecaster over ``load`` and score it.

    Parameters
    ----------
    load : list[LoadRow]
        Sorted load rows; ``timestamp`` is the start of the period its ``kw`` averages over.
    config : ForecasterConfig
        Forecaster configuration (model, interval, horizon, calendar).
    horizons : tuple[int, ...]
        Horizons (steps) to score; at most ``config.horizon``.
    weather : list[WeatherRow], optional
        Weather observations, fed to the forecaster as soon as event time reaches them.
    weather_as_forecast : bool
        Also feed each weather row as a forecast issued one day before it is valid (an ideal forecast).
    warmup_days : float
        Forecasts issued in the first days are not scored.
    """
    horizons = tuple(h for h in horizons if 1 <= h <= config.horizon)
    step = median_step_ms(load)
    agg = IntervalAggregator(config.interval_ms, grace_ms=0, max_gap_intervals=10**9)
    fc = FeederForecaster(config)
    warmup_ms = int(warmup_days * 86_400_000)
    first = load[0].timestamp
    scores, monthly = Scoreboard(), Scoreboard()
    Band = tuple[tuple[float, float, float], ...]
    pending: dict[int, list[tuple[str, int, float, float, float, float, float, Band]]] = defaultdict(list)
    wx = sorted(weather or [], key=lambda w: w.timestamp)
    feed: list[tuple[int, WeatherObservation]] = []
    for w in wx:
        obs = WeatherObservation(station_id="csv", timestamp=w.timestamp, air_temperature_c=w.temperature_c,
                                 ghi_wm2=w.ghi_wm2, wind_speed_ms=w.wind_ms, cloud_cover_pct=w.cloud_cover_pct)
        feed.append((w.timestamp, obs))
        if weather_as_forecast:
            issued = w.timestamp - 86_400_000
            feed.append((issued, obs.model_copy(update={"timestamp": max(issued, 946_684_800_000),
                                                        "forecast_for": w.timestamp})))
    feed.sort(key=lambda p: p[0])
    wi = 0
    elapsed = 0.0
    n = 0
    out_of_range = 0
    name = config.model
    for row in load:
        agg.add(_Reading(row.timestamp + step, row.kw))
        for interval in agg.advance():
            while wi < len(feed) and feed[wi][0] <= interval.end:
                fc.observe_weather(feed[wi][1])
                wi += 1
            actual = interval.kw
            for model, h, pred, nd, nw, lo, hi, bands in pending.pop(interval.start, ()):
                if actual is None:
                    continue
                scores.add((model, h), actual, pred, nd, nw, lo, hi, bands)
                monthly.add((model, h, _month(interval.start)), actual, pred, nd, nw, lo, hi)
            t0 = time.perf_counter()
            res = fc.update(interval)
            elapsed += time.perf_counter() - t0
            n += 1
            cap = 2.0 * fc.peak_kw
            out_of_range += int(np.sum((res.kw < 0) | (res.kw > cap) | (res.lower_kw < 0) | (res.upper_kw > cap)))
            if interval.end - first < warmup_ms:
                continue
            starts = res.starts()
            for h in horizons:
                i = h - 1
                nd, nw = float(res.naive_day_kw[i]), float(res.naive_week_kw[i])
                target = int(starts[i])
                bands = tuple((c, float(res.bands[c][0][i]), float(res.bands[c][1][i])) for c in BAND_COVERAGES)
                pending[target].append((name, h, float(res.kw[i]), nd, nw, float(res.lower_kw[i]),
                                        float(res.upper_kw[i]), bands))
                pending[target].append(("naive-day", h, nd, nd, nw, math.nan, math.nan, ()))
                pending[target].append(("naive-week", h, nw, nd, nw, math.nan, math.nan, ()))
    return EvalReport(
        model=name, scores=scores.summary(), monthly=monthly.summary(),  # type: ignore[arg-type]
        us_per_interval=elapsed / max(n, 1) * 1e6, intervals=n, out_of_range=out_of_range, horizons=horizons)
