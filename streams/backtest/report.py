"""The backtest report: figures (JSON), a self-contained HTML page (interactive plots), a setpoints CSV (pure)."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from streams.backtest.closedloop import ClosedLoopRun, load_curve, twin_result
from streams.backtest.inputs import BacktestInputs
from streams.backtest.metrics import (
    Grid,
    audit_setpoints,
    audit_sites,
    base_load_kw,
    feeder_figures,
    forecast_errors,
    incentive_figures,
    limit_profile,
    settlement_figures,
    simulate_setpoints,
    simulate_uncontrolled,
)
from streams.backtest.optimum import optimal_load
from streams.contracts.models import ChargerSetpoint, DeadLetter, DemandForecast, IncentiveEvent, Settlement
from streams.dispatch.planner import HOUR_MS
from streams.settings import Settings

__all__ = ["Report", "compute_report", "iso", "write_setpoints_csv"]


def iso(ms: int) -> str:
    """UTC epoch ms → ISO 8601 (``2019-03-01T14:20:00Z``)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


@dataclass
class Report:
    """Figures (the JSON) and the load curves (kW per step) behind the plots."""

    figures: dict[str, Any]
    grid: Grid
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Per feeder and ``"total"``: ``controlled``, ``uncontrolled``, ``optimal``, ``base``, ``import_limit``."""
    inputs: BacktestInputs | None = None
    setpoints: Sequence[ChargerSetpoint] = ()
    forecasts: Sequence[DemandForecast] = ()
    settings: Settings | None = None
    """What the page's plots need beyond the figures (sessions' power and SoC, forecasts, setpoints by reason)."""


def _site_v2g(ctrl: Any, inputs: BacktestInputs) -> dict[str, float]:
    """Energy cars discharged per interconnection class of the registered sites (V2G used where allowed), kWh
    (stationary batteries apart: ``battery_discharged_kwh``)."""
    cls = {cid: r.interconnection_class for cid, r in inputs.registrations.items()}
    out: dict[str, float] = {}
    for o in ctrl.sessions:
        if o.exported_kwh > 0 and not o.storage:
            k = cls.get(o.charger_id, "unknown")
            out[k] = round(out.get(k, 0.0) + o.exported_kwh, 3)
    return dict(sorted(out.items()))


def _site_figures(twins: ClosedLoopRun, ctrl: Any, inputs: BacktestInputs, grid: Grid,
                  demand_charge_per_kw: float) -> dict[str, dict[str, Any]]:
    """Per site at its point of interconnection (closed loop): the site's own load (its meter, without its
    chargers) plus what its charger twins drew, per step. ``peak_import_kw`` is what a demand charge bills
    (over the scored period), ``min_net_kw`` < 0 means the site exported, ``v2g_kwh`` is what its cars and
    batteries discharged."""
    own = base_load_kw((r for r in inputs.readings if r.site_id), grid, by=lambda r: r.site_id)
    site_of = {cid: r.site_id for cid, r in inputs.registrations.items()}
    dth = grid.step_ms / HOUR_MS
    zero = np.zeros(grid.n)
    out: dict[str, dict[str, Any]] = {}
    for sid in sorted({*twins.site_segments, *own}):
        load = own.get(sid, zero)
        ev = load_curve(twins.site_segments.get(sid, ()), grid)
        free = load_curve(twins.free_site_segments.get(sid, ()), grid)
        net = load + ev
        out[sid] = {"peak_import_kw": round(float(net.max()), 3),
                    "uncontrolled_peak_import_kw": round(float((load + free).max()), 3),
                    "own_load_peak_kw": round(float(load.max()), 3),
                    "min_net_kw": round(float(net.min()), 3),
                    "ev_energy_kwh": round(float(ev.sum() * dth), 3),
                    "v2g_kwh": round(sum(o.exported_kwh for o in ctrl.sessions if site_of.get(o.charger_id) == sid), 3),
                    "demand_charge_per_kw": demand_charge_per_kw}
    return out


def compute_report(inputs: BacktestInputs, *, setpoints: Sequence[ChargerSetpoint],
                   forecasts: Sequence[DemandForecast] = (), incentives: Sequence[IncentiveEvent] = (),
                   settlements: Sequence[Settlement] = (), deadletters: Sequence[DeadLetter] = (),
                   settings: Settings | None = None, run: dict[str, Any] | None = None,
                   optimum: bool = True, twins: ClosedLoopRun | None = None) -> Report:
    """Score what the pipeline emitted for ``inputs`` (see :mod:`streams.backtest.metrics`).

    ``settings`` are the run's effective settings (fallback, schedule length, reserve, forecast horizons);
    ``run`` is copied into the figures (timings, prefix, counts); ``optimum=False`` skips the LP. With
    ``twins`` (a closed-loop run) the loads, energies and SoC are what the charger twins did, the uncontrolled
    reference is the same twins at full power, and deliverable energy is what they got that way.
    """
    s = settings or Settings()
    start, end = inputs.period()
    grid = Grid.covering(start, end, inputs.step_ms)
    sched_ms = int(s.setpoint_schedule_hours * HOUR_MS)
    if twins is not None:
        ctrl = twin_result(twins.controlled, twins.segments, grid, twins.uncontrolled)
        unc = twin_result(twins.uncontrolled, twins.free_segments, grid, twins.uncontrolled)
    else:
        ctrl = simulate_setpoints(inputs.sessions, setpoints, grid, registrations=inputs.registrations,
                                  schedule_ms=sched_ms, default_fallback_kw=s.fallback_kw,
                                  default_feeder=inputs.feeder_id)
        unc = simulate_uncontrolled(inputs.sessions, grid, inputs.feeder_id)
    bases = base_load_kw(inputs.readings, grid, inputs.feeder_id)
    accepted: list[str] = []  # a backtest has no drivers answering offers
    violations = audit_setpoints(setpoints, inputs.registrations, inputs.sessions, min_soc_pct=ctrl.min_soc_pct,
                                 reserve_soc_pct=s.reserve_soc_pct, export_offers=incentives,
                                 accepted_offer_ids=accepted, battery_min_soc_pct=s.dispatch_battery_min_soc_pct)
    site_breaches = audit_sites(setpoints, inputs.registrations, inputs.sites, inputs.sessions, inputs.readings,
                                schedule_ms=sched_ms, meter_stale_ms=int(s.dispatch_site_meter_stale_seconds * 1000))
    violations += site_breaches
    site_feeder = {r.site_id: r.feeder_id for r in inputs.registrations.values()}
    feeders = sorted({*ctrl.ev_kw, *bases}) or [inputs.feeder_id]
    zero = np.zeros(grid.n)
    per_feeder: dict[str, Any] = {}
    curves: dict[str, dict[str, np.ndarray]] = {}
    regs_by_feeder = {f: {k: r for k, r in inputs.registrations.items() if r.feeder_id == f} for f in feeders}
    v_by_feeder = Counter(inputs.registrations[v.charger_id].feeder_id if v.charger_id in inputs.registrations
                          else site_feeder.get(v.charger_id, inputs.feeder_id) for v in violations)
    tot = {k: np.zeros(grid.n) for k in ("controlled", "uncontrolled", "optimal", "base")}
    opt_delivered_total = 0.0
    imp_total = np.zeros(grid.n)
    exp_total = np.zeros(grid.n)
    for f in feeders:
        base = bases.get(f, zero)
        imp, exp = limit_profile(grid, inputs.import_limit_kw, inputs.export_limit_kw, inputs.signals, f)
        sess = [x for x in inputs.sessions if (x.feeder_id or inputs.feeder_id) == f]
        if optimum and sess:
            opt_ev, opt_del = optimal_load(sess, grid, base, registrations=regs_by_feeder[f],
                                           reserve_soc_pct=s.reserve_soc_pct,
                                           export_limit_kw=np.where(np.isfinite(exp), exp, 1e6), sites=inputs.sites,
                                           site_readings=[r for r in inputs.readings if r.site_id is not None],
                                           physics=twins.physics if twins is not None else None)
        else:
            opt_ev, opt_del = zero.copy(), math.nan
        opt_delivered_total += 0.0 if math.isnan(opt_del) else opt_del
        figs: dict[str, Any] = feeder_figures(grid=grid, controlled=ctrl, uncontrolled=unc,
                                              optimal_ev_kw=opt_ev if optimum else None,
                                              optimal_delivered_kwh=opt_del, base_kw=base, import_limit_kw=imp,
                                              export_limit_kw=exp, feeder_id=f, safety_violations=v_by_feeder[f])
        fc = [x for x in forecasts if x.feeder_id == f]
        if fc and inputs.readings:
            figs["forecast"] = forecast_errors(fc, base, grid, s.metrics_horizons_minutes,
                                               s.metrics_naive_season_hours * HOUR_MS)
        figs["incentives"] = incentive_figures([o for o in incentives if o.feeder_id == f], accepted)
        figs["settlements"] = settlement_figures([x for x in settlements if x.feeder_id == f])
        per_feeder[f] = figs
        c = {"controlled": base + ctrl.ev_kw.get(f, zero), "uncontrolled": base + unc.ev_kw.get(f, zero),
             "optimal": base + opt_ev if optimum else np.full(grid.n, np.nan), "base": base, "import_limit": imp}
        curves[f] = c
        for k in tot:
            tot[k] += c[k]
        imp_total += imp
        exp_total += exp
    curves["total"] = {**tot, "import_limit": imp_total}
    total_ctrl = type(ctrl)(grid, {"total": tot["controlled"] - tot["base"]}, ctrl.sessions)
    total_unc = type(unc)(grid, {"total": tot["uncontrolled"] - tot["base"]}, unc.sessions)
    total: dict[str, Any] = feeder_figures(
        grid=grid, controlled=total_ctrl, uncontrolled=total_unc,
        optimal_ev_kw=tot["optimal"] - tot["base"] if optimum else None,
        optimal_delivered_kwh=opt_delivered_total, base_kw=tot["base"], import_limit_kw=imp_total,
        export_limit_kw=exp_total, feeder_id=None, safety_violations=len(violations))
    total["site_breaches"] = len(site_breaches)
    total["sites"] = len({r.site_id for r in inputs.registrations.values()})
    total["sites_v2g_kwh"] = _site_v2g(ctrl, inputs)
    if twins is not None:
        total["site_figures"] = _site_figures(twins, ctrl, inputs, grid, s.dispatch_site_demand_charge_per_kw)
    total["batteries"] = sum(1 for r in inputs.registrations.values() if r.asset_type == "stationary_battery")
    total["incentives"] = incentive_figures(incentives, accepted)
    total["settlements"] = settlement_figures(settlements)
    reasons = Counter(sp.reason for sp in setpoints)
    figures: dict[str, Any] = {
        "name": inputs.name,
        "period": {"start": iso(grid.t0), "end": iso(grid.end), "step_minutes": grid.step_ms // 60_000},
        "total": total,
        "feeders": per_feeder,
        "setpoints": {"count": len(setpoints), "by_reason": dict(sorted(reasons.items())),
                      "chargers": len({sp.charger_id for sp in setpoints})},
        "forecasts": len(forecasts),
        "deadletters": {"count": len(deadletters),
                        "by_reason": dict(sorted(Counter(d.reason_code for d in deadletters).items()))},
        "safety_violation_details": [asdict(v) for v in violations[:50]],
        "short_sessions": [{"session_id": o.session_id, "charger_id": o.charger_id,
                            "requested_kwh": round(o.requested_kwh, 3), "delivered_kwh": round(o.delivered_kwh, 3),
                            "deliverable_kwh": round(o.deliverable_kwh, 3)}
                           for o in ctrl.sessions
                           if o.delivered_kwh < o.deliverable_kwh - 1e-3 and not o.open_at_end
                           and not o.storage][:50],
        "run": dict(run or {}),
    }
    return Report(figures, grid, curves, inputs=inputs, setpoints=setpoints, forecasts=forecasts, settings=s)


def write_setpoints_csv(setpoints: Iterable[ChargerSetpoint], out: str | Path | IO[str]) -> int:
    """``charger_id, session_id, valid_from, valid_until, setpoint_kw, reason`` (ISO 8601 UTC), in emission
    order per charger (by valid_from, sequence); returns the number of rows."""
    rows = sorted(setpoints, key=lambda sp: (sp.valid_from, sp.charger_id, sp.sequence))
    fh: IO[str] = open(out, "w", newline="") if isinstance(out, str | Path) else out  # noqa: SIM115
    try:
        w = csv.writer(fh)
        w.writerow(["charger_id", "session_id", "valid_from", "valid_until", "setpoint_kw", "reason"])
        for sp in rows:
            w.writerow([sp.charger_id, sp.session_id or "", iso(sp.valid_from), iso(sp.valid_until),
                        f"{sp.setpoint_kw:g}", sp.reason])
    finally:
        if isinstance(out, str | Path):
            fh.close()
    return len(rows)

