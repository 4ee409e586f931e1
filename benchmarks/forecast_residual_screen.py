"""Screen nonlinear residual stages (river regressors) on the default forecaster's 15-minute forecasts.

Runs the default forecaster over a load CSV (``timestamp,kw``, 15 minutes), records at each issue the model's
15-minute forecast before the median correction, its feature row and the seasonal naives, then, for each river
regressor named, learns the scaled residual ``(actual - forecast) / running peak`` from the 16 load and weather
features, the forecast itself and the target's hour (sin/cos). Each row is learnt only when its target closes
(causal, as in the forecaster), and a median of the corrected residual is tracked (sign-gradient steps) as the
forecaster does. Prints the 15-minute skill (MAE reduction against the better seasonal naive, after a 14-day
warm-up) of the default, and of the default's forecast plus each stage, with the stage's time per row, and the
lag-1 correlation of the default's 15-minute errors (what an error-correction AR term could use).

    python benchmarks/forecast_residual_screen.py .run/profiles/lv_semiurb4.csv --intervals 10000
    python benchmarks/forecast_residual_screen.py .run/profiles/uci_household.csv --timezone Europe/Paris \
        --country FR --intervals 10000 --stages ht,amf,knn
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from streams.forecasting.aggregate import ClosedInterval
from streams.forecasting.csvio import read_load_csv
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig, ForecastResult

Q = 900_000
WARMUP = 14 * 96


def stage(name: str) -> Any:
    """The river regressor screened under ``name``."""
    from river import forest, neighbors, preprocessing, tree

    stages = {
        "ht": lambda: tree.HoeffdingTreeRegressor(grace_period=200, leaf_prediction="mean"),
        "hat": lambda: tree.HoeffdingAdaptiveTreeRegressor(grace_period=200, leaf_prediction="adaptive",
                                                           model_selector_decay=0.9, seed=1),
        "arf": lambda: forest.ARFRegressor(n_models=5, seed=1, leaf_prediction="mean"),
        "amf": lambda: forest.AMFRegressor(n_estimators=5, seed=1),
        "knn": lambda: preprocessing.StandardScaler() | neighbors.KNNRegressor(
            n_neighbors=10, engine=neighbors.LazySearch(window_size=2000)),
    }
    return stages[name]()


class Recorder(FeederForecaster):
    """The forecaster, keeping the 15-minute forecast's inputs at each issue."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__(config)
        self.rows: list[tuple[int, float, float, float, np.ndarray, float, float]] = []

    def _forecast(self, interval: ClosedInterval, t: int) -> ForecastResult:
        _, x = self.state.forecast_matrix()
        res = super()._forecast(interval, t)
        raw = float(self.issued_kw[t % (self.config.horizon + 1), 0])
        self.rows.append((t, self.state.scale, raw, float(res.kw[0]), x[0].copy(), float(res.naive_day_kw[0]),
                          float(res.naive_week_kw[0])))
        return res


def skill(actual: np.ndarray, pred: np.ndarray, nd: np.ndarray, nw: np.ndarray) -> float:
    ok = ~(np.isnan(actual) | np.isnan(pred) | np.isnan(nd) | np.isnan(nw))
    ok[:WARMUP] = False
    best = min(np.abs(actual[ok] - nd[ok]).mean(), np.abs(actual[ok] - nw[ok]).mean())
    return 100.0 * (1.0 - np.abs(actual[ok] - pred[ok]).mean() / best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--country", default="DE")
    ap.add_argument("--intervals", type=int, default=10_000, help="intervals from the start of the file")
    ap.add_argument("--stages", default="ht,hat,arf,amf,knn")
    args = ap.parse_args()
    load = {r.timestamp // Q: r.kw for r in read_load_csv(args.csv)}
    first = min(load)
    fc = Recorder(ForecasterConfig(timezone=args.timezone, holiday_country=args.country))
    for t in range(first, first + args.intervals):
        kw = load.get(t)
        fc.update(ClosedInterval(t * Q, (t + 1) * Q, kw, 1.0 if kw is not None else 0.0, int(kw is not None), 1))
    ts = np.array([r[0] for r in fc.rows])
    scale = np.array([r[1] for r in fc.rows])
    raw = np.array([r[2] for r in fc.rows])
    kw = np.array([r[3] for r in fc.rows])
    x = np.array([r[4] for r in fc.rows])
    nd = np.array([r[5] for r in fc.rows])
    nw = np.array([r[6] for r in fc.rows])
    actual = np.array([load.get(int(t) + 1, math.nan) for t in ts])
    err = actual - kw
    ok = ~np.isnan(err[1:]) & ~np.isnan(err[:-1])
    ok[:WARMUP] = False
    print(f"{args.csv}: {len(ts)} intervals; 15-minute skill of the default {skill(actual, kw, nd, nw):.2f} % "
          f"(model forecast before the median correction {skill(actual, raw, nd, nw):.2f} %); "
          f"lag-1 correlation of its errors {np.corrcoef(err[1:][ok], err[:-1][ok])[0, 1]:.3f}")
    hour = 2 * np.pi * ((ts + 1) % 96) / 96
    for name in [s for s in args.stages.split(",") if s]:
        model = stage(name)
        pred = np.empty(len(ts))
        corrs = np.zeros(len(ts))
        q, mae = 0.0, 0.0
        spent = 0.0
        for n in range(len(ts)):
            f = {f"x{k}": float(x[n, k]) for k in range(1, x.shape[1]) if k != 11}  # 11: holiday flag
            f.update(raw=raw[n] / scale[n], sin=float(np.sin(hour[n])), cos=float(np.cos(hour[n])))
            t0 = time.perf_counter()
            corr = corrs[n] = model.predict_one(f) or 0.0
            spent += time.perf_counter() - t0
            pred[n] = min(max(raw[n] + (corr + q) * scale[n], 0.0), 2.0 * scale[n])
            if n >= 1 and not np.isnan(actual[n - 1]):  # the target of the row issued at n - 1 has closed
                g = {f"x{k}": float(x[n - 1, k]) for k in range(1, x.shape[1]) if k != 11}
                g.update(raw=raw[n - 1] / scale[n - 1], sin=float(np.sin(hour[n - 1])),
                         cos=float(np.cos(hour[n - 1])))
                r = (actual[n - 1] - raw[n - 1]) / scale[n - 1]
                t0 = time.perf_counter()
                model.learn_one(g, float(r))
                spent += time.perf_counter() - t0
                e = r - corrs[n - 1] - q
                mae += 0.01 * (abs(e) - mae)
                q += 0.005 * mae * (0.5 - (e <= 0))
        print(f"  + {name:<4} residual stage: skill {skill(actual, pred, nd, nw):.2f} %, "
              f"{spent / len(ts) * 1e3:.2f} ms per row (learn + predict, one horizon)", flush=True)


if __name__ == "__main__":
    main()
