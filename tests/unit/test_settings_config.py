"""The edge builds the core's typed config from the environment's settings (``streams.settings.*_config``)."""

from __future__ import annotations

from streams.settings import Settings, dispatch_config, feeder_config, forecaster_config, pipeline_config


def test_pipeline_config_carries_the_settings_in_ms() -> None:
    s = Settings(
        interval_minutes=5,
        grace_seconds=120,
        align_idle_seconds=7,
        max_plan_lag_seconds=600,
        max_message_bytes=2_000_000,
        max_future_seconds=60,
        horizon_hours=12,
    )
    cfg = pipeline_config(s)
    assert (cfg.max_message_bytes, cfg.max_future_ms) == (2_000_000, 60_000)
    assert (cfg.feeder.step_ms, cfg.feeder.grace_ms, cfg.feeder.align_idle_ms, cfg.feeder.max_plan_lag_ms) == (
        300_000,
        120_000,
        7_000,
        600_000,
    )
    assert cfg.feeder.forecaster.interval_ms == 300_000 and cfg.feeder.forecaster.horizon == 144
    assert cfg.feeder.dispatch.step_ms == 300_000 and cfg.feeder.dispatch.horizon_ms == 12 * 3_600_000
    assert cfg.feeder == feeder_config(s)


def test_forecaster_config_maps_the_default_model_and_warmup() -> None:
    s = Settings(forecast_model="default", forecast_warmup_days=2, interval_minutes=15, holiday_country="")
    cfg = forecaster_config(s)
    assert cfg.model == "river-blr" and cfg.warmup_intervals == 2 * 96 and cfg.holiday_country is None
    assert forecaster_config(Settings(forecast_model="fls")).model == "fls"


def test_dispatch_config_coarse_steps_and_replan_floor() -> None:
    off = dispatch_config(Settings(dispatch_coarse_step_minutes=0, dispatch_replan_minutes=1, interval_minutes=15))
    assert off.fine_ms is None and off.coarse_step_ms is None and off.replan_ms == 15 * 60_000
    on = dispatch_config(Settings(dispatch_coarse_step_minutes=30, dispatch_fine_horizon_minutes=120))
    assert on.fine_ms == 120 * 60_000 and on.coarse_step_ms == 30 * 60_000


def test_dispatch_config_carries_the_solver_limits() -> None:
    cfg = dispatch_config(Settings(solver_iteration_limit=1234, solver_time_limit_s=7.5))
    assert (cfg.solver_limits.iteration_limit, cfg.solver_limits.time_limit_s) == (1234, 7.5)


def test_dispatch_config_carries_the_planner_weights() -> None:
    w = dispatch_config(Settings(dispatch_flatten_per_kwh=0.2, dispatch_flatten_levels=4,
                                 dispatch_early_per_kwh_hour=0.01, cycling_cost_per_kwh=0.3)).weights
    assert (w.flatten_per_kwh, w.flatten_levels, w.early_per_kwh_hour, w.cycling_per_kwh) == (0.2, 4, 0.01, 0.3)
    assert dispatch_config(Settings()).weights.early_per_kwh_hour == 1e-4
