"""Closed loop in-process: twins answer the worker's setpoints; the report scores what they did."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from streams.backtest.closedloop import run_closed_loop, run_settings, twin_config, twin_result
from streams.backtest.inputs import from_flags
from streams.backtest.metrics import Grid
from streams.backtest.report import compute_report
from streams.contracts.topics import CHARGER_TELEMETRY, DEADLETTER, SETPOINTS
from tests.fixtures.acn_sessions import acn_before, write_fleet

ROWS = [  # (id, station, arrival, departure, kWh, bidirectional, initial SoC %)
    ("a1", "CA-1", "2019-03-04T08:00:00Z", "2019-03-04T16:00:00Z", 20.0, False, None),
    ("a2", "CA-2", "2019-03-04T08:05:00Z", "2019-03-04T17:00:00Z", 15.0, True, 30.0),
    ("a3", "CA-3", "2019-03-04T08:10:00Z", "2019-03-04T12:00:00Z", 10.0, False, None),
    ("a4", "CA-4", "2019-03-04T09:00:00Z", "2019-03-04T18:00:00Z", 25.0, False, None),
    ("a5", "CA-3", "2019-03-04T12:30:00Z", "2019-03-04T15:00:00Z", 5.0, False, None),
]


@pytest.fixture
def sessions_csv(tmp_path: Path) -> Path:
    return write_fleet(tmp_path / "s.csv", ROWS)


@pytest.mark.parametrize("near_peak", [0.0, 50.0])  # with the near-term peak on, nobody is pushed to departure
def test_closed_loop_twins_follow_the_pipeline(sessions_csv: Path, near_peak: float) -> None:
    inp = from_flags(sessions_csv, step_ms=300_000, import_limit_kw=12.0)
    settings = run_settings(inp).model_copy(update={"dispatch_near_peak_per_kw": near_peak})
    assert settings.default_import_limit_kw == 12.0 and settings.interval_minutes == 5
    run = run_closed_loop(inp, settings)
    sps = run.outputs[SETPOINTS]
    assert sps and not run.outputs.get(DEADLETTER)
    assert run.accepted[CHARGER_TELEMETRY] == run.telemetry + 2  # every twin report (and the two flush heartbeats)
    rep = compute_report(inp, setpoints=sps, settings=settings, twins=run, run={"loop": "closed"})
    t = rep.figures["total"]
    # what the twins did, not a replay of the setpoints
    got = {r.session.session_id: r.delivered_kwh for r in run.controlled}
    assert t["energy_delivered_kwh"] == pytest.approx(sum(min(v, e) for v, (*_, e, _b, _s) in
                                                          zip(got.values(), ROWS, strict=True)), abs=1e-3)
    assert t["safety_violations"] == 0
    # a plan applies from its receipt (the next report after a boundary), not from the boundary; the plan has the
    # energy in that long before departure, so charging just in time at full power still gets every kWh
    assert t["energy_delivered_pct_of_deliverable"] == 100.0 and not rep.figures["short_sessions"]
    assert t["uncontrolled_peak_kw"] == pytest.approx(4 * 6.6, abs=1e-6)  # four cars at full power
    assert t["peak_kw"] < t["uncontrolled_peak_kw"] - 6.0  # control spread the load
    assert t["optimal_peak_kw"] <= t["peak_kw"] + 1e-6
    # the pipeline heard the energy the twins delivered: no charging after a request is met
    for r in run.controlled:
        assert r.delivered_kwh <= r.session.requested_kwh + 1e-6


def test_without_the_setpoint_lag_a_just_in_time_plan_ends_short(sessions_csv: Path) -> None:
    inp = from_flags(sessions_csv, step_ms=300_000, import_limit_kw=12.0)
    settings = run_settings(inp).model_copy(update={"setpoint_lag_seconds": 0})
    run = run_closed_loop(inp, settings, twin_config(settings, heartbeat_phase_ms=0))
    rep = compute_report(inp, setpoints=run.outputs[SETPOINTS], settings=settings, twins=run, run={"loop": "closed"})
    short = rep.figures["short_sessions"]
    # a4 charges at full power to its departure; with every report on an interval's start (no heartbeat phase) its
    # last rise of power reaches the twin a report (60 s) late
    assert [s["session_id"] for s in short] == ["a4"]
    assert short[0]["deliverable_kwh"] - short[0]["delivered_kwh"] == pytest.approx(0.078, abs=0.01)


def test_closed_loop_is_deterministic_and_scored_from_twin_loads(sessions_csv: Path) -> None:
    inp = from_flags(sessions_csv, step_ms=300_000, import_limit_kw=12.0)
    settings = run_settings(inp)
    a, b = run_closed_loop(inp, settings), run_closed_loop(inp, settings)
    assert a.outputs[SETPOINTS] == b.outputs[SETPOINTS]
    assert [r.delivered_kwh for r in a.controlled] == [r.delivered_kwh for r in b.controlled]
    start, end = inp.period()
    grid = Grid.covering(start, end, inp.step_ms)
    res = twin_result(a.controlled, a.segments, grid, a.uncontrolled)
    load = res.ev_kw["feeder-1"]
    energy = float(load.sum()) * inp.step_ms / 3_600_000
    assert energy == pytest.approx(sum(r.charged_kwh - r.exported_kwh for r in a.controlled), abs=1e-6)


def test_cli_runs_closed_loop_by_default(sessions_csv: Path, tmp_path: Path) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from streams.cli.backtest import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    out, sp = tmp_path / "r.json", tmp_path / "sp.csv"
    res = CliRunner().invoke(app, ["backtest", "--sessions", str(sessions_csv), "--import-limit-kw", "12",
                                   "--json", str(out), "--setpoints", str(sp), "--in-process"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    figs = json.loads(out.read_text())
    assert figs["run"]["loop"] == "closed" and figs["run"]["engine"] == "in-process"  # closed unless --open-loop
    assert figs["run"]["telemetry"] > 0 and figs["run"]["worker"]["rejected"] == {}
    assert figs["total"]["safety_violations"] == 0 and figs["total"]["v2g_exported_kwh"] >= 0.0
    assert len(sp.read_text().splitlines()) == figs["setpoints"]["count"] + 1
    assert "closed loop" in res.output and "peak" in res.output
    from importlib.metadata import version  # the solver's version is in the report: it moves the figures

    assert figs["run"]["versions"]["highspy"] == version("highspy") and figs["run"]["versions"]["python"]


def test_meters_read_ahead_change_nothing(sessions_csv: Path, tmp_path: Path) -> None:
    load = tmp_path / "load.csv"
    with open(load, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "kw"])
        for k in range(12 * 24):  # 5-minute feeder load over the day: a morning bump
            h = k / 12
            w.writerow([f"2019-03-04T{int(h):02d}:{k % 12 * 5:02d}:00Z", 4.0 + (6.0 if 8 <= h < 11 else 0.0)])
    inp = from_flags(sessions_csv, load=load, step_ms=300_000, import_limit_kw=20.0)
    settings = run_settings(inp)
    near = run_closed_loop(inp, settings)
    far = run_closed_loop(inp, settings, lead_ms=6 * 3_600_000)
    assert near.outputs[SETPOINTS] and near.outputs["evgrid.forecasts"]
    assert near.outputs[SETPOINTS] == far.outputs[SETPOINTS]
    assert near.outputs["evgrid.forecasts"] == far.outputs["evgrid.forecasts"]


@pytest.mark.slow
def test_acn_two_days_closed_loop(tmp_path: Path) -> None:

    p = tmp_path / "acn-2d.csv"
    rows = acn_before(p, "2019-03-03")
    inp = from_flags(p, step_ms=300_000, import_limit_kw=50.0)
    settings = run_settings(inp)
    run = run_closed_loop(inp, settings)
    rep = compute_report(inp, setpoints=run.outputs[SETPOINTS], settings=settings, twins=run)
    t = rep.figures["total"]
    assert t["sessions"] == len(rows) and t["safety_violations"] == 0 and t["limit_violation_kwh"] == 0.0
    assert t["energy_delivered_pct_of_deliverable"] >= 99.5, rep.figures["short_sessions"]
    assert t["optimal_peak_kw"] <= t["peak_kw"] < 0.5 * t["uncontrolled_peak_kw"]



@pytest.mark.slow
def test_sites_closed_loop_hold_their_rules_and_a_site_meter_reads_own_load_plus_twins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: a load file's ``site_id`` rows are the site's own load; the closed loop gives the worker what the
    site meter measures at the point of interconnection (own load + the site's charger then), never late. The
    bundled sites day closed loop: no site-level breach, V2G where (and only where) it is allowed."""
    import streams.backtest.closedloop as cl
    from streams.backtest.inputs import from_scenario
    from streams.contracts.codec import default_codec
    from streams.contracts.models import MeterReading, decode_record
    from streams.contracts.topics import METER_READINGS
    from streams.replay.scenario import load_scenario

    given: list[MeterReading] = []

    class Spy(cl.FeederWorker):
        def process(self, msgs, *args, **kwargs):  # type: ignore[no-untyped-def]
            for m in msgs:
                if m.topic == METER_READINGS:
                    rec = decode_record(default_codec(), m.value, "MeterReading")
                    if rec.site_id is not None:
                        given.append(rec)
            return super().process(msgs, *args, **kwargs)

    fleets: list = []
    build = cl.build_fleet

    def spy_fleet(*args, **kwargs):  # type: ignore[no-untyped-def]
        fleets.append(build(*args, **kwargs))
        return fleets[-1]

    monkeypatch.setattr(cl, "FeederWorker", Spy)
    monkeypatch.setattr(cl, "build_fleet", spy_fleet)
    root = Path(__file__).resolve().parents[3]
    ins = from_scenario(load_scenario(root / "scenarios/day-sites-v2g.yaml"))
    own = {m.timestamp: m.active_power_kw for m in ins.readings if m.site_id == "site-B"}
    run = run_closed_loop(ins, run_settings(ins))
    assert run.rejected == {}
    period = 5 * 60_000  # the site meters read every 5 minutes; a reading stamped t ends the period before t

    def twin_kw(cid: str) -> dict[int, float]:
        segs = fleets[0].twins[cid].segments  # the controlled fleet
        return {ts: sum(kw * max(0, min(b, ts) - max(a, ts - period)) for a, b, kw in segs) / period for ts in own}

    twin_b1, twin_bat = twin_kw("B1"), twin_kw("BAT-B")  # site-B: a V2H car and a stationary battery
    assert len(given) == len(own) == 288
    for m in given:
        assert m.active_power_kw == pytest.approx(own[m.timestamp] + twin_b1[m.timestamp]
                                                  + twin_bat[m.timestamp], abs=0.01)
        assert m.active_power_kw > -0.01  # a non-exporting site never exports at its meter
    assert sum(1 for m in given if abs(m.active_power_kw - own[m.timestamp]) > 0.5) > 10  # the car is counted
    # the battery discharged behind the meter (at 3 of the readings' times since the running peak is measured, not
    # forecast: the feeder's plans leave it less to shave, the V2H car does more)
    assert sum(1 for kw in twin_bat.values() if kw < -0.1) >= 2
    rep = compute_report(ins, setpoints=run.outputs[SETPOINTS], settings=run_settings(ins), twins=run,
                         optimum=False).figures
    t = rep["total"]
    assert t["sites"] == 4 and t["site_breaches"] == 0 and t["safety_violations"] == 0, rep["safety_violation_details"]
    assert t["sites_v2g_kwh"].get("parallel_exporting", 0.0) > 1.0
    assert t["sites_v2g_kwh"].get("parallel_non_exporting", 0.0) > 1.0
    assert "non_parallel" not in t["sites_v2g_kwh"]
    assert t["batteries"] == 1 and t["battery_discharged_kwh"] > 0.25  # not counted as V2G nor as a driver's session
    bat = next(r for r in run.controlled if r.session.stationary)
    assert bat.exported_kwh == pytest.approx(t["battery_discharged_kwh"], abs=1e-3) and t["sessions"] == 6
    assert all(s["charger_id"] != "BAT-B" for s in rep["short_sessions"])
    # per site at its meter: site-B's peak and lowest net are those of the readings its meter gave the worker
    sites = t["site_figures"]
    assert set(sites) == {"site-A", "site-B", "site-C", "site-D"}
    assert sites["site-B"]["peak_import_kw"] == pytest.approx(max(m.active_power_kw for m in given), abs=0.01)
    assert sites["site-B"]["min_net_kw"] == pytest.approx(min(m.active_power_kw for m in given), abs=0.01)
    assert sites["site-B"]["own_load_peak_kw"] == pytest.approx(max(own.values()), abs=1e-6)
    assert sites["site-B"]["v2g_kwh"] > 1.0 and sites["site-C"]["v2g_kwh"] == 0.0
    assert sites["site-D"]["min_net_kw"] >= -10.0 - 1e-6  # approved 10 kW at its meter
    assert sites["site-D"]["peak_import_kw"] <= 6.0 + 1e-6  # its 6 kW import (panel) limit
    assert sum(x["ev_energy_kwh"] for x in sites.values()) == pytest.approx(t["ev_energy_kwh"], abs=0.01)
