"""V2B at a workplace building with a demand charge (issue 8), through ``evgrid backtest`` (the one engine).

Runs ``scenarios/month-smart-building.yaml`` (every charger unidirectional) and
``scenarios/month-v2b-building.yaml`` (half of them V2B, behind a ``parallel_non_exporting`` site meter) closed
loop, exactly as ``evgrid backtest SCENARIO`` does, and prints the building's monthly peak import (what the
demand charge bills) uncontrolled / smart / V2B, energy delivered, the lowest site net import (below 0 would be
an export) and the feeder request's window. Nothing is asserted: it prints figures.

Usage: python benchmarks/v2b_building.py [--broker] [--no-optimum]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.cli.backtest import run_backtest_cli
from streams.replay.scenario import REPO_ROOT

RUNS = {"smart": "scenarios/month-smart-building.yaml", "v2b": "scenarios/month-v2b-building.yaml"}
SITE = "bld"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", action="store_true", help="through the local broker (default: in-process)")
    ap.add_argument("--no-optimum", action="store_true", help="skip the feeder's perfect-foresight LP")
    args = ap.parse_args()
    peaks: dict[str, float] = {}
    for name, rel in RUNS.items():
        figs = run_backtest_cli(Path(REPO_ROOT / rel), None, None, None, None, None, None, None, None, None, None,
                                False, [], not args.no_optimum, echo=lambda _m: None, in_process=not args.broker)
        t = figs["total"]
        site = t["site_figures"][SITE]
        peaks[name] = site["peak_import_kw"]
        peaks["uncontrolled"] = site["uncontrolled_peak_import_kw"]
        print(f"{name}: evgrid backtest {rel}{'' if args.broker else ' --in-process'}")
        print(f"  building peak import {site['peak_import_kw']} kW (uncontrolled {site['uncontrolled_peak_import_kw']},"
              f" own load alone {site['own_load_peak_kw']}); lowest net import {site['min_net_kw']} kW; "
              f"V2B {site['v2g_kwh']} kWh")
        print(f"  delivered {t['energy_delivered_pct_of_deliverable']} % of deliverable ({t['sessions_short']} sessions"
              f" short); feeder peak {t['peak_kw']} kW (optimum {t['optimal_peak_kw']}); energy above the feeder "
              f"request {t['limit_violation_kwh']} kWh; safety violations {t['safety_violations']}, site breaches "
              f"{t['site_breaches']}; wall {figs['run']['seconds']['wall']} s")
    rate = 15.0
    cut = peaks["smart"] - peaks["v2b"]
    print(f"monthly peak import: uncontrolled {peaks['uncontrolled']}, smart {peaks['smart']}, V2B {peaks['v2b']} kW;"
          f" V2B saves {cut:.1f} kW ({cut * rate:.0f} per month at {rate:g}/kW)")


if __name__ == "__main__":
    main()
