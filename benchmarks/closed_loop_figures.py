"""Control figures of the closed-loop ``evgrid backtest`` (the one engine) against the issue-15 targets.

Runs each scenario exactly as ``evgrid backtest SCENARIO`` does (closed loop through the local broker: charger
twins answer the setpoints of one worker subprocess; ``--in-process``: the worker's code in this process) and
prints the figures next to their targets. Nothing is asserted: it prints figures.

Usage: python benchmarks/closed_loop_figures.py [acn] [week] [resi] [--no-optimum] [--in-process]
  acn   scenarios/acn-caltech-2019-03.yaml  target: <= 35.0 kW (ambition 34.0) at 100 % of deliverable energy
  week  scenarios/week-v2g-peak-event.yaml  target: V2G > 0, >= 99 % of deliverable, peak within 5 % of optimum
  resi  scenarios/week-residential-v2g.yaml  target: >= 99.5 % of deliverable, peak within 5 % (ambition 3 %)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.cli.backtest import run_backtest_cli
from streams.replay.scenario import REPO_ROOT

SCENARIOS = {"acn": "scenarios/acn-caltech-2019-03.yaml", "week": "scenarios/week-v2g-peak-event.yaml",
             "resi": "scenarios/week-residential-v2g.yaml"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--no-optimum", action="store_true", help="skip the perfect-foresight LP")
    ap.add_argument("--in-process", action="store_true", help="the worker's code in this process, not the broker")
    args = ap.parse_args()
    for name in args.which:
        path = Path(REPO_ROOT / SCENARIOS[name])
        figs = run_backtest_cli(path, None, None, None, None, None, None, None, None, None, None, False, [],
                                not args.no_optimum, echo=lambda _m: None, in_process=args.in_process)
        t = figs["total"]
        opt = t["optimal_peak_kw"]
        ref = "optimum skipped" if args.no_optimum else \
            f"optimum {opt}, gap {100.0 * (t['peak_kw'] / opt - 1.0) if opt else float('nan'):.1f} %"
        print(f"{name}: evgrid backtest {SCENARIOS[name]}")
        print(f"  peak {t['peak_kw']} kW (uncontrolled {t['uncontrolled_peak_kw']}, {ref})")
        print(f"  delivered {t['energy_delivered_pct_of_deliverable']} % of deliverable, {t['sessions_short']} "
              f"sessions short; V2G {t['v2g_exported_kwh']} kWh; limit excess {t['limit_violation_kwh']} kWh; "
              f"safety violations {t['safety_violations']}; wall {figs['run']['seconds']['wall']} s")
        if name == "acn":
            print("  target: <= 35.0 kW (ambition 34.0; perfect foresight 33.4; ACN's MPC 36.3) at 100 %")
        elif name == "resi":
            print("  target: >= 99.5 % of deliverable, peak within 5 % (ambition 3 %) of the V2G-aware optimum, "
                  "0 violations")
        else:
            print("  target: V2G > 0, >= 99 % of deliverable, peak within 5 % of the V2G-aware optimum, 0 violations")


if __name__ == "__main__":
    main()
