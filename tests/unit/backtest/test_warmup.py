"""A scenario's ``warmup``: meter and weather history before ``start`` is replayed first, not scored (issue 15)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from streams.backtest.closedloop import InProcessPipeline, run_closed_loop, run_settings
from streams.backtest.inputs import from_scenario
from streams.backtest.report import compute_report
from streams.contracts.timeparse import iso_utc, parse_timestamp_ms
from streams.replay.scenario import load_scenario
from tests.fixtures.acn_sessions import write_fleet

DAY = 86_400_000
START = parse_timestamp_ms("2019-03-04T00:00:00Z")


def _files(tmp: Path) -> Path:
    """Three days of 15-minute load (a 90 kW afternoon on each of the two days before the start, 20 kW otherwise),
    hourly weather, and one car on the third day."""
    with open(tmp / "load.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "kw"])
        for k in range(1, 3 * 96 + 1):
            t = START - 2 * DAY + k * 900_000
            w.writerow([iso_utc(t), 90.0 if t < START and 14 <= (t % DAY) // 3_600_000 < 16 else 20.0])
    with open(tmp / "weather.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "temperature_c", "ghi_wm2"])
        for h in range(1, 3 * 24 + 1):
            w.writerow([iso_utc(START - 2 * DAY + h * 3_600_000), 10.0, 0.0])
    write_fleet(tmp / "s.csv", [("s1", "C-1", "2019-03-04T08:00:00Z", "2019-03-04T12:00:00Z", 10.0)])
    return tmp


def _scenario(tmp: Path, warmup: str | None) -> Path:
    path = tmp / f"sc-{warmup}.yaml"
    path.write_text("name: w\nstart: 2019-03-04T00:00:00Z\nend: 2019-03-04T16:00:00Z\nstep: 5m\n"
                    + (f"warmup: {warmup}\n" if warmup else "")
                    + f"limits: {{import_limit_kw: 100}}\ninputs:\n  sessions: {tmp / 's.csv'}\n"
                    f"  load: {tmp / 'load.csv'}\n  weather: {tmp / 'weather.csv'}\n"
                    "settings: {interval_minutes: 5}\n")
    return path


def test_warmup_keeps_the_history_from_its_start_and_needs_a_start(tmp_path: Path) -> None:
    _files(tmp_path)
    one = from_scenario(load_scenario(_scenario(tmp_path, "1d")))
    assert one.warmup_ms == DAY and one.period() == (START, START + 16 * 3_600_000)  # scored from start
    # the rows from the warm-up start on, stamped at their periods' ends (the first row starting at it ends 15' later)
    assert min(r.timestamp for r in one.readings) == START - DAY + 900_000
    weather = [r.timestamp for s in one.streams for r in s if r.topic == "evgrid.weather"]
    assert min(weather) == START - DAY
    every = from_scenario(load_scenario(_scenario(tmp_path, None)))  # without a warm-up: the files as they are
    assert min(r.timestamp for r in every.readings) == START - 2 * DAY + 2 * 900_000
    with pytest.raises(ValidationError, match="warmup needs a start"):
        load_scenario(_write(tmp_path / "bad.yaml", "name: b\nwarmup: 1d\ninputs:\n"
                             f"  load: {tmp_path / 'load.csv'}\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class _FirstPlan(InProcessPipeline):
    """The worker's code in-process, keeping the first plan request of the feeder."""

    first: Any = None

    def telemetry(self, msgs: list[Any]) -> list[Any]:
        out = super().telemetry(msgs)
        for rt in self.worker.runtimes.values():
            if self.first is None and rt.dispatcher.plan_request is not None:
                self.first = rt.dispatcher.plan_request
        return out


@pytest.mark.slow
def test_the_warmup_feeds_the_running_peak_and_load_history_but_is_not_scored(tmp_path: Path) -> None:
    _files(tmp_path)
    firsts = {}
    for warmup in ("1h", "2d"):
        inputs = from_scenario(load_scenario(_scenario(tmp_path, warmup)))
        settings = run_settings(inputs)
        pipe = _FirstPlan(settings)
        run = run_closed_loop(inputs, settings, pipeline=pipe)
        firsts[warmup] = pipe.first
        rep = compute_report(inputs, setpoints=run.outputs.get("evgrid.setpoints", []), settings=settings, twins=run,
                             optimum=False)
        t = rep.figures["total"]
        assert t["energy_delivered_pct_of_deliverable"] >= 99.0
        assert t["peak_kw"] < 40.0  # the 90 kW afternoons before the start are never scored
    # the first plan knows the month's running peak and yesterday's afternoon from the warm-up's meter readings
    two_days = firsts["2d"]
    assert two_days.peak_floor_kw == pytest.approx(90.0)
    afternoon = [kw for t, kw in zip(two_days.edges_ms, two_days.base_kw, strict=False)
                 if 14 <= (t % DAY) // 3_600_000 < 16]
    assert afternoon and min(afternoon) >= 90.0 - 1e-6
    # an hour of history knows neither
    assert firsts["1h"].peak_floor_kw < 30.0 and max(firsts["1h"].base_kw) < 30.0
