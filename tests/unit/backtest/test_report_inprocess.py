"""Inputs, the in-process pipeline (the worker's own code) and the report on a small sessions file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from streams.backtest.inprocess import run_in_process
from streams.backtest.inputs import from_flags, merged_records
from streams.backtest.report import compute_report, iso, write_setpoints_csv
from streams.backtest.report_html import render_page as render_html
from streams.contracts.topics import CHARGER_TELEMETRY, SETPOINTS
from streams.settings import Settings
from tests.fixtures.acn_sessions import write_fleet

REQUIRED = ("peak_kw", "energy_requested_kwh", "energy_delivered_kwh", "energy_delivered_pct", "v2g_exported_kwh",
            "uncontrolled_peak_kw", "optimal_peak_kw", "limit_violation_kwh", "safety_violations")

ROWS = [  # four cars at 4 stations, overlapping mornings (ACN form)
    ("a1", "CA-1", "2019-03-04T08:00:00Z", "2019-03-04T16:00:00Z", 20.0),
    ("a2", "CA-2", "2019-03-04T08:05:00Z", "2019-03-04T17:00:00Z", 15.0),
    ("a3", "CA-3", "2019-03-04T08:10:00Z", "2019-03-04T12:00:00Z", 10.0),
    ("a4", "CA-4", "2019-03-04T09:00:00Z", "2019-03-04T18:00:00Z", 25.0),
    ("a5", "CA-3", "2019-03-04T12:30:00Z", "2019-03-04T15:00:00Z", 5.0),
]


@pytest.fixture
def sessions_csv(tmp_path: Path) -> Path:
    return write_fleet(tmp_path / "s.csv", ROWS)


def test_inputs_flush_and_order(sessions_csv: Path) -> None:
    inp = from_flags(sessions_csv, step_ms=300_000)
    assert len(inp.sessions) == 5 and sorted(inp.registrations) == ["CA-1", "CA-2", "CA-3", "CA-4"]
    flushed = inp.with_flush()
    assert flushed.n_records == inp.n_records + 2, "two heartbeats of one charger: the end of input"
    recs = list(merged_records(flushed))
    ts = [r["timestamp"] for r in recs]
    assert ts == sorted(ts)
    assert recs[-1]["topic"] == CHARGER_TELEMETRY and recs[-1]["timestamp"] > max(s.departure for s in inp.sessions)


LIMIT_KW = 8.4
"""Binding: the four cars draw 26.4 kW uncontrolled and the dispatcher without a limit peaks at 8.53 kW."""


def test_in_process_pipeline_report(sessions_csv: Path, tmp_path: Path) -> None:
    inp = from_flags(sessions_csv, step_ms=300_000, import_limit_kw=LIMIT_KW)
    settings = Settings(interval_minutes=5, topic_prefix="unit.")
    out = run_in_process(inp, settings)
    sps = out[SETPOINTS]
    assert sps and all(sp.charger_id in inp.registrations for sp in sps)
    rep = compute_report(inp, setpoints=sps, settings=settings, run={"mode": "in-process"})
    t = rep.figures["total"]
    for k in REQUIRED:
        assert k in t and k in rep.figures["feeders"]["feeder-1"]
    assert t["safety_violations"] == 0
    assert t["energy_delivered_pct_of_deliverable"] >= 99.9
    assert t["uncontrolled_peak_kw"] > 3 * LIMIT_KW, "the fleet can break the limit"
    assert t["optimal_peak_kw"] <= t["peak_kw"] <= LIMIT_KW + 1e-6
    assert t["limit_violation_kwh"] == 0.0
    unlimited = run_in_process(from_flags(sessions_csv, step_ms=300_000), settings)[SETPOINTS]
    free = compute_report(inp, setpoints=unlimited, settings=settings, run={"mode": "in-process"}).figures["total"]
    assert free["peak_kw"] > LIMIT_KW and free["limit_violation_kwh"] > 0.1, "the same fleet unlimited breaks it"
    page = render_html(rep)
    assert "Plotly.newPlot" in page and "<script src" not in page  # plotly.js inline: works offline
    json.dumps(rep.figures)  # serialisable
    buf = io.StringIO()
    n = write_setpoints_csv(sps, buf)
    lines = buf.getvalue().splitlines()
    assert n == len(sps) == len(lines) - 1
    assert lines[0] == "charger_id,session_id,valid_from,valid_until,setpoint_kw,reason"
    first = lines[1].split(",")
    assert first[2].endswith("Z") and first[2] == iso(min(sp.valid_from for sp in sps))
