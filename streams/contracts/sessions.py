"""EV charging sessions of an ACN-Data-style CSV: the one session type and the one reader (pure, no Kafka).

Columns: ``session_id, station_id, arrival_utc, departure_utc, requested_energy_kwh, max_power_kw`` (required),
``estimated_departure_utc`` and the optional ``feeder_id, bidirectional, interconnection_class, export_limit_kw,
initial_soc_pct, capacity_kwh, site_id, site_export_limit_kw, site_import_limit_kw``. Read by the backtest, the
replay importers and the simulator's session distribution alike.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.contracts.models import MIN_TS, SiteRegistration
from streams.contracts.timeparse import parse_timestamp_ms

__all__ = ["ACN_REQUIRED", "ASSET_TYPES", "AcnSession", "csv_rows", "interconnection_class_of", "opt_bool", "opt_float",
           "read_acn_sessions", "site_registrations"]


def csv_rows(path: str | Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with stripped keys and values) of a CSV file (a UTF-8 BOM is ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.DictReader(f)
        if rows.fieldnames is None:
            raise ValueError(f"{path}: empty file")
        for i, row in enumerate(rows, start=2):
            yield i, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}


def opt_float(v: Any) -> float | None:
    """A float cell; empty or NaN is ``None``."""
    if v is None or (isinstance(v, str) and v == ""):
        return None
    f = float(v)
    return None if math.isnan(f) else f


def opt_bool(v: str | None) -> bool | None:
    """A boolean cell (1/0, true/false, yes/no, y/n, t/f); empty is ``None``."""
    if v is None or v == "":
        return None
    low = v.lower()
    if low in ("1", "true", "yes", "y", "t"):
        return True
    if low in ("0", "false", "no", "n", "f"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


@dataclass(frozen=True)
class AcnSession:
    """One EV session of an ACN-Data-style CSV (times UTC epoch ms)."""

    session_id: str
    station_id: str
    arrival: int
    departure: int
    estimated_departure: int
    requested_energy_kwh: float
    max_power_kw: float
    feeder_id: str | None = None
    bidirectional: bool = False
    interconnection_class: str | None = None
    export_limit_kw: float | None = None
    initial_soc_pct: float | None = None
    capacity_kwh: float | None = None
    site_id: str | None = None
    site_export_limit_kw: float | None = None
    """Approved net export limit of the site at its point of interconnection, kW."""
    site_import_limit_kw: float | None = None
    asset_type: str = "ev_charger"
    """``ev_charger`` (a car's session) or ``stationary_battery`` (a battery: no request, not a driver)."""

    @property
    def is_battery(self) -> bool:
        """A stationary battery, not a car."""
        return self.asset_type == "stationary_battery"


ASSET_TYPES = ("ev_charger", "stationary_battery")
ACN_REQUIRED = ("session_id", "station_id", "arrival_utc", "departure_utc", "requested_energy_kwh",
                "max_power_kw")


def read_acn_sessions(path: str | Path) -> list[AcnSession]:
    """Parse an ACN-Data-style sessions CSV; raises ``ValueError`` naming the line of a bad row."""
    out: list[AcnSession] = []
    for line, row in csv_rows(path):
        missing = [c for c in ACN_REQUIRED if c not in row]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        try:
            arrival = parse_timestamp_ms(row["arrival_utc"])
            departure = parse_timestamp_ms(row["departure_utc"])
            est = row.get("estimated_departure_utc") or ""
            s = AcnSession(
                session_id=row["session_id"], station_id=row["station_id"], arrival=arrival,
                departure=departure, estimated_departure=parse_timestamp_ms(est) if est else departure,
                requested_energy_kwh=float(row["requested_energy_kwh"]), max_power_kw=float(row["max_power_kw"]),
                feeder_id=row.get("feeder_id") or None, bidirectional=bool(opt_bool(row.get("bidirectional"))),
                interconnection_class=row.get("interconnection_class") or None,
                export_limit_kw=opt_float(row.get("export_limit_kw")),
                initial_soc_pct=opt_float(row.get("initial_soc_pct")),
                capacity_kwh=opt_float(row.get("capacity_kwh")),
                site_id=row.get("site_id") or None,
                site_export_limit_kw=opt_float(row.get("site_export_limit_kw")),
                site_import_limit_kw=opt_float(row.get("site_import_limit_kw")),
                asset_type=_asset_type(row.get("asset_type")),
            )
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from exc
        if s.departure <= s.arrival:
            raise ValueError(f"{path}:{line}: departure_utc is not after arrival_utc")
        if s.requested_energy_kwh < 0 or s.max_power_kw <= 0:
            raise ValueError(f"{path}:{line}: requested_energy_kwh must be >= 0 and max_power_kw > 0")
        if s.is_battery and not (s.capacity_kwh and s.capacity_kwh > 0):
            raise ValueError(f"{path}:{line}: a stationary_battery needs capacity_kwh > 0")
        out.append(s)
    site_registrations(out, 0)  # rows of one site must agree on its class: raises ValueError
    return out


def _asset_type(v: str | None) -> str:
    if not v:
        return "ev_charger"
    if v not in ASSET_TYPES:
        raise ValueError(f"asset_type must be one of {', '.join(ASSET_TYPES)}, not {v!r}")
    return v


def site_registrations(sessions: Sequence[AcnSession], registered_at: int,
                       feeder_id: str = "feeder-1") -> list[SiteRegistration]:
    """One SiteRegistration per ``site_id`` given (sorted): its class (rows must agree), its approved export
    limit (the smallest ``site_export_limit_kw`` given, default 0) and import limit (smallest given)."""
    by_site: dict[str, list[AcnSession]] = {}
    for s in sessions:
        if s.site_id:
            by_site.setdefault(s.site_id, []).append(s)
    out = []
    for site, rows in sorted(by_site.items()):
        classes = {interconnection_class_of(r) for r in rows}
        if len(classes) > 1:
            raise ValueError(f"site {site}: its rows disagree on the interconnection class: {sorted(classes)}")
        feeders = {r.feeder_id or feeder_id for r in rows}
        if len(feeders) > 1:
            raise ValueError(f"site {site} appears on several feeders: {sorted(feeders)}")
        exports = [r.site_export_limit_kw for r in rows if r.site_export_limit_kw is not None]
        imports = [r.site_import_limit_kw for r in rows if r.site_import_limit_kw is not None]
        cls = classes.pop()
        out.append(SiteRegistration(
            site_id=site, feeder_id=feeders.pop(), interconnection_class=cls,  # type: ignore[arg-type]
            export_limit_kw=min(exports, default=0.0) if cls == "parallel_exporting" else 0.0,
            import_limit_kw=min(imports) if imports else None, registered_at=max(registered_at, MIN_TS)))
    return out


def interconnection_class_of(s: AcnSession) -> str:
    """A session's class as given, else ``parallel_exporting`` if bidirectional, else ``non_parallel``."""
    return s.interconnection_class or ("parallel_exporting" if s.bidirectional else "non_parallel")
