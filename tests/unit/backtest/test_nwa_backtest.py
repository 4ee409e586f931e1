"""``evgrid report nwa`` over ``evgrid backtest`` runs of the bundled scenarios, cut to a few days so the test
stays short (the full month and week: ``benchmarks/nwa_figures.py``): every figure the report shares with the
backtest is the backtest's, and the upgrade deferred follows from the backtest's peaks and the rating."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from streams.backtest.curves import read_curves_csv
from streams.cli import main
from streams.contracts.timeparse import parse_timestamp_ms
from streams.replay.scenario import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("scenario", "start", "end", "rating", "optimum"), [
    ("acn-caltech-2019-03.yaml", "2019-03-05T00:00:00Z", "2019-03-06T00:00:00Z", 50.0, True),
    ("week-v2g-peak-event.yaml", "2019-03-06T14:00:00Z", "2019-03-07T02:00:00Z", 160.0, False),  # the DR event
])
def test_nwa_figures_are_the_backtests(tmp_path: Path, scenario: str, start: str, end: str, rating: float,
                                       optimum: bool) -> None:
    sc = yaml.safe_load((REPO_ROOT / "scenarios" / scenario).read_text())
    sc.update(start=start, end=end)
    path = tmp_path / scenario
    path.write_text(yaml.safe_dump(sc))
    bt, curves, nwa = tmp_path / "bt.json", tmp_path / "curves.csv", tmp_path / "nwa.json"
    assert main(["backtest", str(path), "--json", str(bt), "--curves", str(curves), "--in-process",
                 "--html", str(tmp_path / "bt.html"),
                 *([] if optimum else ["--no-optimum"])]) == 0
    assert main(["report", "nwa", str(bt), "--curves", str(curves), "--json", str(nwa),
                 "--html", str(tmp_path / "nwa.html")]) == 0
    figs, rep = json.loads(bt.read_text()), json.loads(nwa.read_text())
    (feeder,) = figs["feeders"]
    b, n = figs["feeders"][feeder], rep["feeders"][feeder]
    opt = read_curves_csv(curves)[0][feeder]["optimal_kw"]
    if optimum:  # the optimum's curve is in the file, and its peak is the figure's
        assert opt.max() == pytest.approx(b["optimal_peak_kw"], abs=1e-3) and opt.max() < b["uncontrolled_peak_kw"]
    else:  # not computed says so: no figure (the base load's peak once stood in for it), no curve
        assert np.isnan(opt).all()
        assert b["optimal_peak_kw"] is None and figs["total"]["optimal_peak_kw"] is None
        assert figs["total"]["optimal_energy_delivered_kwh"] is None
        assert "optimum was not computed" in (tmp_path / "bt.html").read_text()
    check = rep["checked_against_backtest"][feeder]
    assert set(check) == {"peak_kw", "uncontrolled_peak_kw", "limit_violation_steps"}
    # the report reads the curves CSV (4 decimals) and rounds to 3: a peak of x.0545.. may come out 0.001 apart
    assert check["peak_kw"] == [pytest.approx(b["peak_kw"], abs=1.5e-3), b["peak_kw"]]
    assert check["uncontrolled_peak_kw"] == [pytest.approx(b["uncontrolled_peak_kw"], abs=1.5e-3),
                                             b["uncontrolled_peak_kw"]]
    assert check["limit_violation_steps"] == [b["limit_violation_steps"]] * 2
    assert n["rating_kw"] == rating
    need = max(0.0, b["uncontrolled_peak_kw"] - rating) - max(0.0, b["peak_kw"] - rating)
    assert n["upgrade_deferred_kw"] == pytest.approx(need, abs=2e-3)
    assert 0.0 <= n["upgrade_deferred_firm_kw"] <= max(0.0, n["firm_flexible_kw"]) + 1e-9
    hours = (parse_timestamp_ms(end) - parse_timestamp_ms(start)) // 3_600_000
    assert n["peak_hours_count"] == max(1, math.ceil(0.05 * hours))  # the default share of the period's hours
