"""``evgrid report nwa``: non-wires-alternative figures over a backtest result (see :mod:`streams.backtest.nwa`).

Reads what ``evgrid backtest SCENARIO --json FIGURES --curves CURVES`` wrote; writes JSON and HTML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.errors import InputError

__all__ = ["register"]

report_app = typer.Typer(no_args_is_help=True, help="Reports over backtest results.")


@report_app.command("nwa")
def nwa_cmd(
    figures: Annotated[Path, typer.Argument(help="The backtest's figures (`evgrid backtest --json`).")],
    curves: Annotated[Path, typer.Option(help="The backtest's curves (`evgrid backtest --curves`).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here (default: stdout).")
                        ] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the HTML page here.")] = None,
    peak_share: Annotated[float, typer.Option(help="Share of the hours counted as peak hours.")] = 0.05,
    confidence: Annotated[float, typer.Option(help="Confidence of the firm flexible capacity (0.9 = P10).")
                          ] = 0.9,
) -> None:
    """Per feeder: peak with and without control, firm flexible capacity at the peak hours, hours over the
    limit without control, kW of capacity upgrade deferred; with the assumptions stated."""
    from streams.backtest.curves import read_curves_csv
    from streams.backtest.nwa import NwaAssumptions, nwa_report, render_nwa_html

    try:
        assumptions = NwaAssumptions(peak_share=peak_share, confidence=confidence)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        bt = json.loads(figures.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{figures}: not a backtest's JSON figures: {exc}") from None
    if not isinstance(bt, dict) or "feeders" not in bt:
        raise InputError(f"{figures}: not a backtest's JSON figures (no `feeders`)")
    try:
        c, step_ms = read_curves_csv(curves)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    rep = nwa_report(c, step_ms, bt, assumptions)
    text = json.dumps(rep, indent=1)
    if json_out is not None:
        json_out.write_text(text)
    else:
        typer.echo(text)
    if html_out is not None:
        html_out.write_text(render_nwa_html(rep))
    if json_out is not None:
        for f, figs in rep["feeders"].items():
            typer.echo(f"{f}: peak {figs['peak_with_control_kw']} kW (without control "
                       f"{figs['peak_without_control_kw']}); firm flexible {figs['firm_flexible_kw']} kW at "
                       f"{figs['peak_hours_count']} peak hours; {figs['hours_over_limit_without_control']} h over the "
                       f"limit without control; upgrade deferred {figs['upgrade_deferred_kw']} kW "
                       f"(firm {figs['upgrade_deferred_firm_kw']})")


def register(app: typer.Typer) -> None:
    """Add the ``report`` group to the evgrid CLI."""
    app.add_typer(report_app, name="report")
