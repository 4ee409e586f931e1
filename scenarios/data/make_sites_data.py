"""Write the inputs of scenarios/day-sites-v2g.yaml (deterministic): python scenarios/data/make_sites_data.py.

Sites (issue 14): site-A parallel_exporting, approved 5 kW at its meter, two bidirectional V2G chargers and a
unidirectional one behind it (each could export 7 kW alone); site-B parallel_non_exporting with a V2H car and
a site meter (own load 1.5-3.5 kW) and a 10 kWh / 5 kW stationary battery (behind the meter, never exporting);
site-C non_parallel with a bidirectional car that must never discharge;
site-D parallel_exporting, approved 10 kW, one V2G car that stays all day (battery-like) and a 6 kW import
limit at its panel.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

HERE = Path(__file__).parent
DAY = "2019-03-05"

SESSIONS = [
    # session, station, site, class, bidir, arrive, leave, kWh, kW, soc, cap, site export, site import[, asset]
    ("A1-1", "A1", "site-A", "parallel_exporting", True, "07:30", "22:00", 12.0, 7.0, 80, 60.0, 5.0, 20.0),
    ("A2-1", "A2", "site-A", "parallel_exporting", True, "08:10", "21:30", 10.0, 7.0, 85, 60.0, 5.0, 20.0),
    ("A3-1", "A3", "site-A", "parallel_exporting", False, "09:00", "13:00", 15.0, 7.0, None, None, 5.0, 20.0),
    ("B1-1", "B1", "site-B", "parallel_non_exporting", True, "06:00", "23:00", 8.0, 7.0, 75, 60.0, None, 9.0),
    ("BAT-B", "BAT-B", "site-B", "parallel_non_exporting", True, "00:00", "24:00", 0.0, 5.0, 60, 10.0, None, 9.0,
     "stationary_battery"),
    ("C1-1", "C1", "site-C", "non_parallel", True, "08:00", "18:00", 20.0, 7.0, 50, 60.0, None, None),
    ("D1-1", "D1", "site-D", "parallel_exporting", True, "00:05", "23:55", 5.0, 7.0, 70, 80.0, 10.0, 6.0),
]


def _at(hhmm: str) -> str:
    """``HH:MM`` of the day as ISO UTC (``24:00`` is the next midnight)."""
    return "2019-03-06T00:00:00Z" if hhmm == "24:00" else f"{DAY}T{hhmm}:00Z"


def main() -> None:
    with open(HERE / "day-sites-sessions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session_id", "station_id", "arrival_utc", "departure_utc", "requested_energy_kwh",
                    "max_power_kw", "feeder_id", "bidirectional", "interconnection_class", "initial_soc_pct",
                    "capacity_kwh", "site_id", "site_export_limit_kw", "site_import_limit_kw", "asset_type"])
        for sid, st, site, cls, bidir, a, d, kwh, kw, soc, cap, exp, imp, *asset in SESSIONS:
            w.writerow([sid, st, _at(a), _at(d), kwh, kw, "feeder-s", str(bidir).lower(), cls,
                        "" if soc is None else soc, "" if cap is None else cap, site, "" if exp is None else exp,
                        "" if imp is None else imp, asset[0] if asset else ""])
    with open(HERE / "day-sites-load.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "kw", "meter_id", "site_id"])
        for k in range(0, 24 * 12 + 1):
            h, m = divmod(k * 5, 60)
            if h == 24:
                break
            own = 2.5 + math.sin(2 * math.pi * (k * 5 / 60 - 12) / 24)  # site-B own load, 1.5-3.5 kW
            w.writerow([f"{DAY}T{h:02d}:{m:02d}:00Z", round(own, 3), "m-site-B", "site-B"])
            head = 40 + 15 * math.sin(2 * math.pi * (k * 5 / 60 - 9) / 24)
            w.writerow([f"{DAY}T{h:02d}:{m:02d}:00Z", round(head, 3), "feeder-s-head", ""])


if __name__ == "__main__":
    main()
