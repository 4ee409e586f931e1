"""Household smart-meter readings: H0-shaped load with per-home scaling and noise, minus rooftop PV."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from streams.contracts.models import MeterReading
from streams.simulate.config import SimConfig, np_rng
from streams.simulate.fleet import Home
from streams.simulate.weather import StationWeather

__all__ = ["PV_PERFORMANCE_RATIO", "household_load_kw", "meter_records", "meter_times", "pv_power_kw"]

PV_PERFORMANCE_RATIO = 0.8
_TAN_PHI = math.tan(math.acos(0.95))  # households at power factor 0.95


def meter_times(cfg: SimConfig) -> np.ndarray:
    """Start of every meter's metering intervals: ``start + k * meter_interval`` within the run (a reading is stamped
    at its interval's end)."""
    step = cfg.meter_interval_s * 1000
    return np.arange(cfg.start_ms, cfg.end_ms, step, dtype=np.int64)


def household_load_kw(cfg: SimConfig, home: Home, h0: np.ndarray) -> np.ndarray:
    """Load of one home (kW, >= 0) at the reading times, given the H0 profile (kW per 1000 kWh/a) there.

    The profile is scaled to the home's annual consumption, modulated by correlated lognormal noise
    (AR(1), lag-one correlation 0.7, σ 0.3) and topped with random appliance bursts; noise and bursts
    keep the expected energy equal to the scaled profile.
    """
    rng = np_rng(cfg.seed, "load", home.meter_id)
    base = h0 * home.annual_kwh / 1000.0
    n = len(base)
    z = np.empty(n)
    x = rng.standard_normal()
    for i in range(n):
        z[i] = x
        x = 0.7 * x + math.sqrt(1.0 - 0.49) * rng.standard_normal()
    sigma = 0.3
    noise = np.exp(sigma * z - sigma * sigma / 2.0)
    bursts = (rng.random(n) < 0.1) * rng.exponential(1.5, n)  # mean 0.15 × base
    load: np.ndarray = np.clip(base * (0.85 * noise + bursts), 0.02, None)
    return load


def pv_power_kw(home: Home, weather: StationWeather, times_ms: np.ndarray, interval_ms: int) -> np.ndarray:
    """PV output (kW) of ``home`` averaged over each interval, from the station's GHI at the interval's middle."""
    if home.pv_kwp <= 0.0:
        return np.zeros(len(times_ms))
    ghi = weather.ghi_at(times_ms + interval_ms // 2)
    pv: np.ndarray = home.pv_kwp * PV_PERFORMANCE_RATIO * ghi / 1000.0
    return pv


def meter_records(cfg: SimConfig, home: Home, h0: np.ndarray, weather: StationWeather,
                  ) -> Iterator[tuple[int, MeterReading]]:
    """``(event time, reading)`` of one meter in time order (lazy).

    ``active_power_kw`` is the net power at the service point over the interval that *ends* at ``timestamp``
    (the ``MeterReading`` contract; the meter reports when its interval is over): household load minus PV
    (negative while exporting). EV charging is not behind these meters: it is reported by charger telemetry only.
    """
    times = meter_times(cfg)
    interval = cfg.meter_interval_s * 1000
    load = household_load_kw(cfg, home, h0)
    net = load - pv_power_kw(home, weather, times, interval)
    rng = np_rng(cfg.seed, "meter", home.meter_id)
    volts = 230.0 + 2.0 * rng.standard_normal(len(times)) - 0.4 * net
    estimated = rng.random(len(times)) < 0.005
    for i, start in enumerate(times.tolist()):
        ts = start + interval
        yield ts, MeterReading(
            meter_id=home.meter_id, feeder_id=home.feeder_id, timestamp=ts,
            active_power_kw=round(float(net[i]), 3), reactive_power_kvar=round(float(load[i]) * _TAN_PHI, 3),
            voltage_v=round(float(volts[i]), 1), quality="estimated" if estimated[i] else "good",
            site_id=home.site_id,
        )
