"""A deterministic, realistic sample of every metric, built from contract models through the metric functions.

Used by the dashboard integration test and by ``evgrid dashboards sample-data`` (to look at the dashboards
without running the pipeline). Pure: the caller passes the end time; the same inputs give the same points.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from streams.contracts.models import (
    ChargerSetpoint,
    ChargerTelemetry,
    DemandForecast,
    Flexibility,
    FlexibilityPoint,
    ForecastPoint,
    IncentiveEvent,
    IncentiveResponse,
    UtilityEvent,
)
from streams.sinks.metrics import (
    DEFAULT_HORIZONS_MIN,
    ForecastErrorTracker,
    MetricPoint,
    PipelineCounters,
    feeder_point,
    feeder_state_points,
    fleet_point,
    flexibility_point,
    forecast_points,
    incentive_point,
    setpoint_points,
    utility_event_point,
)

__all__ = ["sample_points"]

STEP_MS = 900_000
DAY_MS = 86_400_000
TOPICS = ("evgrid.meter.readings", "evgrid.charger.telemetry", "evgrid.grid.signals")


def _load(feeder_idx: int, t: int) -> float:
    """Base load with a daily shape, kW."""
    phase = 2 * math.pi * ((t % DAY_MS) / DAY_MS)
    return 250.0 + 60.0 * feeder_idx + 120.0 * math.sin(phase - 1.2) + 40.0 * math.sin(2 * phase)


def _utility_events(feeder: str, t: int) -> list[MetricPoint]:
    """Now and then a backup episode (started, ended 20 min later), every 6 h a site's status change."""
    k = t // STEP_MS
    events = []
    if k % 8 == 0:
        events.append(UtilityEvent(event_id=f"{feeder}:b:{t}", kind="backup_started", feeder_id=feeder, site_id="s1",
                                   charger_id=f"{feeder}-c1", at=t, message="islanded"))
        events.append(UtilityEvent(event_id=f"{feeder}:e:{t}", kind="backup_ended", feeder_id=feeder, site_id="s1",
                                   charger_id=f"{feeder}-c1", at=t + 1_200_000, duration_s=1_200.0,
                                   message="grid-connected again"))
    if k % 24 == 5:
        events.append(UtilityEvent(event_id=f"{feeder}:s:{t}", kind="status_change", feeder_id=feeder, site_id="s2",
                                   at=t, status="suspended" if k % 48 == 5 else "approved",
                                   effective_class="non_parallel", message="status change"))
    if k % 24 == 9:
        events.append(UtilityEvent(event_id=f"{feeder}:p:{t}", kind="pathway_refused", feeder_id=feeder,
                                   site_id="s3", charger_id=f"{feeder}-c3", at=t, effective_class="non_parallel",
                                   message="pathway refused"))
    return [p for e in events if (p := utility_event_point(e)) is not None]


