"""Non-wires-alternative figures (``evgrid report nwa``) of the bundled scenarios' closed-loop backtests.

Runs ``evgrid backtest SCENARIO --json --curves`` then ``evgrid report nwa`` exactly as a planner would, and
prints the per-feeder figures beside the backtest's own. Nothing is asserted: it prints figures.

Usage: python benchmarks/nwa_figures.py [acn] [week] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from streams.cli import main as evgrid
from streams.replay.scenario import REPO_ROOT

SCENARIOS = {"acn": "scenarios/acn-caltech-2019-03.yaml", "week": "scenarios/week-v2g-peak-event.yaml"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="nwa-"))
    out.mkdir(parents=True, exist_ok=True)
    for name in args.which:
        bt, curves, nwa = out / f"{name}.json", out / f"{name}.curves.csv", out / f"{name}.nwa.json"
        assert evgrid(["backtest", str(REPO_ROOT / SCENARIOS[name]), "--json", str(bt), "--curves", str(curves),
                       "--no-optimum"]) == 0
        assert evgrid(["report", "nwa", str(bt), "--curves", str(curves), "--json", str(nwa),
                       "--html", str(out / f"{name}.nwa.html")]) == 0
        rep = json.loads(nwa.read_text())
        print(f"{name}: evgrid backtest {SCENARIOS[name]} --curves; evgrid report nwa (files in {out})")
        for feeder, f in rep["feeders"].items():
            print(f"  {feeder}: {json.dumps(f | {'peak_hours': len(f['peak_hours'])})}")
            print(f"  checked against the backtest: {json.dumps(rep['checked_against_backtest'].get(feeder))}")


if __name__ == "__main__":
    main()
