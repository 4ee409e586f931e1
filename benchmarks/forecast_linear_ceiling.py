"""In-sample ceiling of linear lag models on a 15-minute load: how much skill a linear forecaster could reach.

Fits, on the whole year at once (so it sees the future: an upper bound for any online linear model on these
inputs), least squares and least absolute deviations of the load ``h`` steps ahead on the intercept, the last 8
known loads, the loads one day and one week before the target +-4 slots, and two and three weeks before; and the
same least squares per hour of the day. Prints skill against the better seasonal naive (as ``forecast-eval``).

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--horizons", default="1,16")
    args = ap.parse_args()
    for path in args.csv:
        s = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")["kw"]
        y = s.resample("15min").mean().to_numpy(dtype=float)
        for h in (int(v) for v in args.horizons.split(",")):
            print(f"{path}: h={h}: " + ", ".join(f"{k} {v:.1f} %" for k, v in ceiling(y, h).items()), flush=True)


if __name__ == "__main__":
    main()
