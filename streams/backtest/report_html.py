"""The backtest report as a page people read: the headline in words, interactive plots, labelled tables.

Plots are plotly figures with plotly.js inlined once, so the page works offline (zoom, pan, hover). Every time
axis is UTC and says so; figures carry their units; raw keys appear only in a collapsed JSON block at the end.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from streams.backtest.report import Report

__all__ = ["LABELS", "human_label", "render_page"]

LABELS: dict[str, tuple[str, str]] = {
    "peak_kw": ("Peak import with evgrid", "kW"),
    "uncontrolled_peak_kw": ("Peak import, uncontrolled (full power from plug-in)", "kW"),
    "optimal_peak_kw": ("Peak import, perfect-foresight optimum", "kW"),
    "energy_requested_kwh": ("Energy requested by drivers", "kWh"),
    "energy_delivered_kwh": ("Energy delivered", "kWh"),
    "energy_delivered_pct": ("Energy delivered, share of requested", "%"),
    "energy_deliverable_kwh": ("Energy deliverable (request, capped by rating × time plugged in)", "kWh"),
    "energy_delivered_pct_of_deliverable": ("Energy delivered, share of deliverable", "%"),
    "sessions": ("Charging sessions", ""),
    "sessions_open_at_end": ("Sessions still plugged in at the end (not judged)", ""),
    "sessions_short": ("Sessions that got less than deliverable", ""),
    "v2g_exported_kwh": ("Energy exported by cars (V2G)", "kWh"),
    "battery_discharged_kwh": ("Energy discharged by stationary batteries", "kWh"),
    "battery_charged_kwh": ("Energy charged by stationary batteries", "kWh"),
    "batteries": ("Stationary batteries", ""),
    "optimal_energy_delivered_kwh": ("Energy the optimum delivers", "kWh"),
    "limit_violation_kwh": ("Energy above the feeder's limits", "kWh"),
    "limit_violation_steps": ("Steps above the feeder's limits", ""),
    "safety_violations": ("Safety violations found by the setpoint audit", ""),
    "load_factor": ("Load factor (mean import / peak import)", ""),
    "ev_energy_kwh": ("EV energy, net of V2G", "kWh"),
    "offered": ("Offers made", ""),
    "offered_kwh": ("Energy offered for", "kWh"),
    "offered_compensation": ("Compensation offered", ""),
    "accepted": ("Offers accepted (a backtest has no drivers answering)", ""),
    "accepted_cost": ("Compensation of accepted offers", ""),
    "count": ("Settlements", ""),
    "exported_kwh": ("Energy exported, settled", "kWh"),
    "amount": ("Amount settled", ""),
    "records_replayed": ("Input records", ""),
    "wall_s": ("Wall time, whole command", "s"),
    "processing_s": ("Pipeline processing", "s"),
    "report_s": ("Scoring and report", "s"),
    "worker_start_s": ("Worker start", "s"),
    "replay_s": ("Replay into Kafka", "s"),
    "collect_s": ("Reading the outputs", "s"),
    "total_s": ("Pipeline, total", "s"),
}
"""Figure key → (what it is, unit)."""

REASONS = {
    "optimal": "optimal plan", "fallback_heuristic": "fallback heuristic (solver failed or too slow)",
    "stale_telemetry": "stale telemetry (safe value)", "infeasible_request": "request infeasible (best effort)",
    "unplugged": "unplugged", "backup_mode": "backup mode (islanded)", "clipped_by_safety": "clipped by safety",
}

_UNIT_SUFFIXES = (("_pct", "%"), ("_kwh", "kWh"), ("_kw", "kW"), ("_ms", "ms"), ("_s", "s"))
_COLOURS = {"controlled": "#1f77b4", "uncontrolled": "#d62728", "optimal": "#2ca02c", "base": "#7f7f7f",
            "import_limit": "#ff7f0e"}
_NAMES = {"controlled": "with evgrid", "uncontrolled": "uncontrolled", "optimal": "perfect-foresight optimum",
          "base": "base load (no EVs)", "import_limit": "import limit"}
SAMPLE_SESSIONS = 6
TIME_AXIS = "Time (UTC)"


def human_label(key: str) -> tuple[str, str]:
    """(label, unit) of a figure key: from :data:`LABELS`, else from its name (``export_kwh`` → Export, kWh)."""
    if key in LABELS:
        return LABELS[key]
    for suffix, unit in _UNIT_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " ").capitalize(), unit
    return key.replace("_", " ").capitalize(), ""


def _num(v: Any, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        text = f"{int(v):,}"
    elif isinstance(v, float):
        a = abs(v)
        if a >= 100:
            text = f"{v:,.0f}"
        elif a >= 1:
            text = f"{v:,.1f}"
        else:
            text = f"{v:.2f}" if a >= 0.01 else f"{v:.2g}"
    else:
        return html.escape(str(v))
    return f"{text} {unit}".strip() if unit and unit != "%" else f"{text}{unit}"


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _times(t0: int, step_ms: int, n: int) -> list[dt.datetime]:
    base = dt.datetime.fromtimestamp(t0 / 1000, dt.UTC).replace(tzinfo=None)
    return [base + dt.timedelta(milliseconds=step_ms * i) for i in range(n)]


def _naive(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)


# --- plots -------------------------------------------------------------------------------------------

class _Plots:
    """Renders plotly figures as HTML fragments; the first one carries plotly.js inline."""

    def __init__(self) -> None:
        self.first = True
        self.count = 0

    def __call__(self, fig: Any, height: int = 420, legend_below: bool = False) -> str:
        fig.update_layout(height=height, margin={"l": 70, "r": 30, "t": 90, "b": 60}, template="plotly_white",
                          hovermode="x unified", title={"y": 0.97, "yanchor": "top"},
                          legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
                          font={"family": "system-ui, sans-serif", "size": 13})
        fig.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M UTC", tickformatstops=[
            {"dtickrange": [None, 86_400_000], "value": "%H:%M\n%b %d"},
            {"dtickrange": [86_400_000, None], "value": "%b %d"}])
        if legend_below:  # long legends go under the time axis
            fig.update_layout(legend={"yanchor": "top", "y": -0.16}, margin={"b": 160})
        bottom = sorted((k for k in fig.layout.to_plotly_json() if k.startswith("xaxis")),
                        key=lambda k: int(k[5:] or 1))[-1]
        fig.layout[bottom].title.text = TIME_AXIS
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, config={"displaylogo": False,
                          "responsive": True, "toImageButtonOptions": {"format": "png"}})
        self.first = False
        self.count += 1
        return str(out)


def _load_figure(report: Report, key: str, title: str) -> Any:
    import plotly.graph_objects as go

    curves = report.curves.get(key, {})
    g = report.grid
    x = _times(g.t0, g.step_ms, g.n)
    fig = go.Figure()
    for name in ("base", "uncontrolled", "optimal", "controlled", "import_limit"):
        v = curves.get(name)
        if v is None:
            continue
        v = np.asarray(v, dtype=float)
        if not np.isfinite(v).any() or (name == "base" and not np.any(v)):
            continue
        y = np.where(np.isfinite(v), v, np.nan)
        dash = "dash" if name in ("import_limit", "optimal") else "solid"
        width = 2.2 if name == "controlled" else 1.4
        fig.add_trace(go.Scatter(x=x, y=y, name=_NAMES[name], mode="lines", line_shape="hv",
                                 line={"color": _COLOURS[name], "dash": dash, "width": width},
                                 hovertemplate="%{y:.1f} kW"))
    fig.update_layout(title=title)
    fig.update_yaxes(title_text="Feeder load, kW (import +)", rangemode="tozero", ticksuffix=" ")
    return fig


def _session_curves(report: Report) -> tuple[dict[str, np.ndarray], list[tuple[Any, np.ndarray]]]:
    """V2G export per feeder (kW, step averages) and the power of a sample of sessions."""
    from streams.backtest.metrics import simulate_setpoints

    inputs, s = report.inputs, report.settings
    export: dict[str, np.ndarray] = {}
    sample: list[tuple[Any, np.ndarray]] = []
    if inputs is None or s is None:
        return export, sample
    by_charger: dict[str, list[Any]] = defaultdict(list)
    for sp in report.setpoints:
        by_charger[sp.charger_id].append(sp)
    sessions = sorted(inputs.sessions, key=lambda x: (x.arrival, x.session_id))
    bidir = [x for x in sessions if x.bidirectional]
    picks = {id(x) for x in _spread(bidir, SAMPLE_SESSIONS // 2)}
    picks |= {id(x) for x in _spread([x for x in sessions if id(x) not in picks], SAMPLE_SESSIONS - len(picks))}
    schedule_ms = int(s.setpoint_schedule_hours * 3_600_000)
    for sess in sessions:
        if not sess.bidirectional and id(sess) not in picks:
            continue
        sim = simulate_setpoints([sess], by_charger.get(sess.station_id, []), report.grid,
                                 registrations=inputs.registrations, schedule_ms=schedule_ms,
                                 default_fallback_kw=s.fallback_kw, default_feeder=inputs.feeder_id)
        (feeder, kw), = sim.ev_kw.items()
        if sess.bidirectional:
            export.setdefault(feeder, np.zeros(report.grid.n))
            export[feeder] += np.maximum(0.0, -kw)
        if id(sess) in picks:
            sample.append((sess, kw))
    return export, sample


def _spread(items: Sequence[Any], k: int) -> list[Any]:
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else [items[len(items) // 2]]


def _v2g_figure(report: Report, export: dict[str, np.ndarray]) -> Any:
    import plotly.graph_objects as go

    x = _times(report.grid.t0, report.grid.step_ms, report.grid.n)
    fig = go.Figure()
    for feeder, kw in sorted(export.items()):
        fig.add_trace(go.Scatter(x=x, y=kw, name=f"V2G export, {feeder}", mode="lines", line_shape="hv",
                                 fill="tozeroy", hovertemplate="%{y:.1f} kW"))
    fig.update_layout(title="Power exported to the grid by cars (V2G)")
    fig.update_yaxes(title_text="Export, kW", rangemode="tozero")
    return fig


def _sessions_figure(report: Report, sample: list[tuple[Any, np.ndarray]]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    g = report.grid
    x = _times(g.t0, g.step_ms, g.n)
    has_soc = any(sess.capacity_kwh and sess.initial_soc_pct is not None for sess, _ in sample)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Charging power (+) / discharge (−)",
                                        "State of charge" if has_soc else "Energy charged since plug-in"))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    dt_h = g.step_ms / 3_600_000
    for i, (sess, kw) in enumerate(sample):
        a, b = max(0, (sess.arrival - g.t0) // g.step_ms), min(g.n, -(-(sess.departure - g.t0) // g.step_ms))
        if b <= a:
            continue
        colour = palette[i % len(palette)]
        until = "%H:%M" if _naive(sess.arrival).date() == _naive(sess.departure).date() else "%b %d %H:%M"
        label = (f"{sess.station_id}{' (V2G)' if sess.bidirectional else ''}, "
                 f"{_naive(sess.arrival):%b %d %H:%M}–{_naive(sess.departure):{until}}, "
                 f"wants {sess.requested_energy_kwh:.1f} kWh")
        fig.add_trace(go.Scatter(x=x[a:b], y=kw[a:b], name=label, legendgroup=label, mode="lines", line_shape="hv",
                                 line={"color": colour}, hovertemplate="%{y:.1f} kW"), row=1, col=1)
        energy = np.cumsum(kw[a:b]) * dt_h
        if sess.capacity_kwh and sess.initial_soc_pct is not None:
            y, fmt = sess.initial_soc_pct + 100.0 * energy / sess.capacity_kwh, "%{y:.0f} %"
        elif not has_soc:
            y, fmt = energy, "%{y:.1f} kWh"
        else:
            continue
        fig.add_trace(go.Scatter(x=x[a:b], y=y, name=label, legendgroup=label, showlegend=False, mode="lines",
                                 line={"color": colour}, hovertemplate=fmt), row=2, col=1)
    fig.update_yaxes(title_text="kW", row=1, col=1)
    fig.update_yaxes(title_text="SoC, %" if has_soc else "kWh", rangemode="tozero", row=2, col=1)
    fig.update_layout(title=f"A sample of {len(sample)} sessions: what each car got")
    return fig


def _forecast_figure(report: Report, feeder: str) -> Any | None:
    import plotly.graph_objects as go

    fcs = [f for f in report.forecasts if f.feeder_id == feeder]
    base = report.curves.get(feeder, {}).get("base")
    if not fcs or base is None or not np.any(base):
        return None
    wanted = 60 if report.settings is None or 60 in report.settings.metrics_horizons_minutes else min(
        report.settings.metrics_horizons_minutes)
    pts: dict[int, tuple[float, float, float]] = {}
    for fc in fcs:
        for p in fc.points:
            if p.step * fc.step_ms // 60_000 == wanted:
                pts[p.start] = (p.kw, p.lower_kw, p.upper_kw)
    if not pts:
        return None
    ts = sorted(pts)
    xs = [_naive(t) for t in ts]
    g = report.grid
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[pts[t][2] for t in ts], mode="lines", line={"width": 0}, showlegend=False,
                             hoverinfo="skip", line_shape="hv"))
    fig.add_trace(go.Scatter(x=xs, y=[pts[t][1] for t in ts], mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(31,119,180,0.18)", name="prediction interval", line_shape="hv",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=_times(g.t0, g.step_ms, g.n), y=base, name="measured base load", mode="lines",
                             line={"color": "#333", "width": 1.4}, line_shape="hv", hovertemplate="%{y:.1f} kW"))
    fig.add_trace(go.Scatter(x=xs, y=[pts[t][0] for t in ts], name=f"forecast {wanted} min ahead", mode="lines",
                             line={"color": "#1f77b4", "width": 2}, line_shape="hv", hovertemplate="%{y:.1f} kW"))
    fig.update_layout(title=f"Forecast {wanted} minutes ahead vs measured, {feeder}")
    fig.update_yaxes(title_text="Base load, kW", rangemode="tozero")
    return fig


def _reasons_figure(report: Report) -> Any | None:
    import plotly.graph_objects as go

    if not report.setpoints:
        return None
    bucket = 3_600_000 if report.grid.n * report.grid.step_ms > 6 * 3_600_000 else report.grid.step_ms
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for sp in report.setpoints:
        counts[sp.reason][sp.valid_from - sp.valid_from % bucket] += 1
    fig = go.Figure()
    for reason in sorted(counts, key=lambda r: -sum(counts[r].values())):
        ts = sorted(counts[reason])
        fig.add_trace(go.Bar(x=[_naive(t) for t in ts], y=[counts[reason][t] for t in ts],
                             name=REASONS.get(reason, reason), hovertemplate="%{y} setpoints"))
    per = "hour" if bucket == 3_600_000 else f"{bucket // 60_000} minutes"
    fig.update_layout(barmode="stack", title=f"Setpoints issued per {per}, by reason", bargap=0.05)
    fig.update_yaxes(title_text=f"Setpoints per {per}")
    return fig


# --- tables and words --------------------------------------------------------------------------------

def _figures_table(figs: dict[str, Any]) -> str:
    rows = []
    for key, value in figs.items():
        if isinstance(value, dict | list):
            continue
        label, unit = human_label(key)
        rows.append(f"<tr><th>{html.escape(label)}</th><td class='n'>{_num(value, unit)}</td></tr>")
    return "<table class='figs'>" + "".join(rows) + "</table>"


def _dict_table(title: str, d: dict[str, Any], key_head: str, names: dict[str, str] | None = None) -> str:
    if not d:
        return ""
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += [f"<tr><th>{html.escape(human_label(k)[0])}: {html.escape(str(kk).replace('_', ' '))}</th>"
                     f"<td class='n'>{_num(vv)}</td></tr>" for kk, vv in v.items()]
            continue
        label, unit = human_label(k) if names is None else (names.get(k, k), "")
        rows.append(f"<tr><th>{html.escape(label)}</th><td class='n'>{_num(v, unit)}</td></tr>")
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    return (f"{head}<table><tr><th>{html.escape(key_head)}</th><th>value</th></tr>"
            + "".join(rows) + "</table>")


def _rows_table(rows: list[dict[str, Any]], limit: int = 50) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(' '.join(x for x in human_label(k) if x))}</th>" for k in keys)
    body = []
    for r in rows[:limit]:
        cells = []
        for k in keys:
            v = r.get(k)
            if isinstance(v, int) and k.endswith(("_at", "at", "from", "until", "start", "end")) and v > 10**11:
                cells.append(f"<td>{_utc(v)}</td>")
            else:
                cells.append(f"<td class='n'>{_num(v)}</td>" if isinstance(v, int | float) else
                             f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _forecast_table(fc: dict[str, Any]) -> str:
    if not fc:
        return ""
    rows = []
    for h, d in fc.items():
        skill = (1 - d["mae_kw"] / d["naive_mae_kw"]) * 100 if d.get("naive_mae_kw") else math.nan
        rows.append(f"<tr><td class='n'>{int(h)} min</td><td class='n'>{_num(d['mae_kw'], 'kW')}</td>"
                    f"<td class='n'>{_num(d['smape_pct'], '%')}</td><td class='n'>{_num(d['naive_mae_kw'], 'kW')}</td>"
                    f"<td class='n'>{_num(skill, '%')}</td><td class='n'>{_num(d['points'])}</td></tr>")
    return ("<h4>Forecast error by horizon</h4><table><tr><th>ahead</th><th>mean absolute error</th><th>sMAPE</th>"
            "<th>seasonal-naive error</th><th>skill vs naive</th><th>points</th></tr>" + "".join(rows) + "</table>")


def _headline(f: dict[str, Any], limit_kw: float | None) -> str:
    t = f["total"]
    peak, unc, opt = t["peak_kw"], t["uncontrolled_peak_kw"], t["optimal_peak_kw"]
    change = 100 * (peak / unc - 1) if unc > 0 else 0.0
    cut = f" ({abs(change):.0f} % {'lower' if change < 0 else 'higher'})" if unc > 0 and round(change) else ""
    parts = [f"<li><b>Peak import {_num(peak, 'kW')}</b> with evgrid, against {_num(unc, 'kW')} uncontrolled{cut}"
             + (f" and {_num(opt, 'kW')} with perfect foresight.</li>" if opt is not None
                else " (the perfect-foresight optimum was not computed).</li>"),
             f"<li><b>Drivers got {_num(t['energy_delivered_pct'], '%')}</b> of the energy they asked for "
             f"({_num(t['energy_delivered_kwh'], 'kWh')} of {_num(t['energy_requested_kwh'], 'kWh')}), "
             f"{_num(t['energy_delivered_pct_of_deliverable'], '%')} of what their plug-in time allowed; "
             f"{_num(t['sessions_short'])} of {_num(t['sessions'])} sessions got less than that.</li>"]
    if limit_kw is not None:
        over = t["limit_violation_kwh"]
        parts.append(f"<li><b>Feeder limit {_num(limit_kw, 'kW')}</b>: "
                     + ("never exceeded.</li>" if over == 0 else
                        f"exceeded by {_num(over, 'kWh')} in {_num(t['limit_violation_steps'])} steps.</li>"))
    parts.append(f"<li><b>V2G</b>: cars exported {_num(t['v2g_exported_kwh'], 'kWh')} to the grid.</li>")
    sv = t["safety_violations"]
    parts.append(f"<li><b>Safety</b>: {'no setpoint broke a safety rule' if sv == 0 else f'{sv} safety violations'}"
                 f" (every setpoint audited against the chargers' limits, export rules and SoC reserve).</li>")
    return "<ul class='headline'>" + "".join(parts) + "</ul>"


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1.5em;color:#222}"
        "h1{margin-bottom:.2em}.sub{color:#555;margin-top:0}table{border-collapse:collapse;margin:.6em 0 1.2em}"
        "th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;font-size:14px}th{background:#f6f6f6;"
        "font-weight:500}td.n{text-align:right;font-variant-numeric:tabular-nums}.headline{font-size:17px;"
        "line-height:1.6}.note{color:#555;font-size:14px}details{margin:2em 0}pre{background:#f8f8f8;"
        "padding:1em;overflow:auto;font-size:12px}.cols{display:flex;gap:2em;flex-wrap:wrap}")


def render_page(report: Report) -> str:
    """The whole HTML page (self-contained: plotly.js inline, no network)."""
    import plotly.graph_objects as go  # noqa: F401  (fail early if plotly is missing)

    f = report.figures
    plot = _Plots()
    name = html.escape(str(f.get("name")))
    period = f["period"]
    start, end = report.grid.t0, report.grid.end
    limit = report.inputs.import_limit_kw if report.inputs is not None else None
    feeders = list(f.get("feeders", {}))
    body = [f"<h1>Backtest: {name}</h1>",
            f"<p class='sub'>{_utc(start)} to {_utc(end)} ({(end - start) / 86_400_000:.1f} days, "
            f"{period['step_minutes']}-minute steps) · {len(feeders)} feeder{'s' if len(feeders) != 1 else ''} · "
            f"{_num(f['setpoints']['count'])} setpoints to {_num(f['setpoints']['chargers'])} chargers · "
            "<b>all times UTC</b></p>",
            "<h2>In short</h2>", _headline(f, limit),
            "<p class='note'>Loads are what the chargers would have drawn following the setpoints evgrid emitted "
            "(each applies its latest valid setpoint, capped by what its car still needs); <i>uncontrolled</i> "
            "charges at full power from plug-in; the <i>optimum</i> plans the whole period knowing every arrival "
            "in advance (one linear program). Drag to zoom, double-click to reset, hover for values.</p>"]
    if len(feeders) > 1:
        body.append(plot(_load_figure(report, "total", "All feeders: load with evgrid vs uncontrolled vs optimum")))
    for feeder in feeders:
        body.append(plot(_load_figure(report, feeder, f"Feeder {feeder}: load with evgrid vs uncontrolled vs "
                                                      "optimum vs limit")))
    export, sample = _session_curves(report)
    body.append("<h2>V2G export</h2>")
    if export and any(np.any(v > 1e-9) for v in export.values()):
        body.append(plot(_v2g_figure(report, export), height=320))
    else:
        body.append("<p>No car exported power to the grid in this run"
                    + (" (no bidirectional cars in the sessions)." if not export else ".") + "</p>")
    body.append("<h2>Sessions</h2>")
    if sample:
        body.append(plot(_sessions_figure(report, sample), height=640, legend_below=True))
    body.append("<h2>Forecasts</h2>")
    shown = False
    for feeder in feeders:
        fig = _forecast_figure(report, feeder)
        if fig is not None:
            body.append(plot(fig, height=380))
            shown = True
    if not shown:
        body.append("<p>No forecast to show: forecasts need the feeder's measured load (give <code>--load</code> "
                    "or a scenario with load).</p>")
    body.append("<h2>Setpoints</h2>")
    rf = _reasons_figure(report)
    if rf is not None:
        body.append(plot(rf, height=340))
    body.append(_dict_table("Setpoints by reason", f["setpoints"]["by_reason"], "reason", REASONS))
    body.append("<h2>Figures</h2>")
    if len(feeders) > 1:
        body += ["<h3>All feeders</h3>", _figures_table(f["total"])]
    for feeder, figs in f.get("feeders", {}).items():
        body += [f"<h3>Feeder {html.escape(feeder)}</h3>", "<div class='cols'><div>", _figures_table(figs),
                 "</div><div>", _forecast_table(figs.get("forecast", {})),
                 _dict_table("Incentives", figs.get("incentives", {}), "figure"),
                 _dict_table("Settlements", figs.get("settlements", {}), "figure"), "</div></div>"]
    dl = f.get("deadletters", {})
    body.append(f"<h3>Rejected input records: {_num(dl.get('count', 0))}</h3>")
    body.append(_dict_table("Dead letters by reason", dl.get("by_reason", {}), "reason", {}))
    if f.get("short_sessions"):
        body += ["<h3>Sessions that got less than deliverable (first 50)</h3>", _rows_table(f["short_sessions"])]
    if f.get("safety_violation_details"):
        body += ["<h3>Safety violations (first 50)</h3>", _rows_table(f["safety_violation_details"])]
    run = f.get("run", {})
    engine = "in-process (no broker)" if run.get("engine") == "in-process" else "Kafka broker and a worker process"
    loop = ("closed loop: charger and car twins answer the setpoints" if run.get("loop") == "closed"
            else "open loop: recorded telemetry replayed")
    run_rows = {"mode": f"{loop}; {engine}",
                "records_replayed": run.get("records_replayed"),
                **{f"{k}_s": v for k, v in (run.get("seconds") or {}).items() if v}}
    body += ["<h3>Run</h3>", _dict_table("", {k: v for k, v in run_rows.items() if v is not None}, "")]
    body.append("<details><summary>All figures as JSON (the <code>--json</code> output)</summary><pre>"
                + html.escape(json.dumps(f, indent=1, default=str)) + "</pre></details>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>evgrid backtest {name}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
