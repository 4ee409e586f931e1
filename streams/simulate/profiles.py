"""Load and sun shapes: the BDEW H0 residential profile (demandlib) and a clear-sky irradiance model."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["clear_sky_ghi", "cloud_factor", "h0_profile_kw", "solar_cos_zenith"]

_QUARTER_MS = 900_000


@lru_cache(maxsize=8)
def _h0_year(year: int) -> np.ndarray:
    """BDEW H0 power (kW) of a household consuming 1000 kWh/a, per local quarter hour of ``year``."""
    from demandlib import bdew  # heavy import, only when a profile is needed

    frame = bdew.ElecSlp(year).get_scaled_power_profiles({"h0": 1000.0})
    values: np.ndarray = frame["h0"].to_numpy(dtype=float)
    return values


def h0_profile_kw(timestamps_ms: np.ndarray, timezone: str) -> np.ndarray:
    """H0 standard-load-profile power (kW per 1000 kWh/a) at each UTC timestamp, in local time ``timezone``.

    The profile is the BDEW H0 household profile (weekday/Saturday/Sunday shapes, seasonal dynamisation)
    as computed by ``demandlib``; its evening peak is around 18-21 h local time.
    """
    tz = ZoneInfo(timezone)
    out = np.empty(len(timestamps_ms), dtype=float)
    for i, ts in enumerate(timestamps_ms.tolist()):
        local = datetime.fromtimestamp(ts / 1000.0, UTC).astimezone(tz)
        start_of_year = datetime(local.year, 1, 1)
        naive = local.replace(tzinfo=None)
        idx = int((naive - start_of_year).total_seconds() * 1000) // _QUARTER_MS
        year = _h0_year(local.year)
        out[i] = year[min(idx, len(year) - 1)]
    return out


def solar_cos_zenith(timestamps_ms: np.ndarray, latitude: float, longitude: float) -> np.ndarray:
    """Cosine of the solar zenith angle (negative below the horizon) at each UTC timestamp.

    Spencer's declination and equation-of-time series; accurate to well under a degree, enough for
    hourly weather and 15-minute PV.
    """
    stamps = np.asarray(timestamps_ms, dtype=np.int64)
    dt = stamps.astype("datetime64[ms]")
    doy = (dt.astype("datetime64[D]") - dt.astype("datetime64[Y]")).astype(np.int64).astype(float)
    ts = stamps.astype(float) / 1000.0
    gamma = 2.0 * math.pi * doy / 365.0
    decl = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma) - 0.006758 * np.cos(2 * gamma)
            + 0.000907 * np.sin(2 * gamma) - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    eot_min = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                        - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    utc_minutes = (ts % 86_400.0) / 60.0
    solar_minutes = utc_minutes + eot_min + 4.0 * longitude
    hour_angle = np.radians(solar_minutes / 4.0 - 180.0)
    lat = math.radians(latitude)
    cosz: np.ndarray = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return cosz


def clear_sky_ghi(timestamps_ms: np.ndarray, latitude: float, longitude: float) -> np.ndarray:
    """Clear-sky global horizontal irradiance, W/m² (Haurwitz model); 0 at night."""
    cosz = solar_cos_zenith(timestamps_ms, latitude, longitude)
    safe = np.clip(cosz, 1e-3, None)
    ghi = 1098.0 * safe * np.exp(-0.057 / safe)
    result: np.ndarray = np.where(cosz > 0.0, ghi, 0.0)
    return result


def cloud_factor(cloud_cover_pct: np.ndarray) -> np.ndarray:
    """Share of clear-sky GHI reaching the ground under a cloud cover (Kasten-Czeplak)."""
    cc = np.clip(np.asarray(cloud_cover_pct, dtype=float) / 100.0, 0.0, 1.0)
    factor: np.ndarray = 1.0 - 0.75 * cc**3.4
    return factor