def sample_points(end_ms: int, *, feeders: Sequence[str] = ("feeder-1", "feeder-2"), hours: int = 30,
                  pipeline_hours: int = 2, worker: str = "evgrid-sample", chargers: int = 20,
                  seed: int = 7) -> list[MetricPoint]:
    """Points for ``hours`` of 15-minute intervals and ``pipeline_hours`` of per-minute worker metrics.

    Parameters
    ----------
    end_ms : int
        Last timestamp (UTC epoch ms); intervals are aligned to 15 minutes and end at or before it.
    feeders : sequence of str
        Feeder ids.
    hours : int
        Hours of per-feeder history; more than 24 gives seasonal-naive baselines.
    pipeline_hours : int
        Hours of per-minute pipeline metrics (worker ``worker``).
    """
    rng = random.Random(seed)
    last = end_ms - end_ms % STEP_MS - STEP_MS
    first = last - hours * 3_600_000
    horizons = DEFAULT_HORIZONS_MIN
    tracker = ForecastErrorTracker(horizons_min=horizons)
    out: list[MetricPoint] = []
    accepted: dict[str, list[IncentiveEvent]] = {f: [] for f in feeders}
    for t in range(first, last + 1, STEP_MS):
        for i, feeder in enumerate(feeders):
            load = _load(i, t) + rng.gauss(0.0, 12.0)
            import_limit = 420.0 if i == 0 else 380.0
            p = feeder_point(feeder, t, load, import_limit_kw=import_limit, export_limit_kw=50.0,
                             meters_reporting=40 - rng.randrange(3))
            out += [p] if p else []
            out += tracker.add_actual(feeder, t, load)
            fc = DemandForecast(feeder_id=feeder, issued_at=t + STEP_MS, step_ms=STEP_MS, model_id="online-v1",
                                coverage=0.9, reporting_share=0.95, points=[ForecastPoint(
                                    step=k, start=t + k * STEP_MS, kw=(kw := _load(i, t + k * STEP_MS)
                                                                       + rng.gauss(0.0, 6.0 + k / 8)),
                                    lower_kw=kw - 30.0 - k / 4, upper_kw=kw + 30.0 + k / 4)
                                    for k in range(1, 97)])
            out += forecast_points(fc, horizons)
            tracker.add_forecast(fc)
            telemetry = []
            for c in range(chargers):
                heard = t - (2_000_000 if rng.random() < 0.1 else rng.randrange(60_000))
                connected = rng.random() < 0.6
                kw = 0.0
                if connected:
                    kw = -rng.uniform(2.0, 7.0) if (c % 5 == 0 and load > import_limit - 60) else rng.uniform(0, 11)
                telemetry.append(ChargerTelemetry(charger_id=f"{feeder}-c{c}", feeder_id=feeder, timestamp=heard,
                                                  connected=connected, power_kw=kw, max_charge_kw=11.0,
                                                  max_discharge_kw=7.0))
            out += [p] if (p := fleet_point(feeder, t, telemetry, 900_000)) else []
            flex = Flexibility(feeder_id=feeder, issued_at=t, step_ms=STEP_MS, points=[FlexibilityPoint(
                start=t, baseline_kw=sum(x.power_kw for x in telemetry), up_kw=rng.uniform(20, 80),
                down_kw=rng.uniform(30, 120), energy_up_kwh=rng.uniform(100, 300),
                energy_down_kwh=rng.uniform(50, 200))])
            out += [p] if (p := flexibility_point(flex)) else []
            setpoints = [ChargerSetpoint(charger_id=x.charger_id, feeder_id=feeder, sequence=t // STEP_MS,
                                         setpoint_kw=x.power_kw, valid_from=t, valid_until=t + STEP_MS,
                                         fallback_kw=0.0, plan_id=f"{feeder}-{t}", issued_at=t,
                                         reason="optimal" if t - x.timestamp <= 900_000 else "stale_telemetry")
                         for x in telemetry]
            out += setpoint_points(feeder, t, setpoints)
            offers = [IncentiveEvent(offer_id=f"{feeder}-{t}-{k}", feeder_id=feeder, charger_id=f"{feeder}-c{k}",
                                     customer_id=f"u{k}", action="export" if k % 2 else "delay_charging",
                                     window_start=t + STEP_MS, window_end=t + 5 * STEP_MS,
                                     expected_kwh=rng.uniform(2, 10), compensation=rng.uniform(1, 5),
                                     expires_at=t + STEP_MS, issued_at=t, reason="forecast peak")
                      for k in range(rng.randrange(0, 4))]
            responses = [IncentiveResponse(offer_id=o.offer_id, feeder_id=feeder, customer_id=o.customer_id,
                                           accepted=rng.random() < 0.6, responded_at=t + 60_000) for o in offers]
            accepted[feeder] += [o for o, r in zip(offers, responses, strict=True) if r.accepted]
            active = sum(1 for o in accepted[feeder] if o.window_start <= t < o.window_end)
            out += [p] if (p := incentive_point(feeder, t, offered=offers, responses=responses,
                                                active=active)) else []
            out += _utility_events(feeder, t)
    counters = PipelineCounters(worker)
    start = end_ms - pipeline_hours * 3_600_000
    counters.start(start)
    lag = 0
    for minute, now in enumerate(range(start + 60_000, end_ms + 1, 60_000)):
        for topic in TOPICS:
            counters.event(topic, 600 + rng.randrange(200))
        if rng.random() < 0.3 or minute == 0:
            counters.dead_letter("invalid_value", rng.randrange(1, 4))
        if rng.random() < 0.1 or minute == 0:
            counters.dead_letter("undecodable", 1)
        if minute % 10 == 0:  # a registration conflict now and then (its alert rule's query has data)
            counters.dead_letter("site_conflict", 1)
        for _ in range(50):
            counters.latency("setpoint", rng.lognormvariate(math.log(120.0), 0.5))
        lag = max(0, lag + rng.randrange(-40, 50))
        for part in range(4):
            counters.lag(TOPICS[0], part, lag // 4 + part)
            counters.lag(TOPICS[1], part, lag // 8)
        out += counters.snapshot(now)
        out += feeder_state_points(worker, now, {f.encode(): 20_000 + 300 * i + 5 * (minute % 12)
                                                 for i, f in enumerate(feeders)},
                                   {f.encode(): minute % 3 for f in feeders}, 0, 0)
    return out
