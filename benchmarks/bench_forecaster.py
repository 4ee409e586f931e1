"""Cost of one closed interval per feeder: learn + 96-step forecast with prediction intervals.

Warms a forecaster on three weeks of a synthetic 15-minute load (or ``--csv`` ``timestamp,kw``), then times
``FeederForecaster.update`` over the next intervals. Prints µs per interval, the implied feeders per core at
the interval length, and the pickled state size (the checkpoint per feeder).

    python benchmarks/bench_forecaster.py [--model river-blr] [--intervals 2000] [--csv LOAD.csv]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time

import numpy as np

from streams.forecasting.aggregate import ClosedInterval
from streams.forecasting.csvio import read_load_csv
from streams.forecasting.forecaster import DEFAULT_MODEL, FeederForecaster, ForecasterConfig

Q = 900_000
T0 = 1_546_300_800_000


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    tod = (t % 96) / 96
    base = 30 + 20 * np.exp(-((tod - 0.8) ** 2) / 0.005) + 8 * np.exp(-((tod - 0.3) ** 2) / 0.01)
    return base * (1 + 0.1 * rng.standard_normal(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--intervals", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=21 * 96)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--country", default="DE")
    args = ap.parse_args()
    n = args.warmup + args.intervals
    values = np.array([r.kw for r in read_load_csv(args.csv)][:n]) if args.csv else synthetic(n)
    fc = FeederForecaster(ForecasterConfig(model=args.model, holiday_country=args.country,
                                           timezone="Europe/Berlin"))
    ivs = [ClosedInterval(T0 + i * Q, T0 + (i + 1) * Q, float(v), 1.0, 1, 1) for i, v in enumerate(values)]
    for iv in ivs[: args.warmup]:
        fc.update(iv)
    times = []
    for iv in ivs[args.warmup:]:
        t0 = time.perf_counter()
        fc.update(iv)
        times.append(time.perf_counter() - t0)
    us = np.array(times) * 1e6
    mean = float(us.mean())
    t0 = time.perf_counter()
    blob = pickle.dumps(fc)
    pickle.loads(blob)
    ser_us = (time.perf_counter() - t0) * 1e6
    print(f"model {args.model}: {len(us)} closed intervals, horizon {fc.config.horizon} steps")
    print(f"  update (learn + {fc.config.horizon}-step forecast + intervals): mean {mean:.0f} µs, "
          f"median {statistics.median(us):.0f} µs, p99 {np.percentile(us, 99):.0f} µs (target < 5000 µs)")
    print(f"  implied feeders per core at {Q // 60_000}-minute intervals: {Q / 1000 / (mean * 1e-6):,.0f}")
    print(f"  pickled state per feeder: {len(blob) / 1024:.1f} KiB (pickle + unpickle {ser_us:.0f} µs)")


if __name__ == "__main__":
    main()
