"""Write the inputs of scenarios/month-v2b-building.yaml and month-smart-building.yaml (deterministic):
python scenarios/data/make_building_data.py [OUT_DIR].

V2B at a workplace building with a demand charge (issue 8, as a backtest scenario since issue 15). The ACN
Caltech March 2019 sessions (``streams/simulate/data/acn``) charge at one building, site ``bld``
(``parallel_non_exporting``: cars may cover the building's own load, never export), behind one site meter.
Cars have a 60 kWh battery and arrive at the SoC their request fills to 90 % (at least 10 %).

* ``month-building-sessions-v2b.csv``: half the stations (the first 24 by id) bidirectional;
* ``month-building-sessions-smart.csv``: the same sessions, every charger unidirectional;
* ``month-building-load.csv``: 15-minute readings (kW, start of period) from 22 February (a week of history the
  forecasters learn from, not scored) to 1 April 2019: ``m-bld`` (site ``bld``), the building's own load
  without its chargers: synthetic office, 120 kW at night and weekends, about 300-340 kW on weekdays 8-17 h
  local, 4 % seeded noise; ``f-bld-head``: the rest of the feeder, a residential shape peaking at 19 h local
  (300-550 kW). The feeder's base load is their sum.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ACN = REPO / "streams" / "simulate" / "data" / "acn" / "caltech_2019-03_sessions.csv"
TZ = ZoneInfo("America/Los_Angeles")
FEEDER = "f-bld"
SITE = "bld"
CAPACITY_KWH = 60.0
V2B_STATIONS = 24
SEED = 7
START = dt.datetime(2019, 2, 22, tzinfo=TZ)  # a week before the scenario: meter history
END = dt.datetime(2019, 4, 1, tzinfo=TZ)
STEP = dt.timedelta(minutes=15)


def building_kw(local: dt.datetime, rng: np.random.Generator) -> float:
    """Office building own load, kW (weekday working hours high, nights and weekends low), 4 % noise."""
    h = local.hour + local.minute / 60
    base = 120.0
    if local.weekday() < 5 and 6.0 <= h < 19.0:
        ramp = min(1.0, (h - 6.0) / 2.0, (19.0 - h) / 2.0)
        base += ramp * (180.0 + 40.0 * np.exp(-((h - 13.0) / 2.0) ** 2))
    return float(base * (1.0 + 0.04 * rng.standard_normal()))


def residential_kw(local: dt.datetime) -> float:
    """The rest of the feeder: residential load peaking at 19 h local, kW."""
    h = local.hour + local.minute / 60
    return float(300.0 + 250.0 * np.exp(-((h - 19.0) / 2.5) ** 2))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_load(out: Path) -> int:
    """The two meters' readings; returns the number of periods."""
    rng = np.random.default_rng(SEED)
    n = 0
    with open(out / "month-building-load.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "kw", "meter_id", "site_id"])
        t = START.astimezone(dt.UTC)
        while t < END.astimezone(dt.UTC):
            local = t.astimezone(TZ)
            w.writerow([_iso(t), round(building_kw(local, rng), 3), "m-bld", SITE])
            w.writerow([_iso(t), round(residential_kw(local), 3), f"{FEEDER}-head", ""])
            t += STEP
            n += 1
    return n


def write_sessions(out: Path, name: str, v2b: bool) -> int:
    """The ACN sessions at the building; returns the number of rows."""
    with open(ACN, newline="") as f:
        rows = list(csv.DictReader(f))
    stations = sorted({r["station_id"] for r in rows})
    bidir = set(stations[:V2B_STATIONS]) if v2b else set()
    with open(out / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session_id", "station_id", "arrival_utc", "departure_utc", "estimated_departure_utc",
                    "requested_energy_kwh", "max_power_kw", "feeder_id", "bidirectional", "interconnection_class",
                    "initial_soc_pct", "capacity_kwh", "site_id"])
        for r in rows:
            kwh = float(r["requested_energy_kwh"])
            soc = max(10.0, 90.0 - kwh / CAPACITY_KWH * 100.0)
            w.writerow([r["session_id"], r["station_id"], r["arrival_utc"], r["departure_utc"],
                        r["estimated_departure_utc"], r["requested_energy_kwh"], r["max_power_kw"], FEEDER,
                        str(r["station_id"] in bidir).lower(), "parallel_non_exporting", round(soc, 3),
                        CAPACITY_KWH, SITE])
    return len(rows)


def main(out: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_load(out)
    write_sessions(out, "month-building-sessions-v2b.csv", v2b=True)
    write_sessions(out, "month-building-sessions-smart.csv", v2b=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
