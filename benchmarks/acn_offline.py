"""ACN month (Caltech, March 2019) as one feeder through the one backtest engine (``evgrid backtest``, closed
loop in-process: charger twins answer the worker's setpoints), against uncontrolled and perfect foresight.

The same run as ``evgrid backtest --sessions CSV --step 5m`` with the options below as ``--set`` overrides.
Usage: python benchmarks/acn_offline.py [--sessions CSV] [--step-min 5] [--no-forecast] [--uniform] [--replan-min 15]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from streams.backtest.closedloop import run_closed_loop, run_settings
from streams.backtest.inputs import from_flags
from streams.backtest.report import compute_report
from streams.contracts.topics import SETPOINTS

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
    settings: dict[str, Any] = {"local_timezone": args.timezone, "dispatch_forecast_arrivals": not args.no_forecast,
                                "dispatch_replan_minutes": args.replan_min}
    if args.uniform:
        settings["dispatch_coarse_step_minutes"] = 0
    inputs = from_flags(args.sessions, step_ms=args.step_min * MIN_MS, settings=settings)
    t0 = time.perf_counter()
    run = run_closed_loop(inputs, run_settings(inputs))
    wall = time.perf_counter() - t0
    rep = compute_report(inputs, setpoints=run.outputs.get(SETPOINTS, []), settings=run_settings(inputs), twins=run)
    t = rep.figures["total"]
    print(f"sessions: {len(inputs.sessions)}  step: {args.step_min} min  forecast arrivals: {not args.no_forecast}")
    print(f"uncontrolled peak:        {t['uncontrolled_peak_kw']:7.2f} kW")
    print(f"perfect-foresight peak:   {t['optimal_peak_kw']:7.2f} kW")
    print(f"evgrid closed-loop peak:  {t['peak_kw']:7.2f} kW")
    print(f"energy delivered {t['energy_delivered_kwh']:.1f} kWh = {t['energy_delivered_pct']:.3f} % of requested, "
          f"{t['energy_delivered_pct_of_deliverable']:.3f} % of deliverable ({t['sessions_short']} sessions short)")
    print(f"setpoints: {rep.figures['setpoints']['count']}, safety violations {t['safety_violations']}, "
          f"pipeline wall {wall:.1f} s")


if __name__ == "__main__":
    main()
