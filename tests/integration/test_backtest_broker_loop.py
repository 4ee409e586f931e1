"""``evgrid backtest`` closed loop through the real broker (the default): charger twins send telemetry to the topics,
one ``evgrid worker`` subprocess plans, the twins apply its setpoints read from the setpoint topic, in lockstep in
event time. Same inputs, same outputs as the in-process closed loop (``--in-process``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from streams.cli.backtest import register
from streams.replay.scenario import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ROWS = [  # (id, station, arrival, departure, kWh, bidirectional, initial SoC %): 10 hours, 4 chargers
    ("b1", "CB-1", "2019-03-04T08:00:00Z", "2019-03-04T16:00:00Z", 20.0, False, None),
    ("b2", "CB-2", "2019-03-04T08:05:00Z", "2019-03-04T17:00:00Z", 15.0, True, 30.0),
    ("b3", "CB-3", "2019-03-04T08:10:00Z", "2019-03-04T12:00:00Z", 10.0, False, None),
    ("b4", "CB-4", "2019-03-04T09:00:00Z", "2019-03-04T18:00:00Z", 25.0, False, None),
    ("b5", "CB-3", "2019-03-04T12:30:00Z", "2019-03-04T15:00:00Z", 5.0, False, None),
]
LIMIT_KW = 25.0
WEEK = REPO_ROOT / "scenarios/data"  # hourly weather and 15-minute feeder load of 2019-03-04..10


def _morning(name: str, out: Path, scale: float | None = None) -> Path:
    """The rows of a week file from 2019-03-04 00:00 to 12:00 (the worker follows weather apart from the meters that
    learn from it), the second column times ``scale``."""
    lines = (WEEK / name).read_text().splitlines()
    rows = [ln.split(",") for ln in lines[1:] if "2019-03-04" <= ln[:13] < "2019-03-04T12"]
    if scale is not None:
        rows = [[r[0], f"{float(r[1]) * scale:.3f}", *r[2:]] for r in rows]
    out.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    return out


def _sessions(path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session_id", "station_id", "arrival_utc", "departure_utc", "estimated_departure_utc",
                    "requested_energy_kwh", "max_power_kw", "bidirectional", "initial_soc_pct", "capacity_kwh"])
        for sid, st, a, d, e, bidir, soc in ROWS:
            w.writerow([sid, st, a, d, d, e, 6.6, "true" if bidir else "false", "" if soc is None else soc,
                        "" if soc is None else 60.0])
    return path


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


def _rows(path: Path) -> list[tuple[str, ...]]:
    with open(path, newline="") as fh:
        return [tuple(r.values()) for r in csv.DictReader(fh)]


def test_closed_loop_through_the_broker_decides_as_in_process(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    common = ["--sessions", str(_sessions(tmp_path / "s.csv")), "--step", "5m", "--import-limit-kw", str(LIMIT_KW),
              "--weather", str(_morning("week-weather.csv", tmp_path / "w.csv")),
              "--load", str(_morning("week-commercial-load.csv", tmp_path / "l.csv", scale=0.25)), "--no-optimum"]
    b_json, l_json, b_sp, l_sp = (tmp_path / n for n in ("b.json", "l.json", "b.csv", "l.csv"))
    out = _run([*common, "--json", str(b_json), "--setpoints", str(b_sp)], monkeypatch, kafka_bootstrap)
    assert "through the broker" in out
    _run([*common, "--in-process", "--json", str(l_json), "--setpoints", str(l_sp)], monkeypatch, kafka_bootstrap)
    broker, local = json.loads(b_json.read_text()), json.loads(l_json.read_text())
    run = broker["run"]
    assert (run["loop"], run["engine"], local["run"]["engine"]) == ("closed", "broker", "in-process")
    assert run["prefix"].startswith("bt-") and run["lockstep_syncs"] == run["rounds"] == local["run"]["rounds"] > 100
    assert run["telemetry"] == local["run"]["telemetry"]
    # the worker's counts leave the lockstep markers out: exactly the in-process worker's
    assert run["worker"]["accepted"] == local["run"]["worker"]["accepted"]
    assert run["worker"]["accepted"]["evgrid.weather"] > 10 and run["worker"]["accepted"]["evgrid.meter.readings"] > 40
    assert run["worker"]["rejected"] == local["run"]["worker"]["rejected"] == {}
    assert broker["deadletters"]["count"] == 0
    for k in ("peak_kw", "uncontrolled_peak_kw", "energy_delivered_kwh", "energy_delivered_pct_of_deliverable",
              "v2g_exported_kwh", "limit_violation_kwh", "safety_violations"):
        assert broker["total"][k] == local["total"][k], k
    sp_b, sp_l = _rows(b_sp), _rows(l_sp)
    assert len(sp_l) > 50 and sp_b == sp_l  # every setpoint, in the same order
    # the twins followed the setpoints: control held the feeder below uncontrolled charging and every car got what
    # it could (twins ignoring setpoints run at the fallback, 0 kW: nothing; or all at full power: uncontrolled)
    t = broker["total"]
    assert t["peak_kw"] <= LIMIT_KW + 0.5 < t["uncontrolled_peak_kw"]
    assert t["energy_delivered_pct_of_deliverable"] >= 99.5, broker["short_sessions"]
    assert t["safety_violations"] == 0


def test_a_terminated_backtest_stops_its_worker_and_deletes_its_topics(tmp_path: Path, kafka_bootstrap: str) -> None:
    # `kill` (SIGTERM) used to end the backtest at once: its worker subprocess ran on, reparented, and the
    # namespace's topics stayed
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from confluent_kafka.admin import AdminClient

    from tests.fixtures.processes import children, ended, kill_left

    env = {**os.environ, "EVGRID_BOOTSTRAP_SERVERS": kafka_bootstrap, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from streams.cli import app; app()", "backtest", "--sessions",
                             str(_sessions(tmp_path / "s.csv")), "--import-limit-kw", str(LIMIT_KW), "--no-optimum"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    prefix, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        if m := re.search(r"namespace (\S+?)\.?$", line.strip()):
            prefix = m.group(1)
            break
    assert prefix, lines
    workers = children(proc.pid)
    assert workers, lines  # the worker subprocess is running
    time.sleep(2)  # into the run
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert ended(workers, timeout=30)
    finally:  # never leave a worker behind, even when this fails
        kill_left(workers)
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(prefix)]
