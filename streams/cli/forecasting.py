"""``evgrid forecast-eval``: the streaming forecaster run in-process over a load CSV."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from streams.forecasting.csvio import read_load_csv, read_weather_csv
from streams.forecasting.evaluate import BASELINES, EvalReport, evaluate
from streams.forecasting.forecaster import ForecasterConfig
from streams.forecasting.models import MODEL_FAMILIES

__all__ = ["parse_duration_ms", "register", "report_rows"]

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> int:
    """``15m``, ``900s``, ``1h``, ``900000ms`` (or a bare number of minutes) -> milliseconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise typer.BadParameter(f"bad duration {text!r} (e.g. 15m, 900s, 1h)")
    return int(m.group(1)) * _UNITS[m.group(2) or "m"]


def history_needed_ms(interval_ms: int, max_horizon: int, warmup_days: float) -> int:
    """Load history ``forecast-eval`` needs to score every horizon: the warm-up (at least the week the
    seasonal-naive baseline looks back), then the longest horizon, then one more interval."""
    return max(int(warmup_days * 86_400_000), 7 * 86_400_000) + (max_horizon + 1) * interval_ms


def report_rows(report: EvalReport, default_model: str) -> list[dict[str, Any]]:
    """One JSON object per (model, horizon): ``model, default, horizon, mae, smape, skill`` (fractions), and
    for the evaluated model ``coverage_80``, ``coverage_95`` (fractions) and ``pinball`` (kW)."""
    rows = []
    for model in (report.model, *[b for b in BASELINES if b != report.model]):
        for h in report.horizons:
            s = report.scores.get((model, h))
            if s is None:
                continue
            row: dict[str, Any] = {"model": model, "default": model == default_model, "horizon": h,
                                   "mae": s.mae, "smape": s.smape, "skill": s.skill}
            if model == report.model and not math.isnan(s.pinball):
                row.update(coverage_80=s.coverage_80, coverage_95=s.coverage_95, pinball=s.pinball)
            rows.append(row)
    return rows


def _monthly(report: EvalReport) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for (model, h, month), s in sorted(report.monthly.items()):
        if model == report.model:
            out.setdefault(month, {})[str(h)] = s.skill
    return out


def forecast_eval(
    load: Annotated[Path, typer.Option("--load", exists=True, dir_okay=False, help="CSV timestamp,kw")],
    weather: Annotated[Path | None, typer.Option("--weather", exists=True, dir_okay=False,
                                                 help="CSV timestamp,temperature_c,ghi_wm2[,wind_ms,...]")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Interval length (15m, 1h, ...)")] = "15m",
    horizons: Annotated[str, typer.Option("--horizons", help="Comma-separated steps to score")] = "1,4,16,96",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the per-horizon scores here")] = None,
    model: Annotated[str | None, typer.Option("--model", help=f"One of {', '.join(MODEL_FAMILIES)}")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="Calendar time zone")] = None,
    country: Annotated[str | None, typer.Option("--country", help="Holiday calendar country ('' = none)")] = None,
    horizon_hours: Annotated[float | None, typer.Option("--horizon-hours", help="Forecast horizon")] = None,
    warmup_days: Annotated[float, typer.Option("--warmup-days", help="Unscored warm-up")] = 14.0,
    weather_as_forecast: Annotated[bool, typer.Option(
        "--weather-as-forecast", help="Also feed weather rows as day-ahead forecasts")] = False,
    monthly: Annotated[bool, typer.Option("--monthly/--no-monthly", help="Print skill per month")] = True,
) -> None:
    """Run the streaming forecaster over a load CSV: MAE, sMAPE and skill per horizon, µs per interval."""
    from streams.settings import Settings, forecaster_config

    settings = Settings()
    base = forecaster_config(settings)
    pipeline_model = base.model
    interval_ms = parse_duration_ms(interval)
    hours = horizon_hours if horizon_hours is not None else settings.horizon_hours
    try:
        steps = [int(h) for h in horizons.split(",") if h.strip()]
        cfg = ForecasterConfig(
            interval_ms=interval_ms, horizon=max(1, int(hours * 3_600_000 // interval_ms)),
            model=model or pipeline_model, coverage=base.coverage,
            timezone=timezone or base.timezone,
            holiday_country=(country if country is not None else base.holiday_country) or None,
            forgetting=base.forgetting, warmup_intervals=int(warmup_days * 86_400_000 // interval_ms),
            monitor_horizons=tuple(steps))
        rows = read_load_csv(load)
        wx = read_weather_csv(weather) if weather is not None else None
        if not steps:
            raise ValueError("--horizons names no step")
        span = rows[-1].timestamp - rows[0].timestamp + interval_ms if rows else 0
        need = history_needed_ms(interval_ms, max(steps), warmup_days)
        if span < need:
            typer.echo(f"error: {load.name} covers {span / 86_400_000:.2f} days of load; scoring horizons up to "
                       f"{max(steps)} steps after a {warmup_days:g}-day warm-up needs at least "
                       f"{need / 86_400_000:.2f} days", err=True)
            raise typer.Exit(2)
        with Console(stderr=True).status(f"running the forecaster over {len(rows):,} load rows of {load.name}"):
            report = evaluate(rows, cfg, tuple(steps), wx, weather_as_forecast=weather_as_forecast,
                              warmup_days=warmup_days)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not any(s.n for s in report.scores.values()):
        raise typer.BadParameter(f"{load}: no forecast could be scored: skill is against the seasonal-naive "
                                 f"forecast (one week earlier), so give at least {warmup_days:g} days of warm-up "
                                 "plus a week and a day of data",
                                 param_hint="'--load'")
    console = Console(width=max(Console().width, 120))
    table = Table(title=f"forecast-eval {load.name}: {report.intervals} intervals, "
                        f"{report.us_per_interval:.0f} µs/interval, {report.out_of_range} outside [0, 2×peak]")
    for col in ("model", "horizon", "MAE kW", "sMAPE %", "skill %", "cov %", "cov80 %", "cov95 %", "pinball kW",
                "n"):
        table.add_column(col, justify="left" if col == "model" else "right")
    out = report_rows(report, pipeline_model)
    for r in out:
        s = report.scores[(r["model"], r["horizon"])]
        name = r["model"] + (" (default)" if r["default"] else "")
        cov, c80, c95 = ("" if math.isnan(v) else f"{100 * v:.1f}" for v in (s.coverage, s.coverage_80,
                                                                                  s.coverage_95))
        pin = "" if math.isnan(s.pinball) else f"{s.pinball:.3f}"
        table.add_row(name, str(r["horizon"]), f"{r['mae']:.3f}", f"{100 * r['smape']:.2f}",
                      f"{100 * r['skill']:.1f}", cov, c80, c95, pin, str(s.n))
    console.print(table)
    months = _monthly(report)
    if monthly and months:
        mt = Table(title=f"monthly skill % of {report.model} (target month, after the warm-up)")
        mt.add_column("month")
        for h in report.horizons:
            mt.add_column(f"h={h}", justify="right")
        for month, by_h in months.items():
            mt.add_row(month, *[f"{100 * by_h[str(h)]:.1f}" if str(h) in by_h else "" for h in report.horizons])
        console.print(mt)
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=2))
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add ``forecast-eval`` to the ``evgrid`` CLI."""
    app.command("forecast-eval")(forecast_eval)

