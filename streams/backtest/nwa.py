"""Non-wires-alternative figures for a planner (``evgrid report nwa``), from a backtest's curves. Pure.

Per feeder, over the backtest's period (every kW is averaged over one step):
- ``peak_without_control_kw`` / ``peak_with_control_kw``: the highest load with the fleet charging at full
  power on arrival, and as evgrid controlled it (the backtest's ``uncontrolled_peak_kw`` and ``peak_kw``);
- ``peak_hours``: the clock hours with the highest mean load without control, the top ``peak_share`` of
  the period's hours (at least one);
- flexibility at a step = load without control − load with control (kW the fleet moved off that step,
  V2G discharge included); ``firm_flexible_kw`` is its ``1 − confidence`` quantile over the steps of the peak
  hours (``confidence`` 0.9: the 10th percentile, a capacity the fleet met or beat in 90 % of them);
- ``hours_over_limit_without_control`` / ``..._with_control``: hours with the load above the import limit in
  force (or below minus the export limit);
- ``rating_kw``: the feeder's standing import limit (the median of the limit in force: a demand-response
  event lowers it for a few hours, it is not the rating); ``upgrade_needed_*_kw`` = peak − rating (≥ 0);
  ``upgrade_deferred_kw`` = needed without − needed with control; ``upgrade_deferred_firm_kw`` = the same, no
  more than the firm flexible capacity (what a planner can count on at ``confidence``).
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from streams.backtest.curves import Curves

__all__ = ["NwaAssumptions", "feeder_nwa", "nwa_report", "render_nwa_html"]

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class NwaAssumptions:
    """The choices behind the figures (written into the report)."""

    peak_share: float = 0.05
    """Share of the period's hours counted as peak hours (the highest mean load without control)."""
    confidence: float = 0.9
    """Firm flexible capacity = the (1 − confidence) quantile of the flexibility over the peak hours."""

    def __post_init__(self) -> None:
        if not 0.0 < self.peak_share <= 1.0:
            raise ValueError("peak_share must be in (0, 1]")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError("confidence must be in (0, 1)")


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def feeder_nwa(c: dict[str, np.ndarray], step_ms: int, a: NwaAssumptions) -> dict[str, Any]:
    """The figures of one feeder's curves (see the module docstring)."""
    unc, ctrl = c["uncontrolled_kw"], c["controlled_kw"]
    imp, exp = c["import_limit_kw"], c["export_limit_kw"]
    dt_h = step_ms / HOUR_MS
    hours = c["start_ms"] // HOUR_MS
    keys, inverse = np.unique(hours, return_inverse=True)
    hourly = np.bincount(inverse, weights=unc) / np.bincount(inverse)
    n_peak = max(1, math.ceil(a.peak_share * len(keys)))
    top = np.argsort(-hourly, kind="stable")[:n_peak]
    in_peak = np.isin(inverse, top)
    flex = unc - ctrl
    peak_flex = flex[in_peak]

    def over(load: np.ndarray) -> np.ndarray:
        return (load - imp > 1e-6) | (-load - exp > 1e-6)

    finite = imp[np.isfinite(imp)]
    rating = float(np.median(finite)) if finite.size else math.inf
    peak_unc, peak_ctrl = float(unc.max()), float(ctrl.max())
    need_unc = max(0.0, peak_unc - rating) if math.isfinite(rating) else 0.0
    need_ctrl = max(0.0, peak_ctrl - rating) if math.isfinite(rating) else 0.0
    firm = float(np.quantile(peak_flex, 1.0 - a.confidence))
    deferred = need_unc - need_ctrl
    return {
        "peak_without_control_kw": _r(peak_unc),
        "peak_with_control_kw": _r(peak_ctrl),
        "peak_reduction_kw": _r(peak_unc - peak_ctrl),
        "peak_hours": [int(keys[i]) * HOUR_MS for i in sorted(top)],
        "peak_hours_count": n_peak,
        "firm_flexible_kw": _r(firm),
        "mean_flexible_kw_at_peak_hours": _r(float(peak_flex.mean())),
        "max_flexible_kw_at_peak_hours": _r(float(peak_flex.max())),
        "hours_over_limit_without_control": _r(float(over(unc).sum()) * dt_h, 4),
        "hours_over_limit_with_control": _r(float(over(ctrl).sum()) * dt_h, 4),
        "steps_over_limit_with_control": int(over(ctrl).sum()),
        "rating_kw": _r(rating) if math.isfinite(rating) else None,
        "upgrade_needed_without_control_kw": _r(need_unc),
        "upgrade_needed_with_control_kw": _r(need_ctrl),
        "upgrade_deferred_kw": _r(deferred),
        "upgrade_deferred_firm_kw": _r(max(0.0, min(deferred, firm))),
    }


