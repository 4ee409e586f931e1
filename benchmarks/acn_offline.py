"""ACN month (Caltech, March 2019) as one feeder: online dispatch vs uncontrolled and perfect foresight.

Usage: python benchmarks/acn_offline.py [--sessions CSV] [--step-min 5] [--no-forecast] [--uniform]
"""

from __future__ import annotations

import argparse
import dataclasses

from streams.dispatch.backtest_core import (
    deliverable_kwh,
    load_sessions_csv,
    perfect_foresight_peak,
    run_backtest,
    uncontrolled_peak,
)
from streams.dispatch.dispatcher import DispatchConfig

MIN_MS = 60_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", default="streams/simulate/data/acn/caltech_2019-03_sessions.csv")
    ap.add_argument("--step-min", type=int, default=5)
    ap.add_argument("--timezone", default="America/Los_Angeles")
    ap.add_argument("--no-forecast", action="store_true", help="plan without the arrivals forecast")
    ap.add_argument("--uniform", action="store_true", help="uniform 24 h grid (no coarse tail)")
    ap.add_argument("--replan-min", type=int, default=15)
    args = ap.parse_args()
    sessions = load_sessions_csv(args.sessions)
    step = args.step_min * MIN_MS
    cfg = DispatchConfig(step_ms=step, replan_ms=args.replan_min * MIN_MS, timezone=args.timezone,
                         forecast_arrivals=not args.no_forecast,
                         )
    if args.uniform:
        cfg = dataclasses.replace(cfg, fine_ms=None, coarse_step_ms=None)
    unc, unc_e = uncontrolled_peak(sessions, step)
    opt, opt_e = perfect_foresight_peak(sessions, step)
    res = run_backtest(sessions, step, cfg)
    req = res.energy_requested_kwh
    able = deliverable_kwh(sessions)
    print(f"sessions: {len(sessions)}  step: {args.step_min} min  forecast arrivals: {not args.no_forecast}")
    print(f"uncontrolled peak:        {unc:7.2f} kW  (delivered {100 * unc_e / req:.3f} % of requested)")
    print(f"perfect-foresight peak:   {opt:7.2f} kW  (delivered {100 * opt_e / req:.3f} % of requested)")
    print(f"evgrid online peak:       {res.peak_kw:7.2f} kW  (from applied setpoints)")
    print(f"energy requested {req:.1f} kWh, physically deliverable {able:.1f} kWh ({100 * able / req:.3f} %)")
    print(f"energy delivered {res.energy_delivered_kwh:.1f} kWh = {res.energy_delivered_pct:.3f} % of requested, "
          f"{100 * res.energy_delivered_kwh / able:.3f} % of deliverable")
    print(f"plans: {res.n_plans} ({res.n_fallbacks} heuristic fallbacks), setpoints emitted: {res.n_setpoints}, "
          f"planning {res.plan_seconds:.1f} s, wall {res.wall_seconds:.1f} s")


if __name__ == "__main__":
    main()
