"""Screen 15-minute corrections from the latest loads on the default forecaster's forecasts, without its own one.

Runs the default forecaster over a load CSV (``timestamp,kw``, 15 minutes) with its 15-minute correction off,
records at each issue the model's 15-minute forecast before the median correction, then replays each stage
named: a correction of the scaled residual ``(actual - forecast) / running peak`` from the features of
``streams.forecasting.shortterm`` (gap to the last load, the last two deltas and the positive part of the last,
the previous 15-minute residual, the same-slot deltas a day and a week back), each row learnt when its target
closes, then a median of what is left tracked per hour (as the forecaster's hour medians). Prints the 15-minute
skill (MAE reduction against the better seasonal naive after a 14-day warm-up) of each, and, with ``--bins``, the
median and MAE (kW) of the 15-minute residual (after the hour medians) in quantile bins of the last delta, the gap
to the last load and the previous residual: what any correction from them could take.

Stages: ``none`` (the hour medians only), ``river-abs-3h`` (river ``LinearRegression``, absolute loss, per
3-hour block: the adopted one), ``river-abs`` (the same, one model), ``river-abs-momentum`` (per 3-hour block,
the three delta features only), ``rls-3h`` / ``rls`` (least squares with forgetting 0.999 per 3-hour block / one
model, intercept and the three earlier deltas added), ``blend`` (a per-hour weight toward the last load, by
sign-gradient on the absolute error).

    python benchmarks/forecast_short_screen.py .run/profiles/lv_semiurb4.csv
    python benchmarks/forecast_short_screen.py .run/profiles/uci_household.csv --timezone Europe/Paris --country FR
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np

from streams.forecasting.aggregate import ClosedInterval
from streams.forecasting.csvio import read_load_csv
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig, ForecastResult
from streams.forecasting.shortterm import SHORT_FEATURES

Q = 900_000
WARMUP = 14 * 96


class Recorder(FeederForecaster):
    """The default forecaster without its 15-minute correction, keeping its 15-minute forecast at each issue."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__(config)
        self.short_term = None
        self.rows: list[tuple[int, float, float, float, float]] = []

    def _forecast(self, interval: ClosedInterval, t: int) -> ForecastResult:
        res = super()._forecast(interval, t)
        raw = float(self.issued_kw[t % (self.config.horizon + 1), 0])
        self.rows.append((t, self.state.scale, raw, float(res.naive_day_kw[0]), float(res.naive_week_kw[0])))
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--country", default="DE")
    ap.add_argument("--intervals", type=int, default=0, help="intervals from the start of the file (0: all)")
    ap.add_argument("--bins", action="store_true", help="print the residual's median per bin of three features")
    ap.add_argument("--stages", default="none,river-abs-3h,river-abs,river-abs-momentum,rls-3h,rls,blend")
    args = ap.parse_args()
    load = {r.timestamp // Q: r.kw for r in read_load_csv(args.csv)}
    first = min(load)
    last = first + args.intervals - 1 if args.intervals else max(load)
    fc = Recorder(ForecasterConfig(timezone=args.timezone, holiday_country=args.country))
    for t in range(first, last + 1):
        kw = load.get(t)
        fc.update(ClosedInterval(t * Q, (t + 1) * Q, kw, 1.0 if kw is not None else 0.0, int(kw is not None), 1))
    ts, s, raw, nd, nw = (np.array(c) for c in zip(*fc.rows, strict=True))
    ts = ts.astype(np.int64)

    def y(k: np.ndarray) -> np.ndarray:
        return np.array([load.get(int(v), math.nan) for v in k])

    actual = y(ts + 1)
    hour = np.asarray(fc.state.time_bins(ts + 1, 24) % 24)
    y0, y1, y2, y3 = y(ts), y(ts - 1), y(ts - 2), y(ts - 3)
    err = np.zeros(len(ts))
    err[1:] = np.nan_to_num((actual[:-1] - raw[:-1]) / s[:-1])
    cols = {"gap": (raw - y0) / s, "delta": (y0 - y1) / s, "delta_up": np.maximum(y0 - y1, 0.0) / s,
            "delta_prev": (y1 - y2) / s, "error_last": err, "delta_day": (y(ts + 1 - 96) - y(ts - 96)) / s,
            "delta_week": (y(ts + 1 - 672) - y(ts - 672)) / s}
    feats = np.nan_to_num(np.column_stack([cols[c] for c in SHORT_FEATURES]))
    extra = np.nan_to_num(np.column_stack([np.ones(len(ts)), (y2 - y3) / s]))

    def skill(pred: np.ndarray) -> float:
        ok = ~(np.isnan(actual) | np.isnan(pred) | np.isnan(nd) | np.isnan(nw))
        ok[:WARMUP] = False
        best = min(np.abs(actual[ok] - nd[ok]).mean(), np.abs(actual[ok] - nw[ok]).mean())
        return 100.0 * (1.0 - np.abs(actual[ok] - pred[ok]).mean() / best)

    def replay(predict: Callable[[int], float], learn: Callable[[int, float], None]) -> np.ndarray:
        """Forecast row i, then learn row i - 1 (its target has closed); hour medians of what is left."""
        q, mae, n = np.zeros(24), np.zeros(24), np.zeros(24)
        corr, out = np.zeros(len(ts)), np.empty(len(ts))
        for i in range(len(ts)):
            h = hour[i]
            corr[i] = predict(i)
            out[i] = raw[i] + (corr[i] + q[h]) * s[i]
            j = i - 1
            if j >= 0 and not math.isnan(actual[j]):
                r = (actual[j] - raw[j]) / s[j]
                learn(j, r)
                e, h = r - corr[j], hour[j]
                n[h] += 1
                mae[h] += (abs(e) - mae[h]) / min(n[h], 200)
                q[h] += 0.01 * mae[h] * (0.5 - (e <= q[h]))
        return out

    def river_abs(blocks: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        from river import linear_model, optim

        models = [linear_model.LinearRegression(optimizer=optim.SGD(0.02), loss=optim.losses.Absolute(),
                                                intercept_lr=0.0, l2=0.0, initializer=optim.initializers.Zeros())
                  for _ in range(int(blocks.max()) + 1)]
        idx = [SHORT_FEATURES.index(c) for c in names]
        rows = [dict(zip(names, r, strict=True)) for r in feats[:, idx].tolist()]
        return replay(lambda i: models[blocks[i]].predict_one(rows[i]),
                      lambda j, r: models[blocks[j]].learn_one(rows[j], r))

    def rls(blocks: np.ndarray, lam: float = 0.999) -> np.ndarray:
        x = np.column_stack([feats, extra])
        k, nb = x.shape[1], int(blocks.max()) + 1
        p, w = np.repeat(np.eye(k)[None] * 100.0, nb, 0), np.zeros((nb, k))

        def learn(j: int, r: float) -> None:
            b, xb = blocks[j], x[j]
            px = p[b] @ xb
            g = px / (lam + xb @ px)
            w[b] += g * (r - w[b] @ xb)
            p[b] = (p[b] - np.outer(g, px)) / lam

        return replay(lambda i: float(w[blocks[i]] @ x[i]), learn)

    def blend() -> np.ndarray:
        a, toward = np.zeros(24), np.nan_to_num((y0 - raw) / s)

        def learn(j: int, r: float) -> None:
            grad = np.sign(r - a[hour[j]] * toward[j]) * toward[j]
            a[hour[j]] = min(max(a[hour[j]] + 0.005 * np.sign(grad) * min(abs(grad) * 20, 1.0), -1.0), 1.0)

        return replay(lambda i: float(a[hour[i]] * toward[i]), learn)

    blocks3, one = hour // 3, np.zeros(len(ts), dtype=np.int64)
    stages: dict[str, Callable[[], np.ndarray]] = {
        "none": lambda: replay(lambda i: 0.0, lambda j, r: None),
        "river-abs-3h": lambda: river_abs(blocks3, SHORT_FEATURES),
        "river-abs": lambda: river_abs(one, SHORT_FEATURES),
        "river-abs-momentum": lambda: river_abs(blocks3, ("delta", "delta_up", "delta_prev")),
        "rls-3h": lambda: rls(blocks3),
        "rls": lambda: rls(one),
        "blend": blend,
    }
    print(f"{args.csv}: {len(ts)} intervals; 15-minute skill, the model's forecast before any correction "
          f"{skill(raw):.2f} %, persistence {skill(y0):.2f} %", flush=True)
    for name in [n for n in args.stages.split(",") if n]:
        print(f"  {name:<20} {skill(stages[name]()):.2f} %", flush=True)
    if args.bins:
        resid = actual - stages["none"]()
        ok = ~np.isnan(resid) & ~np.isnan(feats).any(axis=1)
        ok[:WARMUP] = False
        for name in ("delta", "gap", "error_last"):
            v = feats[:, SHORT_FEATURES.index(name)]
            edges = np.quantile(v[ok], [0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98])
            b = np.searchsorted(edges, v)
            cells = [f"{np.median(resid[ok & (b == k)]):+.2f}/{np.abs(resid[ok & (b == k)]).mean():.2f}"
                     for k in range(8)]
            print(f"  residual median/MAE by bin of {name}: " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
