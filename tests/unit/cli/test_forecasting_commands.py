"""``evgrid forecast-eval`` on a small synthetic CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from streams.cli.forecasting import parse_duration_ms, register
from tests.unit.forecasting.conftest import T0, Q, synthetic_load


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    return app


def test_forecast_eval_json_shape(app: typer.Typer, tmp_path: Path) -> None:
    load = synthetic_load(16, seed=2)
    csv = tmp_path / "load.csv"
    lines = ["timestamp,kw"]
    for i, v in enumerate(load):  # first half ISO, second half epoch ms
        ts = T0 + i * Q
        lines.append(f"{ts if i > len(load) // 2 else _iso(ts)},{v:.4f}")
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["forecast-eval", "--load", str(csv), "--horizons", "1,4,16",
                                      "--warmup-days", "8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "µs/interval" in result.output and "monthly skill" in result.output
    rows = json.loads(out.read_text())
    base = ("default", "horizon", "mae", "model", "skill", "smape")
    bands = ("coverage_80", "coverage_95", "pinball")
    assert {tuple(sorted(r)) for r in rows if r["model"] == "river-blr"} == {tuple(sorted(base + bands))}
    assert {tuple(sorted(r)) for r in rows if r["model"] != "river-blr"} == {base}
    assert {(r["model"], r["horizon"]) for r in rows} == {
        (m, h) for m in ("river-blr", "naive-day", "naive-week") for h in (1, 4, 16)}
    assert [r["default"] for r in rows if r["model"] == "river-blr"] == [True, True, True]
    assert not any(r["default"] for r in rows if r["model"] != "river-blr")
    by = {(r["model"], r["horizon"]): r for r in rows}
    for h in (1, 4, 16):  # skill is relative to the better naive: that one has skill exactly 0
        assert max(by[("naive-day", h)]["skill"], by[("naive-week", h)]["skill"]) == pytest.approx(0.0)
        mine = by[("river-blr", h)]
        assert 0 <= mine["smape"] <= 2 and mine["mae"] > 0
        assert 0 < mine["coverage_80"] < mine["coverage_95"] <= 1 and 0 < mine["pinball"] < mine["mae"]
    assert by[("river-blr", 1)]["skill"] > 0.2


def test_forecast_eval_on_too_little_history_says_what_it_needs(app: typer.Typer, tmp_path: Path) -> None:
    csv = tmp_path / "load.csv"
    csv.write_text("timestamp,kw\n" + "".join(f"{T0 + i * Q},{v:.3f}\n" for i, v in enumerate(synthetic_load(9))))
    result = CliRunner().invoke(app, ["forecast-eval", "--load", str(csv), "--horizons", "1,96"])
    assert result.exit_code == 2
    assert "covers 9.00 days of load" in result.output and "needs at least 15.01 days" in result.output
    ok = CliRunner().invoke(app, ["forecast-eval", "--load", str(csv), "--horizons", "1,4", "--warmup-days", "1"])
    assert ok.exit_code == 0, ok.output


def test_forecast_eval_rejects_bad_input(app: typer.Typer, tmp_path: Path) -> None:
    csv = tmp_path / "load.csv"
    csv.write_text("time,kw\n1,2\n")
    result = CliRunner().invoke(app, ["forecast-eval", "--load", str(csv)])
    assert result.exit_code != 0


def test_parse_duration() -> None:
    assert parse_duration_ms("15m") == parse_duration_ms("900s") == parse_duration_ms("15") == 900_000
    assert parse_duration_ms("1h") == 3_600_000
    with pytest.raises(typer.BadParameter):
        parse_duration_ms("fifteen")


def _iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