ASSUMPTIONS_TEXT = (
    "Loads are the backtest's, averaged over its step: without control = the same cars charging at full power on "
    "arrival; with control = as evgrid's setpoints made them (closed loop: charger twins).",
    "Peak hours: the clock hours with the highest mean load without control ({peak_share:.0%} of the period's "
    "hours, at least one).",
    "Flexibility at a step = load without control - load with control (kW moved off that step, V2G included). "
    "Firm flexible capacity: its {q:.0%} quantile over the steps of the peak hours (met or beaten in "
    "{confidence:.0%} of them).",
    "Rating: the median import limit in force over the period (a demand-response event lowers the limit for a "
    "few hours; it is not the rating). Upgrade needed = peak - rating (>= 0).",
    "Upgrade deferred = needed without control - needed with control; the firm figure counts no more than the "
    "firm flexible capacity. One period of history: another year, more cars or other drivers change it.",
)


def nwa_report(curves: Curves, step_ms: int, backtest: dict[str, Any] | None = None,
               a: NwaAssumptions | None = None) -> dict[str, Any]:
    """The report: per feeder figures, the assumptions, and the backtest figures they are checked against."""
    a = a or NwaAssumptions()
    feeders = {f: feeder_nwa(c, step_ms, a) for f, c in sorted(curves.items())}
    checks = {}
    for f, figs in feeders.items():
        bt = ((backtest or {}).get("feeders") or {}).get(f)
        if bt is not None:
            checks[f] = {"peak_kw": [figs["peak_with_control_kw"], bt.get("peak_kw")],
                         "uncontrolled_peak_kw": [figs["peak_without_control_kw"], bt.get("uncontrolled_peak_kw")],
                         "limit_violation_steps": [figs["steps_over_limit_with_control"],
                                                   bt.get("limit_violation_steps")]}
    text = [t.format(peak_share=a.peak_share, q=1 - a.confidence, confidence=a.confidence)
            for t in ASSUMPTIONS_TEXT]
    return {"name": (backtest or {}).get("name"), "period": (backtest or {}).get("period"),
            "step_minutes": step_ms // 60_000, "assumptions": {**asdict(a), "text": text},
            "units": {"*_kw": "kW", "hours_*": "h", "peak_hours": "UTC epoch ms of each hour's start"},
            "feeders": feeders, "checked_against_backtest": checks}


def render_nwa_html(rep: dict[str, Any]) -> str:
    """A self-contained page: a table per feeder, the assumptions, the checks against the backtest."""
    from streams.backtest.report import iso

    e = html.escape
    rows = []
    for f, figs in rep["feeders"].items():
        cells = "".join(f"<tr><th>{e(k)}</th><td>{e(', '.join(iso(t) for t in v) if k == 'peak_hours' else str(v))}"
                        "</td></tr>" for k, v in figs.items())
        rows.append(f"<h2>Feeder {e(f)}</h2><table>{cells}</table>")
    checks = "".join(f"<li>{e(f)}: " + "; ".join(f"{e(k)} {e(str(v[0]))} (backtest {e(str(v[1]))})"
                                                 for k, v in c.items()) + "</li>"
                     for f, c in rep["checked_against_backtest"].items())
    assumptions = "".join(f"<li>{e(t)}</li>" for t in rep["assumptions"]["text"])
    title = f"Non-wires alternative: {rep.get('name') or 'backtest'}"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + e(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}th{text-align:left;padding-right:1em}"
            "td{text-align:right}</style></head><body><h1>" + e(title) + "</h1>"
            + (f"<p>Period {e(str(rep['period']))}</p>" if rep.get("period") else "")
            + "".join(rows) + "<h2>Assumptions</h2><ul>" + assumptions + "</ul>"
            + "<h2>Checked against the backtest</h2><ul>" + checks + "</ul></body></html>")
