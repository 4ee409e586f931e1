"""Hourly weather per station: cloud cover, temperature, wind, and GHI consistent with PV output."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streams.contracts.models import WeatherObservation
from streams.simulate.config import SimConfig, np_rng
from streams.simulate.profiles import clear_sky_ghi, cloud_factor

__all__ = ["StationWeather", "station_weather", "weather_records"]


@dataclass(frozen=True)
class StationWeather:
    """Hourly weather of one station from the hour at or before the run start to after its end."""

    station_id: str
    hours_ms: np.ndarray
    """Observation times, UTC epoch ms (hourly grid)."""
    cloud_cover_pct: np.ndarray
    temperature_c: np.ndarray
    wind_ms: np.ndarray
    latitude: float
    longitude: float

    def cloud_at(self, timestamps_ms: np.ndarray) -> np.ndarray:
        """Cloud cover (%) linearly interpolated between observations."""
        result: np.ndarray = np.interp(np.asarray(timestamps_ms, dtype=float), self.hours_ms.astype(float),
                                       self.cloud_cover_pct)
        return result

    def ghi_at(self, timestamps_ms: np.ndarray) -> np.ndarray:
        """Global horizontal irradiance, W/m²: clear sky × cloud factor of the interpolated cloud cover."""
        ts = np.asarray(timestamps_ms, dtype=np.int64)
        result: np.ndarray = clear_sky_ghi(ts, self.latitude, self.longitude) * cloud_factor(self.cloud_at(ts))
        return result


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    out = np.empty(n)
    x = rng.standard_normal()
    scale = math.sqrt(1.0 - phi * phi)
    for i in range(n):
        out[i] = x
        x = phi * x + scale * rng.standard_normal()
    return out


def station_weather(cfg: SimConfig, station_id: str) -> StationWeather:
    """The deterministic weather of ``station_id``: a regional process shared by all stations plus local noise."""
    step = cfg.weather_interval_s * 1000
    first = cfg.start_ms - cfg.start_ms % step
    n = int((cfg.end_ms - first) // step) + 2
    hours_ms = first + step * np.arange(n, dtype=np.int64)
    regional = np_rng(cfg.seed, "weather", "regional")
    local = np_rng(cfg.seed, "weather", station_id)
    cloud_z = 0.85 * _ar1(regional, n, 0.92) + 0.5 * _ar1(local, n, 0.8)
    cloud = 100.0 / (1.0 + np.exp(-(2.2 * cloud_z + 0.2)))
    doy = (hours_ms.astype("datetime64[ms]").astype("datetime64[D]")
           - hours_ms.astype("datetime64[ms]").astype("datetime64[Y]")).astype(float)
    seasonal = 16.5 - 6.0 * np.cos(2.0 * math.pi * (doy - 20.0) / 365.0)
    solar_hour = ((hours_ms / 3_600_000.0) % 24.0 + cfg.longitude / 15.0) % 24.0
    diurnal = (4.5 - 2.5 * cloud / 100.0) * np.cos(2.0 * math.pi * (solar_hour - 15.0) / 24.0)
    temp = seasonal + diurnal + 1.5 * (0.7 * _ar1(regional, n, 0.95) + 0.7 * _ar1(local, n, 0.9))
    wind = np.clip(3.5 * np.exp(0.45 * (0.8 * _ar1(regional, n, 0.9) + 0.6 * _ar1(local, n, 0.7))), 0.0, 40.0)
    return StationWeather(station_id, hours_ms, cloud, temp, wind, cfg.latitude, cfg.longitude)


def weather_records(cfg: SimConfig, weather: StationWeather) -> list[tuple[int, WeatherObservation]]:
    """Hourly observations within the run, ``(event time, record)`` in time order."""
    ghi = weather.ghi_at(weather.hours_ms)
    out = []
    for i, ts in enumerate(weather.hours_ms.tolist()):
        if not cfg.start_ms <= ts < cfg.end_ms:
            continue
        rec = WeatherObservation(
            station_id=weather.station_id, timestamp=ts,
            air_temperature_c=round(float(weather.temperature_c[i]), 2),
            ghi_wm2=round(float(ghi[i]), 1),
            wind_speed_ms=round(float(weather.wind_ms[i]), 2),
            cloud_cover_pct=round(float(weather.cloud_cover_pct[i]), 1),
        )
        out.append((ts, rec))
    return out
