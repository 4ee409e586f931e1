"""Online per-feeder demand forecaster: learn at every closed interval, then forecast the next horizon.

Order at each closed interval ``t`` (progressive validation): the forecasts issued earlier for ``t`` are
scored, the conformal quantiles are updated with the model's residuals on ``t`` (computed before it learns
``t``), the model and the 15-minute correction learn ``t``, the history and profiles take in ``t``, and a new
forecast is issued for ``t + 1 .. t + horizon``. Seasonal-naive forecasts (same time yesterday, same time last
week) go beside it.

The whole forecaster is picklable; a restored copy produces exactly the forecasts of the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streams.contracts.models import DemandForecast, ForecastPoint, WeatherObservation
from streams.forecasting.aggregate import ClosedInterval
from streams.forecasting.calendar import LocalCalendar
from streams.forecasting.features import FEATURES, FeatureState
from streams.forecasting.metrics import HorizonScore, Scoreboard
from streams.forecasting.models import MODEL_FAMILIES, make_model
from streams.forecasting.quantiles import BinnedQuantile, OnlineQuantile
from streams.forecasting.shortterm import BLOCKS, ShortTermCorrection

__all__ = ["FeederForecaster", "ForecastResult", "ForecasterConfig"]

DEFAULT_MODEL = "river-blr"
BAND_COVERAGES = (0.8, 0.95)  # prediction intervals issued besides the configured one (``ForecastResult.bands``)
MEDIAN_BINS_PER_DAY = 24  # the median correction is tracked per local hour and day type ...
MEDIAN_BINS = 3 * MEDIAN_BINS_PER_DAY  # ... (3 x 24 bins per horizon)


@dataclass(frozen=True)
class ForecasterConfig:
    """Forecaster configuration (built from the environment at the edge: ``streams.settings.forecaster_config``).

    Attributes
    ----------
    interval_ms : int
        Interval length, ms.
    horizon : int
        Forecast steps (96 = 24 h at 15 minutes).
    model : str
        Model family: ``river-blr`` (default), baselines ``river-blr-raw``, ``fls``, ``river-linear``,
        ``naive-day``, ``naive-week``.
    coverage : float
        Nominal coverage of the prediction intervals.
    timezone, holiday_country : str
        Local calendar of the time-of-day, weekday and holiday features.
    forgetting : float
        Weight the past keeps per closed interval in the ``river-blr`` and ``fls`` models.
    profile_alpha : float
        EWMA weight of a new value in the weekly and daily profiles.
    min_learn_share : float
        Intervals where fewer of the feeder's meters reported are not learned from.
    warmup_intervals : int
        Intervals before running accuracy starts counting (two weeks at 15 minutes).
    monitor_horizons : tuple[int, ...]
        Horizons whose running accuracy ``accuracy()`` reports.
    quantile_lr : float
        Step of the conformal quantile tracking, as a fraction of the running mean absolute residual.
    median_correction : bool
        Add the tracked median of each horizon's residual, by local hour and day type of the target, to a learning
        model's forecast (models fit means; MAE rewards medians, which differ on skewed loads; the bias depends on
        the hour).
    median_lr : float
        Step of the horizon-wide median tracking (slower than the interval bounds'), the prior of an hour bin that
        has not seen a residual yet.
    median_bin_lr : float
        Step of the median tracking per hour bin.
    """

    interval_ms: int = 900_000
    horizon: int = 96
    model: str = DEFAULT_MODEL
    coverage: float = 0.9
    timezone: str = "UTC"
    holiday_country: str | None = None
    forgetting: float = 0.999
    profile_alpha: float = 0.2
    min_learn_share: float = 0.5
    warmup_intervals: int = 14 * 96
    monitor_horizons: tuple[int, ...] = (1, 4, 16, 96)
    quantile_lr: float = 0.02
    median_correction: bool = True
    median_lr: float = 0.005
    median_bin_lr: float = 0.01

    def __post_init__(self) -> None:
        if self.model not in MODEL_FAMILIES:
            raise ValueError(f"unknown forecast model {self.model!r}; choose one of {', '.join(MODEL_FAMILIES)}")
        if not 0 < self.coverage < 1:
            raise ValueError("coverage must be in (0, 1)")
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1")


@dataclass(frozen=True)
class ForecastResult:
    """One forecast issued at the end of a closed interval.

    Attributes
    ----------
    issued_at : int
        End of the last closed interval, UTC epoch ms (= start of step 1).
    step_ms : int
        Interval length, ms.
    model_id : str
        Model that made ``kw``.
    coverage : float
        Nominal coverage of ``lower_kw`` .. ``upper_kw``.
    reporting_share : float
        Share of the feeder's meters that reported in the closed interval.
    kw, lower_kw, upper_kw : ndarray
        Point forecast and prediction interval per step (step i + 1 starts at ``issued_at + i * step_ms``).
    bands : dict[float, (ndarray, ndarray)]
        Prediction intervals (lower, upper) per nominal coverage: ``coverage`` and ``BAND_COVERAGES``.
    naive_day_kw, naive_week_kw : ndarray
        Seasonal-naive forecasts (same time yesterday / last week; NaN where unknown).
    """

    issued_at: int
    step_ms: int
    model_id: str
    coverage: float
    reporting_share: float
    kw: np.ndarray
    lower_kw: np.ndarray
    upper_kw: np.ndarray
    naive_day_kw: np.ndarray = field(repr=False)
    naive_week_kw: np.ndarray = field(repr=False)
    bands: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def starts(self) -> np.ndarray:
        """Start of each step's interval, UTC epoch ms."""
        return self.issued_at + np.arange(len(self.kw), dtype=np.int64) * self.step_ms

    def to_contract(self, feeder_id: str) -> DemandForecast:
        """The ``DemandForecast`` record for topic ``evgrid.forecasts``."""
        starts = self.starts().tolist()
        points = [ForecastPoint(step=i + 1, start=s, kw=float(k), lower_kw=float(lo), upper_kw=float(hi))
                  for i, (s, k, lo, hi) in enumerate(zip(starts, self.kw.tolist(), self.lower_kw.tolist(),
                                                         self.upper_kw.tolist(), strict=True))]
        return DemandForecast(feeder_id=feeder_id, issued_at=self.issued_at, step_ms=self.step_ms,
                              model_id=self.model_id, coverage=self.coverage,
                              reporting_share=float(self.reporting_share), points=points)


class FeederForecaster:
    """Online demand forecaster of one feeder. Picklable; see the module docstring for the order of work.

    State: ``state`` (``FeatureState``: numpy arrays, dicts, floats), ``model`` (the horizon model: river
    estimators and numpy arrays), ``quantiles`` (``OnlineQuantile`` per horizon and interval bound), ``medians``
    (``BinnedQuantile``), ``short_term`` (the 15-minute correction, ``ShortTermCorrection``; None without a
    learning model), the ring of issued forecasts (``issued_kw``, ``issued_scale``, ``issued_at``), ``score`` and
    counters.

    Parameters
    ----------
    config : ForecasterConfig
        Configuration; the default is 15-minute intervals, 96 steps, the ``fls`` model.
    """

    def __init__(self, config: ForecasterConfig | None = None) -> None:
        self.config = cfg = config or ForecasterConfig()
        calendar = LocalCalendar(cfg.interval_ms, cfg.timezone, cfg.holiday_country)
        self.state = FeatureState(calendar, cfg.horizon, cfg.profile_alpha)
        self.model = make_model(cfg.model, len(FEATURES), cfg.horizon, cfg.forgetting)
        self.model_id = self.model.model_id if self.model is not None else f"seasonal-{cfg.model}"
        h = cfg.horizon
        self.coverages = tuple(sorted({round(cfg.coverage, 6), *BAND_COVERAGES}))
        levels = [lv for c in self.coverages for lv in ((1.0 - c) / 2, (1.0 + c) / 2)]
        # quantiles[i][j]: level j of the scaled residual of the forecasts issued i + 1 steps ahead, tracked in
        # units of its running mean absolute value (a tail pushed out by a new feeder's large first residuals comes
        # back as they shrink); the last one, the median, moves slower (it shifts the point forecast, where its
        # noise would cost accuracy) and by absolute steps, as the hour medians that start from it
        self.quantiles = [[*(OnlineQuantile(lv, lr=cfg.quantile_lr) for lv in levels),
                           OnlineQuantile(0.5, lr=cfg.median_lr, fast_start=False, relative=False)]
                          for _ in range(h)]
        # medians, bin i * MEDIAN_BINS + b: median of the same residual of horizon i + 1 by local hour and day type
        # b of the target (the point forecast's correction); quantiles[i][-1] is the prior of a bin not seen yet
        self.medians = BinnedQuantile(0.5, h * MEDIAN_BINS, lr=cfg.median_bin_lr)
        # the 15-minute forecast's correction from the latest loads (learning models only)
        self.short_term = ShortTermCorrection() if self.model is not None else None
        self.issued_kw = np.full((h + 1, h), np.nan, dtype=np.float32)  # forecasts by issue interval % (h + 1)
        self.issued_scale = np.ones(h + 1)
        self.issued_at = np.full(h + 1, -1, dtype=np.int64)
        self.monitor = tuple(m for m in cfg.monitor_horizons if 1 <= m <= h)
        self._issued: dict[int, np.ndarray] = {m: np.full((m, 3), np.nan) for m in self.monitor}
        self._issued_t: dict[int, np.ndarray] = {m: np.full(m, -1, dtype=np.int64) for m in self.monitor}
        self.score = Scoreboard()
        self.closed = 0
        self.last: ForecastResult | None = None

    # ---- inputs --------------------------------------------------------------------------------
    def observe_weather(self, obs: WeatherObservation) -> None:
        """Take in a weather observation, or a forecast when ``obs.forecast_for`` is set."""
        self.state.add_weather(obs.timestamp, obs.forecast_for, obs.air_temperature_c, obs.ghi_wm2)

    def update(self, interval: ClosedInterval) -> ForecastResult:
        """Score and learn the closed ``interval``, then forecast the next ``horizon`` intervals."""
        cfg, st = self.config, self.state
        if interval.end - interval.start != cfg.interval_ms or interval.start % cfg.interval_ms:
            raise ValueError("interval does not match the configured interval length")
        t = interval.start // cfg.interval_ms
        if st.t is not None and t <= st.t:
            raise ValueError(f"interval starting {interval.start} is not after the last closed one")
        kw = interval.kw
        learn = kw is not None and st.t is not None and interval.share >= cfg.min_learn_share
        if kw is not None and st.t is not None:
            self._score(t, kw)
            if learn:
                self._learn_quantiles(t, kw)
                self._learn(t, kw)
        if self.short_term is not None:
            self.short_term.learn(t, kw if learn else None)
        st.record(t, kw)
        self.closed += 1
        self.last = self._forecast(interval, t)
        return self.last

    # ---- outputs -------------------------------------------------------------------------------
    def accuracy(self) -> dict[int, HorizonScore]:
        """Running accuracy per monitored horizon since the warm-up: MAE, sMAPE, skill, coverage."""
        return {int(k): v for k, v in self.score.summary().items()}  # type: ignore[call-overload]

    @property
    def peak_kw(self) -> float:
        """Running peak of the feeder's load, kW."""
        return self.state.peak

    # ---- internals -----------------------------------------------------------------------------
    def _learn_quantiles(self, t: int, kw: float) -> None:
        """Each horizon's quantiles learn the scaled residual of the forecast issued for ``t`` that far ahead."""
        h = self.config.horizon
        issued = t - np.arange(1, h + 1)
        pos = issued % (h + 1)
        pred = self.issued_kw[pos, np.arange(h)]
        resid = (kw - pred) / self.issued_scale[pos]
        b = int(self.state.time_bins(np.array([t], dtype=np.int64), MEDIAN_BINS_PER_DAY)[0])
        for i in np.flatnonzero((self.issued_at[pos] == issued) & ~np.isnan(resid)).tolist():
            r = float(resid[i])
            row = self.quantiles[i]
            self.medians.learn_one({"bin": i * MEDIAN_BINS + b, "prior": row[-1].predict_one({})}, r)
            for q in row:
                q.learn_one({}, r)

    def _learn(self, t: int, kw: float) -> None:
        st = self.state
        x, valid = st.learn_matrix(t)
        if self.model is not None and valid.any():
            self.model.learn(x, kw / st.scale, valid, t)

    def _forecast(self, interval: ClosedInterval, t: int) -> ForecastResult:
        st, cfg = self.state, self.config
        targets, x = st.forecast_matrix()
        scale = st.scale
        nd = st.value(targets - st.day * ((np.arange(1, st.horizon + 1) + st.day - 1) // st.day))
        nw = st.value(targets - st.week * ((np.arange(1, st.horizon + 1) + st.week - 1) // st.week))
        if self.model is not None:
            kw = self.model.predict(x) * scale
        else:
            base = nd if cfg.model == "naive-day" else nw
            kw = np.where(np.isnan(base), x[:, 4] * scale, base)
        cap = 2.0 * st.peak
        raw = np.clip(kw, 0.0, cap)
        if self.short_term is not None:
            raw[0] = np.clip(raw[0] + self._short_term_correction(t, targets, raw[0], scale) * scale, 0.0, cap)
        pos = t % (cfg.horizon + 1)
        self.issued_kw[pos] = raw
        self.issued_scale[pos] = scale
        self.issued_at[pos] = t
        q = np.array([[est.predict_one({}) for est in row] for row in self.quantiles])
        if cfg.median_correction and self.model is not None:
            bins = np.arange(cfg.horizon) * MEDIAN_BINS + st.time_bins(targets, MEDIAN_BINS_PER_DAY)
            med = self.medians.predict_bins(bins, q[:, -1])
            kw = np.clip(raw + med * scale, 0.0, cap)
        else:
            kw = raw
        q *= scale
        bands = {}
        for j, c in enumerate(self.coverages):
            lo = np.minimum(np.clip(raw + q[:, 2 * j], 0.0, cap), kw)
            hi = np.maximum(np.clip(raw + q[:, 2 * j + 1], 0.0, cap), kw)
            bands[c] = (lo, hi)
        lower, upper = bands[round(cfg.coverage, 6)]
        for m in self.monitor:
            self._issued[m][t % m] = (kw[m - 1], lower[m - 1], upper[m - 1])
            self._issued_t[m][t % m] = t
        return ForecastResult(
            issued_at=interval.end, step_ms=cfg.interval_ms, model_id=self.model_id, coverage=cfg.coverage,
            reporting_share=interval.share, kw=kw, lower_kw=lower, upper_kw=upper, naive_day_kw=nd,
            naive_week_kw=nw, bands=bands)

    def _short_term_correction(self, t: int, targets: np.ndarray, forecast: float, scale: float) -> float:
        """Scaled correction of the model's 15-minute ``forecast`` (kW) for ``targets[0]``, from the latest loads."""
        assert self.short_term is not None
        st = self.state
        v = st.value(np.array([t, t - 1, t - 2, t + 1 - st.day, t - st.day, t + 1 - st.week, t - st.week])) / scale
        block = int(st.time_bins(targets[:1], BLOCKS)[0]) % BLOCKS
        x = self.short_term.features(forecast / scale, (v[0], v[1], v[2]), (v[3], v[4]), (v[5], v[6]))
        return self.short_term.correction(int(targets[0]), block, x, forecast / scale, scale)

    def _score(self, t: int, kw: float) -> None:
        if self.closed < self.config.warmup_intervals:
            return
        st = self.state
        for m in self.monitor:
            issued = t - m
            if self._issued_t[m][issued % m] != issued:
                continue
            pred, lo, hi = self._issued[m][issued % m]
            lag_d = st.day * ((m + st.day - 1) // st.day)
            lag_w = st.week * ((m + st.week - 1) // st.week)
            nd, nw = st.value(np.array([t - lag_d, t - lag_w]))
            self.score.add(m, kw, float(pred), float(nd), float(nw), float(lo), float(hi))
