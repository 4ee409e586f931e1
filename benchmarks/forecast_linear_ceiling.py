"""In-sample ceiling of linear lag models on a 15-minute load: how much skill a linear forecaster could reach.

Fits, on the whole year at once (so it sees the future: an upper bound for any online linear model on these
inputs), least squares and least absolute deviations of the load ``h`` steps ahead on the intercept, the last 8
known loads, the loads one day and one week before the target +-4 slots, and two and three weeks before; and the
same least squares per hour of the day. Prints skill against the better seasonal naive (as ``forecast-eval``).
For the 15-minute horizon also the richest fit tried: the change from the last load, by least absolute deviations
per 3-hour block of the day and working day / weekend (16 fits), from the last 32 load deltas, the positive part
of the last one, the slot's mean delta over the last 7 days and over the same weekday of the last 4 weeks, the
last load's distance to the 7-day / 4-week means of the slot before the target, and the target slot's day /
week-ago loads minus the last one; in-sample and cross-fitted (fitted on alternate weeks, scored on the others).

    python benchmarks/forecast_linear_ceiling.py .run/profiles/lv_semiurb4.csv [--horizons 1,16]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

D, W = 96, 672


def ceiling(y: np.ndarray, h: int) -> dict[str, float]:
    """Skill (%) of in-sample linear fits for horizon ``h`` on the 15-minute series ``y`` (NaN = missing)."""
    t = np.arange(3 * W + 8, len(y))
    lags = [*range(h, h + 8), *(k for k in (*range(D - 4, D + 5), *range(W - 4, W + 5), 2 * W, 3 * W) if k >= h)]
    x = np.column_stack([np.ones(len(t)), *(y[t - k] for k in lags)])
    nd, nw, target = y[t - D * ((h + D - 1) // D)], y[t - W], y[t]
    ok = ~np.isnan(x).any(axis=1) & ~np.isnan(target) & ~np.isnan(nd) & ~np.isnan(nw)
    x, target, nd, nw, slot = x[ok], target[ok], nd[ok], nw[ok], (t[ok] % D) // 4
    naive = min(np.abs(target - nd).mean(), np.abs(target - nw).mean())
    w = np.linalg.lstsq(x, target, rcond=None)[0]
    out = {"least squares": np.abs(target - x @ w).mean()}
    for _ in range(10):  # least absolute deviations by iteratively reweighted least squares
        r = np.sqrt(1.0 / np.maximum(np.abs(target - x @ w), 1e-3 * naive))
        w = np.linalg.lstsq(x * r[:, None], target * r, rcond=None)[0]
    out["least absolute deviations"] = np.abs(target - x @ w).mean()
    pred = np.empty(len(target))
    for s in range(24):
        m = slot == s
        pred[m] = x[m] @ np.linalg.lstsq(x[m], target[m], rcond=None)[0]
    out["least squares per hour of day"] = np.abs(target - pred).mean()
    return {k: 100 * (1 - v / naive) for k, v in out.items()}


def momentum_ceiling(y: np.ndarray, first_weekday: int) -> dict[str, float]:
    """Skill (%) of the richest 15-minute fit (see the module docstring), in-sample and cross-fitted;
    ``first_weekday``: weekday of ``y[0]`` (Monday 0)."""
    t = np.arange(3 * W + 8 + W, len(y))
    d = np.diff(y, prepend=np.nan)
    def slot_mean(lag: int, n: int, back: int = 0) -> np.ndarray:
        return np.mean([y[t - back - lag * j] for j in range(1, n + 1)], axis=0)
    last = y[t - 1]
    cols = [*(d[t - k] for k in range(1, 33)), np.maximum(d[t - 1], 0.0),
            slot_mean(D, 7) - slot_mean(D, 7, 1), slot_mean(W, 4) - slot_mean(W, 4, 1),
            last - slot_mean(D, 7, 1), last - slot_mean(W, 4, 1), y[t - D] - last, y[t - W] - last]
    x = np.column_stack([np.ones(len(t)), *cols])
    target, nd, nw = y[t] - last, y[t - D], y[t - W]
    ok = ~np.isnan(x).any(axis=1) & ~np.isnan(target) & ~np.isnan(nd) & ~np.isnan(nw)
    x, target, actual, nd, nw, tt = x[ok], target[ok], y[t][ok], nd[ok], nw[ok], t[ok]
    naive = min(np.abs(actual - nd).mean(), np.abs(actual - nw).mean())
    weekend = ((tt // D + first_weekday) % 7 >= 5).astype(int)
    group = ((tt % D) // 12) * 2 + weekend

    def lad(xf: np.ndarray, yf: np.ndarray) -> np.ndarray:
        w = np.linalg.lstsq(xf, yf, rcond=None)[0]
        for _ in range(20):
            r = np.sqrt(1.0 / np.maximum(np.abs(yf - xf @ w), 1e-3 * naive))
            w = np.linalg.lstsq(xf * r[:, None], yf * r, rcond=None)[0]
        return w

    inside, crossed = np.empty(len(target)), np.empty(len(target))
    fold = (tt // W) % 2
    for g in np.unique(group):
        m = group == g
        inside[m] = x[m] @ lad(x[m], target[m])
        for f in (0, 1):
            crossed[m & (fold != f)] = x[m & (fold != f)] @ lad(x[m & (fold == f)], target[m & (fold == f)])
    return {"richest LAD per 3 h x day type, in-sample": 100 * (1 - np.abs(target - inside).mean() / naive),
            "cross-fitted": 100 * (1 - np.abs(target - crossed).mean() / naive)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--horizons", default="1,16")
    args = ap.parse_args()
    for path in args.csv:
        s = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")["kw"]
        q = s.resample("15min").mean()
        y = q.to_numpy(dtype=float)
        for h in (int(v) for v in args.horizons.split(",")):
            print(f"{path}: h={h}: " + ", ".join(f"{k} {v:.1f} %" for k, v in ceiling(y, h).items()), flush=True)
        rich = momentum_ceiling(y, q.index[0].dayofweek)
        print(f"{path}: h=1: " + ", ".join(f"{k} {v:.1f} %" for k, v in rich.items()), flush=True)


if __name__ == "__main__":
    main()
