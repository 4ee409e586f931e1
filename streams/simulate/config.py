"""Parameters of one simulation run (pure data; no I/O)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DEFAULT_CLASS_SHARES", "SimConfig", "np_rng", "py_rng"]

DEFAULT_CLASS_SHARES: tuple[tuple[str, float], ...] = (
    ("non_parallel", 0.2),
    ("parallel_non_exporting", 0.3),
    ("parallel_exporting", 0.5),
)


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines a simulated stream; the same config gives byte-identical output.

    Counts are per feeder. Times are UTC epoch milliseconds / seconds of event time.
    """

    feeders: int = 3
    homes: int = 50
    """Households (meters) per feeder."""
    chargers: int = 20
    """Home EV chargers per feeder, placed at the feeder's homes (wrapping if more chargers than homes)."""
    hours: float = 24.0
    start_ms: int = 1_767_571_200_000
    """First event time (default 2026-01-05T00:00Z)."""
    seed: int = 42
    meter_interval_s: int = 900
    telemetry_s: int = 60
    """Charger telemetry period while a vehicle is connected, seconds."""
    heartbeat_s: int = 300
    """Idle charger heartbeat period, seconds."""
    weather_interval_s: int = 3600
    pv_share: float = 0.3
    """Share of homes with rooftop PV."""
    bidirectional_share: float = 0.4
    class_shares: tuple[tuple[str, float], ...] = DEFAULT_CLASS_SHARES
    """Interconnection class shares among bidirectional chargers (unidirectional ones are non_parallel)."""
    v2g_enrolment: float = 0.7
    """Share of bidirectional chargers enrolled in V2G."""
    plug_in_probability: float = 0.8
    """Probability that a home charger gets a session on a given day."""
    arrival_shift_h: float = 9.0
    """Shift of the ACN (workplace) arrival time of day for home chargers, hours; 0 keeps workplace times."""
    annual_kwh_median: float = 4000.0
    """Median annual household consumption, kWh (lognormal across homes)."""
    timezone: str = "UTC"
    """IANA time zone of the simulated area (household load profile and arrival times of day)."""
    latitude: float = 38.7
    longitude: float = -9.1
    bad_rate: float = 0.0
    """Share of all produced messages that are injected bad messages (0-0.5)."""
    bad_kinds: tuple[str, ...] = field(default=())
    """Bad-message kinds to inject (see :mod:`streams.simulate.bad`); empty = all."""
    acn_path: str = ""
    """ACN sessions CSV; empty = the bundled copy."""

    @property
    def end_ms(self) -> int:
        """First event time after the run (exclusive)."""
        return self.start_ms + round(self.hours * 3_600_000)

    def __post_init__(self) -> None:
        if self.feeders < 1 or self.homes < 0 or self.chargers < 0 or self.hours <= 0:
            raise ValueError("feeders >= 1, homes >= 0, chargers >= 0 and hours > 0 are required")
        if not 0.0 <= self.bad_rate <= 0.5:
            raise ValueError("bad_rate must be within 0-0.5")
        for name in ("meter_interval_s", "telemetry_s", "heartbeat_s", "weather_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if abs(sum(s for _, s in self.class_shares) - 1.0) > 1e-6:
            raise ValueError("class_shares must sum to 1")


def _seed_bytes(seed: int, parts: tuple[object, ...]) -> bytes:
    return hashlib.sha256("/".join([str(seed), *map(str, parts)]).encode()).digest()


def py_rng(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible Python RNG for one named stream of randomness."""
    return random.Random(int.from_bytes(_seed_bytes(seed, parts), "big"))


def np_rng(seed: int, *parts: object) -> np.random.Generator:
    """An independent, reproducible numpy RNG for one named stream of randomness."""
    return np.random.default_rng(list(np.frombuffer(_seed_bytes(seed, parts), dtype=np.uint32)))
