"""V2B at a workplace building with a demand charge, and a feeder-level request (issue 8).

The ACN Caltech March 2019 sessions charge at one building (``parallel_non_exporting`` site, one site
meter). The building's own load and the rest of the feeder are synthetic, seeded shapes (office: night
120 kW, weekday 8-17 h about 300-340 kW; feeder residential load with a 19 h peak); the site forecast
is warmed up with a week of the building's meter before the period. Cars are simulated
with a 60 kWh battery, arriving at the SoC their request fills to 90 %. Runs (same sessions, 15-min
steps, event-ordered, the dispatcher sees only what has happened):

1. uncontrolled: every car at full power from arrival;
2. smart charging with the site's demand charge, no V2B (unidirectional chargers);
3. V2B: the same, with ``--v2b-share`` of the chargers bidirectional and enrolled.

Printed: the building's monthly peak import (the demand-charge base) per run, energy delivered, and the
lowest site net import (never below 0: the site never exports). Then one weekday with a feeder request
"at most X kW 17:00-19:00" (X = the no-request feeder peak of that window minus ``--request-cut``), and the
requested vs delivered reduction per interval from ``FeederDispatcher.request_report``.

Usage: python benchmarks/v2b_building.py [--days 31] [--v2b-share 0.5] [--demand-charge 15]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from zoneinfo import ZoneInfo

import numpy as np

from streams.contracts.models import ChargerRegistration, ChargerTelemetry, GridSignal, MeterReading
from streams.contracts.sessions import AcnSession, read_acn_sessions
from streams.dispatch.dispatcher import DispatchConfig, FeederDispatcher
from streams.dispatch.planner import HOUR_MS

MIN_MS = 60_000
TZ = ZoneInfo("America/Los_Angeles")
CAP = 60.0
SITE = "bld"


def building_kw(t_ms: int, rng: np.random.Generator) -> float:
    """Office building own load, kW (weekday working hours high, nights and weekends low)."""
    local = dt.datetime.fromtimestamp(t_ms / 1000, TZ)
    h = local.hour + local.minute / 60
    base = 120.0
    if local.weekday() < 5 and 6.0 <= h < 19.0:
        ramp = min(1.0, (h - 6.0) / 2.0, (19.0 - h) / 2.0)
        base += ramp * (180.0 + 40.0 * np.exp(-((h - 13.0) / 2.0) ** 2))
    return float(base * (1.0 + 0.04 * rng.standard_normal()))


def residential_kw(t_ms: int) -> float:
    """The rest of the feeder: residential load peaking at 19 h, kW."""
    h = dt.datetime.fromtimestamp(t_ms / 1000, TZ).hour
    return float(300.0 + 250.0 * np.exp(-((h - 19.0) / 2.5) ** 2))


@dataclasses.dataclass
class Car:
    s: AcnSession
    soc: float  # %
    target: float  # % the request fills to
    got: float = 0.0


def simulate(sessions: list[AcnSession], t0: int, t1: int, step: int, mode: str, v2b_share: float,
             demand_charge: float, request: GridSignal | None = None, seed: int = 7) -> dict:
    """Event-ordered simulation of the building; ``mode`` is uncontrolled, smart or v2b (both with the
    demand charge)."""
    rng = np.random.default_rng(seed)
    cfg = DispatchConfig(step_ms=step, replan_ms=step, timezone="America/Los_Angeles",
                         site_demand_charge_per_kw=demand_charge,
                         default_export_limit_kw=0.0)
    d = FeederDispatcher("f-bld", cfg)
    stations = sorted({s.station_id for s in sessions})
    bidir = set(stations[: round(v2b_share * len(stations))]) if mode == "v2b" else set()
    for cid in stations:
        b = cid in bidir
        d.on_registration(ChargerRegistration(
            charger_id=cid, feeder_id="f-bld", site_id=SITE, customer_id=cid, bidirectional=b,
            inverter_location="offboard", interconnection_class="parallel_non_exporting", v2g_enrolled=b,
            max_charge_kw=7.0, max_discharge_kw=7.0 if b else 0.0, registered_at=t0))
    if request is not None:
        d.on_signal(request)
    # a week of the building's meter before the period (no cars): the site forecast starts warm
    warm = np.random.default_rng(seed + 1)
    for k in range(-7 * 96, 0):
        t = t0 + k * step
        d.on_site_meter(MeterReading(meter_id="m-bld", feeder_id="f-bld", site_id=SITE, timestamp=t + step,
                                     active_power_kw=building_kw(t, warm)))
    pending = sorted((s for s in sessions if t0 <= s.arrival < t1), key=lambda s: (s.arrival, s.session_id))
    nxt = 0
    cars: dict[str, Car] = {}
    latest: dict[str, float] = {}
    n = (t1 - t0) // step
    own = np.array([building_kw(t0 + k * step, rng) for k in range(n + 96)])
    res_kw = np.array([residential_kw(t0 + k * step) for k in range(n + 96)])
    site = np.zeros(n)
    feeder = np.zeros(n)
    dth = step / HOUR_MS
    delivered = requested = 0.0
    plan_s = 0.0
    for k in range(n):
        now = t0 + k * step
        for cid, car in list(cars.items()):
            if car.s.estimated_departure <= now:
                delivered += car.got
                del cars[cid]
                d.on_telemetry(ChargerTelemetry(charger_id=cid, feeder_id="f-bld", timestamp=now, connected=False,
                                                power_kw=0.0, max_charge_kw=7.0))
        while nxt < len(pending) and pending[nxt].arrival <= now:
            s = pending[nxt]
            nxt += 1
            if s.estimated_departure <= now or s.station_id in cars:
                continue
            requested += s.requested_energy_kwh
            soc0 = max(10.0, 90.0 - s.requested_energy_kwh / CAP * 100.0)
            cars[s.station_id] = Car(s, soc0, min(100.0, soc0 + s.requested_energy_kwh / CAP * 100.0))
        for cid, car in sorted(cars.items()):
            b = cid in bidir
            d.on_telemetry(ChargerTelemetry(
                charger_id=cid, feeder_id="f-bld", timestamp=now, connected=True, session_id=car.s.session_id,
                power_kw=latest.get(cid, 0.0), max_charge_kw=7.0,
                max_discharge_kw=7.0 if b else 0.0, departure_time=car.s.estimated_departure,
                soc_pct=min(100.0, max(0.0, car.soc)), battery_capacity_kwh=CAP,
                target_soc_pct=car.target if b else None,
                requested_energy_kwh=None if b else car.s.requested_energy_kwh,
                energy_delivered_kwh=None if b else car.got))
        if k > 0:  # the meter of the last interval, after the telemetry of the power it carried
            d.on_site_meter(MeterReading(meter_id="m-bld", feeder_id="f-bld", site_id=SITE, timestamp=now,
                                         active_power_kw=float(site[k - 1])))
            d.observe_load(now, float(feeder[k - 1]))
        total = 0.0
        if mode == "uncontrolled":
            for car in cars.values():
                kw = max(0.0, min(7.0, car.s.max_power_kw, (car.s.requested_energy_kwh - car.got) / dth))
                car.got += kw * dth
                car.soc += kw * dth / CAP * 100
                total += kw
        else:
            p0 = time.perf_counter()
            out = d.on_interval(now, base_load_kw=(own[k:k + 96] + res_kw[k:k + 96]).tolist(), base_step_ms=step)
            plan_s += time.perf_counter() - p0
            for sp in out.setpoints:
                latest[sp.charger_id] = sp.setpoint_kw
            for cid, car in cars.items():
                kw = latest.get(cid, 0.0)
                if kw >= 0:
                    room = (100.0 - car.soc) / 100 * CAP / dth
                    need = (car.s.requested_energy_kwh - car.got) / dth if cid not in bidir else room
                    kw = min(kw, car.s.max_power_kw, need, room)
                else:
                    kw = max(kw, -(car.soc - 10.0) / 100 * CAP / dth)
                latest[cid] = kw
                car.got += kw * dth
                car.soc += kw * dth / CAP * 100
                total += kw
        site[k] = own[k] + total
        feeder[k] = site[k] + res_kw[k]
    delivered += sum(c.got for c in cars.values())
    return {"site": site, "feeder": feeder, "delivered": delivered, "requested": requested, "plan_s": plan_s,
            "d": d, "own": own[:n]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", default="streams/simulate/data/acn/caltech_2019-03_sessions.csv")
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--v2b-share", type=float, default=0.5)
    ap.add_argument("--demand-charge", type=float, default=15.0, help="per kW of monthly peak")
    ap.add_argument("--request-cut", type=float, default=40.0, help="kW below the no-request feeder peak")
    args = ap.parse_args()
    step = 15 * MIN_MS
    sessions = read_acn_sessions(args.sessions)
    t0 = dt.datetime(2019, 3, 1, tzinfo=TZ)
    start = int(t0.timestamp() * 1000)
    end = start + args.days * 24 * HOUR_MS
    print(f"sessions: {sum(start <= s.arrival < end for s in sessions)}  days: {args.days}  step: 15 min  "
          f"V2B share: {args.v2b_share:.0%}  demand charge: {args.demand_charge}/kW")
    runs = {}
    for mode in ("uncontrolled", "smart", "v2b"):
        w0 = time.perf_counter()
        r = simulate(sessions, start, end, step, mode, args.v2b_share, args.demand_charge)
        runs[mode] = r
        print(f"{mode:>12}: building monthly peak {r['site'].max():7.1f} kW  (own load alone {r['own'].max():.1f} kW)"
              f"  min site net {r['site'].min():6.1f} kW  delivered {100 * r['delivered'] / r['requested']:.2f} % "
              f"of {r['requested']:.0f} kWh  wall {time.perf_counter() - w0:.0f} s")
    cut = runs["smart"]["site"].max() - runs["v2b"]["site"].max()
    print(f"V2B cuts the monthly peak by {cut:.1f} kW vs smart charging "
          f"({cut * args.demand_charge:.0f} per month at {args.demand_charge}/kW)")

    # one weekday with a feeder-level request 17:00-19:00 local
    day = dt.datetime(2019, 3, 13, tzinfo=TZ)
    d0 = int(day.timestamp() * 1000)
    w0, w1 = d0 + 17 * HOUR_MS, d0 + 19 * HOUR_MS
    ref = simulate(sessions, d0 - 2 * 24 * HOUR_MS, d0 + 24 * HOUR_MS, step, "v2b", args.v2b_share, args.demand_charge)
    k0 = (w0 - (d0 - 2 * 24 * HOUR_MS)) // step
    window_peak = float(ref["feeder"][k0:k0 + 8].max())
    limit = window_peak - args.request_cut
    sig = GridSignal(signal_id="req-1", feeder_id="f-bld", issued_at=d0, valid_from=w0, valid_until=w1,
                     import_limit_kw=limit, dr_event_id="evening-1")
    got = simulate(sessions, d0 - 2 * 24 * HOUR_MS, d0 + 24 * HOUR_MS, step, "v2b", args.v2b_share,
                   args.demand_charge, request=sig)
    print(f"\nfeeder request 2019-03-13 17:00-19:00: at most {limit:.1f} kW "
          f"(no-request run peaked at {window_peak:.1f} kW in the window)")
    print("  start   limit  baseline  measured  requested-cut  delivered-cut  (kW)")
    for r in got["d"].request_report("req-1"):
        t = dt.datetime.fromtimestamp(r.start_ms / 1000, TZ).strftime("%H:%M")
        print(f"  {t}  {r.limit_kw:6.1f}  {r.baseline_kw or float('nan'):8.1f}  {r.measured_kw or float('nan'):8.1f}"
              f"  {r.requested_reduction_kw or 0.0:13.1f}  {r.delivered_reduction_kw or float('nan'):13.1f}")
    rep = got["d"].request_report("req-1")
    req_kwh = sum((r.requested_reduction_kw or 0.0) * 0.25 for r in rep)
    del_kwh = sum((r.delivered_reduction_kw or 0.0) * 0.25 for r in rep)
    print(f"  requested {req_kwh:.1f} kWh of reduction, delivered {del_kwh:.1f} kWh against the baseline; "
          f"feeder max in window {got['feeder'][k0:k0 + 8].max():.1f} kW vs run without request {window_peak:.1f} kW")


if __name__ == "__main__":
    main()
