"""``evgrid report nwa`` figures on curves small enough to check by hand (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streams.backtest.curves import COLUMNS, read_curves_csv
from streams.backtest.nwa import NwaAssumptions, feeder_nwa, nwa_report
from streams.cli import main

H = 3_600_000
T0 = 1_551_398_400_000  # 2019-03-01T00:00Z


def curves(unc: list[float], ctrl: list[float], imp: float = 50.0, exp: float = np.inf) -> dict[str, np.ndarray]:
    n = len(unc)
    return {"start_ms": T0 + np.arange(n, dtype=np.int64) * (H // 2), "base_kw": np.zeros(n),
            "uncontrolled_kw": np.array(unc, dtype=float), "controlled_kw": np.array(ctrl, dtype=float),
            "import_limit_kw": np.full(n, imp), "export_limit_kw": np.full(n, exp)}


def test_figures_by_hand() -> None:
    # 4 hours of 30-min steps; hour 2 (steps 4, 5) is the peak hour without control
    unc = [10, 20, 40, 60, 90, 70, 30, 10]
    ctrl = [30, 30, 40, 45, 48, 44, 40, 30]
    f = feeder_nwa(curves(unc, ctrl), H // 2, NwaAssumptions(peak_share=0.25, confidence=0.5))
    assert (f["peak_without_control_kw"], f["peak_with_control_kw"], f["peak_reduction_kw"]) == (90.0, 48.0, 42.0)
    assert f["peak_hours"] == [T0 + 2 * H] and f["peak_hours_count"] == 1
    assert f["firm_flexible_kw"] == 34.0  # flexibility 42 and 26 at the peak hour: the median
    assert (f["mean_flexible_kw_at_peak_hours"], f["max_flexible_kw_at_peak_hours"]) == (34.0, 42.0)
    assert f["hours_over_limit_without_control"] == 1.5  # 60, 90, 70 above 50, half an hour each
    assert f["hours_over_limit_with_control"] == 0.0
    assert (f["rating_kw"], f["upgrade_needed_without_control_kw"], f["upgrade_needed_with_control_kw"]) == (
        50.0, 40.0, 0.0)
    assert (f["upgrade_deferred_kw"], f["upgrade_deferred_firm_kw"]) == (40.0, 34.0)  # firm: no more than 34


def test_export_beyond_its_limit_counts_as_over_and_a_demand_response_dip_is_not_the_rating() -> None:
    c = curves([10, 10, 10, 10], [10, -40, 10, 10], exp=30.0)
    c["import_limit_kw"] = np.array([50.0, 50.0, 20.0, 50.0])  # a DR event lowers the limit for one step
    f = feeder_nwa(c, H // 2, NwaAssumptions())
    assert f["steps_over_limit_with_control"] == 1 and f["hours_over_limit_with_control"] == 0.5
    assert f["rating_kw"] == 50.0


def test_the_cli_reads_the_backtest_files_and_refuses_bad_input(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rows = [",".join(COLUMNS)]
    for i, (u, c) in enumerate(zip([10, 90, 20, 10], [30, 45, 30, 30], strict=True)):
        t = f"2019-03-01T0{i // 2}:{'30' if i % 2 else '00'}:00Z"
        rows.append(f"{t},feeder-1,30,0,{c},{u},50,,")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    bt = {"name": "toy", "period": {}, "feeders": {"feeder-1": {"peak_kw": 45.0, "uncontrolled_peak_kw": 90.0,
                                                               "limit_violation_steps": 0}}}
    (tmp_path / "b.json").write_text(json.dumps(bt))
    c, step = read_curves_csv(tmp_path / "c.csv")
    assert step == H // 2 and np.isinf(c["feeder-1"]["export_limit_kw"]).all()
    assert np.isnan(c["feeder-1"]["optimal_kw"]).all()  # written without the optimum
    old = "\n".join([",".join(COLUMNS[:-1]), *(r[:-1] for r in rows[1:])]) + "\n"  # before optimal_kw
    (tmp_path / "old.csv").write_text(old)
    o, _ = read_curves_csv(tmp_path / "old.csv")
    assert (o["feeder-1"]["controlled_kw"] == c["feeder-1"]["controlled_kw"]).all()
    assert np.isnan(o["feeder-1"]["optimal_kw"]).all()
    (tmp_path / "short.csv").write_text(old.replace(",50,\n", ",50\n", 1))
    with pytest.raises(ValueError, match="line 2: 7 cells"):
        read_curves_csv(tmp_path / "short.csv")
    assert main(["report", "nwa", str(tmp_path / "b.json"), "--curves", str(tmp_path / "c.csv"),
                 "--json", str(tmp_path / "n.json"), "--html", str(tmp_path / "n.html")]) == 0
    rep = json.loads((tmp_path / "n.json").read_text())
    assert rep["checked_against_backtest"]["feeder-1"]["peak_kw"] == [45.0, 45.0]
    assert "Firm flexible capacity" in " ".join(rep["assumptions"]["text"])
    assert "feeder-1" in (tmp_path / "n.html").read_text()
    (tmp_path / "bad.csv").write_text("start,kw\n1,2\n")
    capsys.readouterr()
    assert main(["report", "nwa", str(tmp_path / "b.json"), "--curves", str(tmp_path / "bad.csv")]) == 2
    assert main(["report", "nwa", str(tmp_path / "b.json"), "--curves", str(tmp_path / "c.csv"),
                 "--confidence", "1.5"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_assumptions_are_checked(share: float) -> None:
    with pytest.raises(ValueError):
        NwaAssumptions(peak_share=share)


def test_a_report_without_backtest_figures_has_no_checks() -> None:
    rep = nwa_report({"f": curves([1, 2], [1, 1])}, H // 2)
    assert rep["checked_against_backtest"] == {} and rep["feeders"]["f"]["peak_without_control_kw"] == 2.0
