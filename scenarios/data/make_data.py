"""Regenerate the scenario data files in this folder (provenance; needs pandas, demandlib and pvlib).

    python scenarios/data/make_data.py

* ``week-v2g-sessions.csv``: the ACN Caltech sessions arriving 2019-03-04..10 (from the shared data),
  with the optional V2G columns switched on for every other session that stays at least 6 h.
* ``week-commercial-load.csv``: feeder-head load, BDEW G0 (commercial) profile from demandlib scaled to
  800 MWh/year, local time America/Los_Angeles converted to UTC, stamped at the end of each 15 minutes; from
  two weeks before the week (``HISTORY``: the scenario's ``warmup``, replayed but not scored).
* ``week-weather.csv``: pvlib's bundled TMY3 file (703165, Sand Point AK) mapped onto 2019, same span as the load.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("EVGRID_SHARED_DATA") or REPO.parent / "shared" / "data")
START, END = "2019-03-04T00:00:00Z", "2019-03-11T00:00:00Z"
HISTORY = "2019-02-18T00:00:00Z"  # load and weather from here: the scenario's 14-day warm-up before START


def sessions() -> None:
    with open(SHARED / "acn" / "caltech_2019-03_sessions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    week = [r for r in rows if START <= r["arrival_utc"] < END]
    extra = ["feeder_id", "bidirectional", "interconnection_class", "export_limit_kw", "initial_soc_pct",
             "capacity_kwh"]
    with open(HERE / "week-v2g-sessions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + extra)
        w.writeheader()
        long_stays = 0
        for i, r in enumerate(week):
            from streams.contracts.timeparse import parse_timestamp_ms as ts

            stay_h = (ts(r["departure_utc"]) - ts(r["arrival_utc"])) / 3_600_000
            v2g = stay_h >= 6 and long_stays % 2 == 0
            long_stays += stay_h >= 6
            soc = 30 + (i * 7) % 40
            cap = max(60.0, float(r["requested_energy_kwh"]) / ((100 - soc) / 100) * 1.1)
            w.writerow({**r, "feeder_id": "feeder-1", "bidirectional": "true" if v2g else "false",
                        "interconnection_class": "parallel_exporting" if v2g else "",
                        "export_limit_kw": "6.6" if v2g else "", "initial_soc_pct": soc,
                        "capacity_kwh": round(cap, 1)})


def load() -> None:
    import pandas as pd
    from demandlib import bdew

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = bdew.ElecSlp(year=2019).get_scaled_power_profiles({"g0": 800_000})["g0"]
    local = prof.index.tz_localize("America/Los_Angeles", ambiguous="NaT", nonexistent="NaT")
    prof = prof[~local.isna()]
    end_utc = local[~local.isna()].tz_convert("UTC") + pd.Timedelta(minutes=15)
    with open(HERE / "week-commercial-load.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "kw"])
        for t, kw in zip(end_utc, prof.to_numpy(), strict=True):
            iso = t.strftime("%Y-%m-%dT%H:%M:%SZ")
            if HISTORY < iso <= END:
                w.writerow([iso, round(float(kw), 3)])


def weather() -> None:
    import pvlib

    from streams.contracts.timeparse import iso_utc, parse_timestamp_ms
    from streams.replay.importers import read_tmy3

    tmy = Path(pvlib.__file__).parent / "data" / "703165TY.csv"
    lo, hi = parse_timestamp_ms(HISTORY), parse_timestamp_ms(END)
    with open(HERE / "week-weather.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "temperature_c", "ghi_wm2", "wind_ms", "cloud_cover_pct"])
        for o in read_tmy3(tmy, 2019):
            if lo < o.timestamp <= hi:
                w.writerow([iso_utc(o.timestamp), o.air_temperature_c, o.ghi_wm2, o.wind_speed_ms,
                            o.cloud_cover_pct])


if __name__ == "__main__":
    sessions()
    load()
    weather()
