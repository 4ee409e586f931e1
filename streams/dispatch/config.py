"""The dispatcher's parameters (:class:`DispatchConfig`), built from the environment at the edge."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from streams.dispatch.incentives import IncentiveParams
from streams.dispatch.planner import HOUR_MS, PlannerWeights, SolverLimits
from streams.dispatch.safety import SafetyRules

__all__ = ["MIN_MS", "DispatchConfig", "changed_fields"]

MIN_MS = 60_000


def changed_fields(old: object, new: object) -> list[str]:
    """The fields of the dataclass ``new`` whose values differ in ``old``, e.g. a config restored from a checkpoint
    (one written by an older build lacks some fields, or has a nested value that does: those count as changed)."""
    out = []
    for f in fields(new):  # type: ignore[arg-type]
        try:
            if getattr(old, f.name, MISSING) != getattr(new, f.name):
                out.append(f.name)
        except AttributeError:
            out.append(f.name)
    return out


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Dispatch parameters (built from the environment at the edge: ``streams.settings.dispatch_config``)."""

    step_ms: int = 15 * MIN_MS
    horizon_ms: int = 24 * HOUR_MS
    fine_ms: int | None = 2 * HOUR_MS
    coarse_step_ms: int | None = 30 * MIN_MS
    replan_ms: int = 15 * MIN_MS
    solver_time_limit_s: float = 60.0
    """Wall-clock hang guard of one HiGHS solve, s: its firing is logged and counted (not reproducible)."""
    solver_iteration_limit: int = 50_000
    """Simplex iterations of one HiGHS solve: the deterministic budget; over it the heuristic plans."""
    rules: SafetyRules = field(default_factory=SafetyRules)
    weights: PlannerWeights = field(default_factory=PlannerWeights)
    incentives: IncentiveParams = field(default_factory=IncentiveParams)
    default_import_limit_kw: float = 1_000_000.0
    default_export_limit_kw: float = 0.0
    default_price_per_kwh: float = 0.20
    setpoint_threshold_kw: float = 0.1
    setpoint_refresh_ms: int = 15 * MIN_MS
    setpoint_validity_ms: int = 30 * MIN_MS
    schedule_ms: int = 4 * HOUR_MS
    setpoint_lag_ms: int = 60_000
    """Expected delay from a step's start to its setpoint applying at the charger (the power of the step before runs
    on until then): the plan counts a car's last step before departure as this much shorter."""
    ramp_hold: bool = True
    """A plan counts on a rising feeder load going on rising at its last slope for ``LOAD_HOLD_MS`` (no higher than the
    base-load forecast's upper prediction bound, when the forecast gives one)."""
    base_period_max: bool = True
    """Within each feeder meter reading period, a plan takes the forecast's largest interval (its saw-tooth's top)."""
    charge_taper_soc_pct: float | None = 80.0
    """Plans taper a car's charging above this SoC (%, when its SoC and capacity are known), linearly to
    ``charge_taper_floor`` of its rating when full; ``None`` = no taper planned."""
    charge_taper_floor: float = 0.1
    forecast_arrivals: bool = True
    near_peak_upper_ms: int = 0
    """For this long ahead the near-term peak (``PlannerWeights.near_peak_per_kw``) holds against the base-load
    forecast's upper prediction bound, not its point forecast (0: never)."""
    timezone: str = "UTC"
    arrival_bin_minutes: int = 60
    default_dwell_ms: int = 8 * HOUR_MS
    default_request_kwh: float = 20.0
    settle_period_ms: int = 24 * HOUR_MS
    site_demand_charge_per_kw: float = 0.0
    """Default demand charge of every site per kW of its monthly peak import (a site signal overrides it)."""
    site_meter_stale_ms: int = 30 * MIN_MS
    """No behind-the-meter discharge at a site whose meter has not reported for this long."""
    site_forecast_alpha: float = 0.3
    site_peak_margin: float = 0.0
    """A site's demand-charge peak holds against its own-load forecast plus this many times the forecast's mean
    absolute error (0: the forecast alone; EVGRID_DISPATCH_SITE_PEAK_MARGIN)."""
    battery_round_trip_efficiency: float = 0.9
    battery_min_soc_pct: float = 10.0
    battery_target_soc_pct: float = 50.0
    """A stationary battery's plan ends its horizon at least this full (or as full as it is), %."""
    flexibility_horizon_ms: int = 4 * HOUR_MS
    track_requests: bool = True
    """Solve a counterfactual plan without each feeder-level import-limit request (its baseline)."""

    @property
    def solver_limits(self) -> SolverLimits:
        """What bounds every HiGHS solve of the dispatcher."""
        return SolverLimits(self.solver_iteration_limit, self.solver_time_limit_s)
