"""``evgrid backtest --open-loop`` through the real broker and a real ``evgrid worker``: the shipped one-day
scenario and the first two days of the ACN month produce the report with every figure, no safety violation, a peak below
uncontrolled charging, and every feasible session served."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from streams.cli.backtest import register
from streams.replay.scenario import REPO_ROOT
from streams.simulate.sessions import BUNDLED_ACN
from tests.fixtures.acn_sessions import acn_before

pytestmark = [pytest.mark.integration]

ACN = BUNDLED_ACN  # the copy of ../shared/data/acn that ships with the simulator
REQUIRED = ("peak_kw", "energy_requested_kwh", "energy_delivered_kwh", "energy_delivered_pct", "v2g_exported_kwh",
            "uncontrolled_peak_kw", "optimal_peak_kw", "limit_violation_kwh", "safety_violations")


def _acn_path() -> Path:
    return ACN


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch, kafka: str) -> str:
    monkeypatch.setenv("EVGRID_BOOTSTRAP_SERVERS", kafka)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    res = CliRunner().invoke(app, ["backtest", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _check(figs: dict, topics_prefix: str) -> None:
    for scope in [figs["total"], *figs["feeders"].values()]:
        for k in REQUIRED:
            assert k in scope, k
    t = figs["total"]
    assert t["safety_violations"] == 0, figs["safety_violation_details"]
    assert t["peak_kw"] < t["uncontrolled_peak_kw"]
    assert t["optimal_peak_kw"] <= t["peak_kw"] + 1e-6
    assert t["energy_delivered_pct_of_deliverable"] >= 99.9, figs["short_sessions"]
    assert figs["setpoints"]["count"] > 0
    assert figs["run"]["prefix"].startswith("bt-") and topics_prefix == figs["run"]["prefix"]


@pytest.mark.timeout(600)
def test_backtest_day_simulated_feeder(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out_json, out_html, out_sp = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "sp.csv"
    _run([str(REPO_ROOT / "scenarios/day-simulated-feeder.yaml"), "--open-loop", "--json", str(out_json),
          "--html", str(out_html), "--setpoints", str(out_sp)], monkeypatch, kafka_bootstrap)
    figs = json.loads(out_json.read_text())
    _check(figs, figs["run"]["prefix"])
    assert figs["forecasts"] > 0 and "forecast" in next(iter(figs["feeders"].values()))
    assert figs["deadletters"]["count"] == 0
    html = out_html.read_text()
    assert "<svg" in html and "uncontrolled" in html
    with out_sp.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == figs["setpoints"]["count"]
    assert set(rows[0]) == {"charger_id", "session_id", "valid_from", "valid_until", "setpoint_kw", "reason"}


@pytest.mark.timeout(600)
def test_backtest_acn_two_days(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src = _acn_path()
    sessions = tmp_path / "acn-2d.csv"
    rows = acn_before(sessions, "2019-03-03", src)
    out_json = tmp_path / "r.json"
    _run(["--sessions", str(sessions), "--open-loop", "--step", "5m", "--json", str(out_json)], monkeypatch,
         kafka_bootstrap)
    figs = json.loads(out_json.read_text())
    _check(figs, figs["run"]["prefix"])
    t = figs["total"]
    assert t["sessions"] == len(rows)
    assert t["energy_requested_kwh"] == pytest.approx(sum(float(r["requested_energy_kwh"]) for r in rows), abs=0.01)
    assert figs["run"]["records_replayed"] == figs["run"]["worker"]["accepted"].get("evgrid.charger.telemetry", 0) + \
        figs["run"]["worker"]["accepted"].get("evgrid.charger.registry", 0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backtest_sites_hold_their_interconnection_rules(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """Issue 14: several exporting chargers behind one meter with a lower site limit, V2H behind a meter, a
    non_parallel site: no site-level breach, V2G used where (and only where) it is allowed."""
    out_json = tmp_path / "r.json"
    _run([str(REPO_ROOT / "scenarios/day-sites-v2g.yaml"), "--open-loop", "--json", str(out_json), "--no-optimum"],
         monkeypatch,
         kafka_bootstrap)
    figs = json.loads(out_json.read_text())
    t = figs["total"]
    assert t["sites"] == 4 and t["site_breaches"] == 0 and t["safety_violations"] == 0, figs["safety_violation_details"]
    assert t["sites_v2g_kwh"].get("parallel_exporting", 0.0) > 1.0
    # behind site-B's meter its battery discharges (below); whether its V2H car does too is the plan's choice on this
    # day (7.6 kWh on the fifteenth session's planner, none since, at a lower feeder peak: 72.61 against 72.87 kW
    # in-process, open loop; the closed loop, where the car's SoC moves, still discharges it 5.2 kWh behind the meter,
    # test_closedloop.py). V2H behind a meter is tested in
    # test_sites.py / test_safety_envelope.py and measured on the V2B building month (docs/backtest.md)
    assert "non_parallel" not in t["sites_v2g_kwh"]
    assert t["batteries"] == 1 and t["battery_discharged_kwh"] > 0.1  # site-B's battery, behind its meter
    assert figs["deadletters"]["count"] == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_month_through_the_broker_decides_as_in_process(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """31 days of a small fleet at a 30-minute step, open loop through the broker and one worker, and through the
    same worker code in-process: the same setpoints, a checkpoint that stays small."""
    from tests.fixtures.long_sessions import write_sessions

    sessions = write_sessions(tmp_path / "month.csv", days=31)
    common = ["--sessions", str(sessions), "--step", "30m", "--import-limit-kw", "20", "--open-loop",
              "--no-optimum"]
    broker_json, local_json = tmp_path / "broker.json", tmp_path / "local.json"
    _run([*common, "--json", str(broker_json), "--setpoints", str(tmp_path / "broker.csv")], monkeypatch,
         kafka_bootstrap)
    _run([*common, "--in-process", "--json", str(local_json), "--setpoints", str(tmp_path / "local.csv")],
         monkeypatch, kafka_bootstrap)
    broker, local = json.loads(broker_json.read_text()), json.loads(local_json.read_text())
    assert broker["total"]["peak_kw"] == local["total"]["peak_kw"] < broker["total"]["uncontrolled_peak_kw"]
    assert broker["total"]["energy_delivered_kwh"] == local["total"]["energy_delivered_kwh"]

    def rows(path: Path) -> set[tuple[str, ...]]:
        with open(path, newline="") as fh:
            return {tuple(r[k] for k in ("charger_id", "valid_from", "valid_until", "setpoint_kw", "reason"))
                    for r in csv.DictReader(fh)}

    got, want = rows(tmp_path / "broker.csv"), rows(tmp_path / "local.csv")
    # Identical, to the last digit, but for the end of input: the flush's last heartbeat (after every session) is
    # released in-process at once and by the worker only once its inputs are quiet (wall clock); nothing scored.
    with open(sessions, newline="") as fh:
        end = max(r["departure_utc"] for r in csv.DictReader(fh))
    assert len(want) > 1000 and len(got ^ want) <= 2 and all(r[1] > end for r in got ^ want), sorted(got ^ want)[:10]
    assert 0 < broker["run"]["worker"]["state_bytes_max"] < 64_000
