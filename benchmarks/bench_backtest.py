"""Wall time of a one-week backtest of a 100-car feeder through the real pipeline (broker + one worker).

The feeder is simulated (streams.simulate: 100 home chargers, 40 % bidirectional, household meters, weather)
and run exactly as ``evgrid backtest`` runs a scenario. Target (issue 6): under 5 minutes on 2 cores.

Usage: python benchmarks/bench_backtest.py [--chargers 100] [--homes 100] [--days 7] [--step 5m] [--no-optimum]
"""

from __future__ import annotations

import argparse
import time

from streams.backtest.inputs import from_scenario
from streams.backtest.orchestrator import run_pipeline
from streams.backtest.report import compute_report
from streams.replay.scenario import Scenario
from streams.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chargers", type=int, default=100)
    ap.add_argument("--homes", type=int, default=100)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--step", default="5m")
    ap.add_argument("--start", default="2026-01-05T00:00:00Z")
    ap.add_argument("--import-limit-kw", type=float, default=400.0)
    ap.add_argument("--no-optimum", action="store_true", help="skip the perfect-foresight LP")
    args = ap.parse_args()
    t0 = time.perf_counter()
    sc = Scenario.model_validate({
        "name": f"bench-{args.chargers}-cars-{args.days:g}-days", "start": args.start, "step": args.step,
        "limits": {"import_limit_kw": args.import_limit_kw, "export_limit_kw": 50.0},
        "inputs": {"simulator": {"feeders": 1, "homes": args.homes, "chargers": args.chargers,
                                 "bidirectional_share": 0.4, "seed": 11}},
    })
    from streams.contracts.timeparse import parse_timestamp_ms

    start = parse_timestamp_ms(args.start)
    sc = sc.model_copy(update={"start": start, "end": start + int(args.days * 86_400_000)})
    inputs = from_scenario(sc)
    t_inputs = time.perf_counter() - t0
    print(f"inputs: {len(inputs.sessions)} sessions, {len(inputs.readings)} meter readings, "
          f"{inputs.n_records} records ({t_inputs:.1f} s)")
    out = run_pipeline(inputs, Settings(), log=print)
    t_rep = time.perf_counter()
    settings = Settings(**inputs.settings, interval_minutes=inputs.step_ms // 60_000)
    rep = compute_report(inputs, setpoints=out.setpoints, forecasts=out.forecasts, incentives=out.incentives,
                         settlements=out.settlements, deadletters=out.deadletters, settings=settings,
                         optimum=not args.no_optimum)
    t_report = time.perf_counter() - t_rep
    wall = time.perf_counter() - t0
    t = rep.figures["total"]
    tm = out.timings
    print(f"records replayed: {out.records_replayed}; setpoints {len(out.setpoints)}, forecasts {len(out.forecasts)}, "
          f"incentives {len(out.incentives)}, settlements {len(out.settlements)}, dead letters {len(out.deadletters)}")
    print(f"peak {t['peak_kw']} kW, uncontrolled {t['uncontrolled_peak_kw']} kW, optimum {t['optimal_peak_kw']} kW; "
          f"delivered {t['energy_delivered_pct_of_deliverable']} % of deliverable; safety violations "
          f"{t['safety_violations']}")
    print(f"seconds: inputs {t_inputs:.1f}, worker start {tm.worker_start:.1f}, replay {tm.replay:.1f}, "
          f"worker processing {tm.processing:.1f}, collect {tm.collect:.1f}, report {t_report:.1f}")
    print(f"one-week backtest wall time: {wall:.1f} s (target < 300 s) for {args.chargers} cars, {args.days:g} days")


if __name__ == "__main__":
    main()
