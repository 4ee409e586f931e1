"""A new user's first commands, run as the real ``evgrid`` CLI in a subprocess (issue 19).

Bad input: one or two lines on stderr naming the file, line or option, exit 2, no traceback. A broker that
cannot be reached: exit 3 within seconds, naming the address and ``evgrid infra up``. ``--debug`` shows the
traceback. ``backtest --in-process`` runs without a broker and keeps the solver's banner off stdout.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120", **(env or {})}
    full_env.pop("EVGRID_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def assert_short_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert 1 <= len(lines) <= 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in proc.stderr, (n, proc.stderr)


def write_sessions(path: Path, rows: int = 6, bad_row: int | None = None) -> Path:
    t0 = dt.datetime(2019, 3, 4, 7, tzinfo=dt.UTC)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session_id", "station_id", "arrival_utc", "departure_utc", "requested_energy_kwh",
                    "max_power_kw"])
        for i in range(rows):
            a = t0 + dt.timedelta(minutes=20 * i)
            d = a + dt.timedelta(hours=6)
            arrival = "yesterday" if bad_row == i else a.strftime("%Y-%m-%dT%H:%M:%SZ")
            w.writerow([f"s{i}", f"CA-{i % 4}", arrival, d.strftime("%Y-%m-%dT%H:%M:%SZ"), 12.0, 6.6])
    return path


def test_version(tmp_path: Path) -> None:
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("evgrid ") and proc.stdout.split()[1][0].isdigit()


def test_backtest_missing_sessions_file(tmp_path: Path) -> None:
    proc = run_cli("backtest", "--sessions", "/nonexistent.csv", cwd=tmp_path)
    assert_short_error(proc, 2, "/nonexistent.csv", "not found")


def test_backtest_bad_row_names_file_and_line(tmp_path: Path) -> None:
    sessions = write_sessions(tmp_path / "s.csv", bad_row=2)
    proc = run_cli("backtest", "--sessions", str(sessions), "--in-process", cwd=tmp_path)
    assert_short_error(proc, 2, "s.csv:4", "yesterday")


def test_unknown_option_names_it(tmp_path: Path) -> None:
    proc = run_cli("backtest", "--sesions", "x.csv", cwd=tmp_path)
    assert_short_error(proc, 2, "--sesions", "evgrid backtest --help")


def test_bad_option_value(tmp_path: Path) -> None:
    proc = run_cli("simulate", "--dry-run", "--bad-kinds", "gremlins", cwd=tmp_path)
    assert_short_error(proc, 2, "gremlins")


def test_import_acn_of_a_wrong_csv(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    proc = run_cli("import", "acn", "bad.csv", "--out", "o.avro", cwd=tmp_path)
    assert_short_error(proc, 2, "bad.csv", "missing columns", "arrival_utc")
    assert not (tmp_path / "o.avro").exists()


def test_replay_of_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("timestamp,kw\n2026-01-01T00:00Z,1\n")
    proc = run_cli("replay", "x.csv", cwd=tmp_path, env={"EVGRID_BOOTSTRAP_SERVERS": UNREACHABLE})
    assert_short_error(proc, 2, "x.csv", "not a recording")


def test_forecast_eval_with_too_little_data(tmp_path: Path) -> None:
    t0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    rows = [f"{(t0 + dt.timedelta(minutes=15 * i)).isoformat()},{50 + i % 96}" for i in range(7 * 96)]
    (tmp_path / "week.csv").write_text("timestamp,kw\n" + "\n".join(rows) + "\n")
    proc = run_cli("forecast-eval", "--load", "week.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "week.csv" in proc.stderr and "7.00 days" in proc.stderr and "warm-up" in proc.stderr
    assert "MAE" not in proc.stdout  # no empty table


@pytest.mark.slow
@pytest.mark.parametrize("args", [("backtest", "--sessions", "SESSIONS", "--open-loop"), ("topics", "create"),
                                  ("simulate", "--hours", "1", "--quiet")])
def test_unreachable_broker_is_one_line_within_seconds(tmp_path: Path, args: tuple[str, ...]) -> None:
    sessions = write_sessions(tmp_path / "s.csv")
    t0 = time.monotonic()
    proc = run_cli(*[str(sessions) if a == "SESSIONS" else a for a in args], cwd=tmp_path,
                   env={"EVGRID_BOOTSTRAP_SERVERS": UNREACHABLE})
    took = time.monotonic() - t0
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert UNREACHABLE in proc.stderr and "evgrid infra up" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert took < 20, took  # the preflight gives up after 6 s (a minute of librdkafka retries before)


def test_scenario_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\ninputs: [\n")
    proc = run_cli("backtest", "bad.yaml", "--in-process", cwd=tmp_path)
    assert_short_error(proc, 2, "bad.yaml: line 3")


def test_scenario_schema_error_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: x\ninputs: {}\nlimitz: 3\n")
    proc = run_cli("backtest", "s.yaml", "--in-process", cwd=tmp_path)
    assert_short_error(proc, 2, "s.yaml:", "limitz")


def test_bad_step_names_the_option(tmp_path: Path) -> None:
    sessions = write_sessions(tmp_path / "s.csv")
    proc = run_cli("backtest", "--sessions", str(sessions), "--step", "90m", "--in-process", cwd=tmp_path)
    assert_short_error(proc, 2, "'--step'", "1 to 60")


def test_bad_environment_setting_names_the_variable(tmp_path: Path) -> None:
    proc = run_cli("config", "show", cwd=tmp_path, env={"EVGRID_PARTITIONS": "many"})
    assert_short_error(proc, 2, "EVGRID_PARTITIONS", "integer")


def test_import_of_a_header_only_file_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text("timestamp,temperature_c,ghi_wm2\n")
    proc = run_cli("import", "weather", "w.csv", "--out", "w.avro", cwd=tmp_path)
    assert_short_error(proc, 2, "w.csv", "no records")
    assert not (tmp_path / "w.avro").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("--debug", "backtest", "--sessions", "/nonexistent.csv", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr


@pytest.mark.slow
def test_backtest_in_process_without_a_broker(tmp_path: Path) -> None:
    sessions = write_sessions(tmp_path / "s.csv", rows=8)
    proc = run_cli("backtest", "--sessions", str(sessions), "--open-loop", "--in-process", "--import-limit-kw", "30",
                   "--json", "r.json", "--html", "r.html", "--setpoints", "sp.csv", cwd=tmp_path,
                   env={"EVGRID_BOOTSTRAP_SERVERS": UNREACHABLE}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HiGHS" not in proc.stdout and "Copyright" not in proc.stdout
    assert "in-process pipeline" in proc.stdout and "peak" in proc.stdout
    import json

    figures = json.loads((tmp_path / "r.json").read_text())
    assert figures["run"]["engine"] == "in-process" and figures["run"]["loop"] == "open"
    assert figures["setpoints"]["count"] > 0 and figures["total"]["safety_violations"] == 0
    # 8 cars x 6.6 kW uncontrolled exceed the 30 kW limit; the pipeline keeps under it
    assert figures["total"]["uncontrolled_peak_kw"] > 30 >= figures["total"]["peak_kw"] - 1e-6
    assert (tmp_path / "r.html").stat().st_size > 0
    assert (tmp_path / "sp.csv").read_text().startswith("charger_id,")
