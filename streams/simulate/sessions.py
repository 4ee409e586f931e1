"""EV charging sessions resampled from real ACN-Data sessions (Caltech, March 2019)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from streams.contracts.sessions import read_acn_sessions
from streams.simulate.config import SimConfig, py_rng

__all__ = ["BUNDLED_ACN", "AcnSessions", "Session", "load_acn_sessions", "plan_sessions"]

BUNDLED_ACN = Path(__file__).resolve().parent / "data" / "acn" / "caltech_2019-03_sessions.csv"
ACN_TIMEZONE = "America/Los_Angeles"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class AcnSessions:
    """The empirical joint distribution of (arrival time of day, dwell, energy) of real sessions."""

    arrival_tod_s: tuple[int, ...]
    """Arrival time of day in the site's local time (America/Los_Angeles), seconds after midnight."""
    dwell_s: tuple[int, ...]
    energy_kwh: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.energy_kwh)


@lru_cache(maxsize=4)
def load_acn_sessions(path: str = "") -> AcnSessions:
    """The arrival/dwell/energy distribution of an ACN-Data-style sessions CSV (read by ``read_acn_sessions``;
    stationary battery rows are left out)."""
    tz = ZoneInfo(ACN_TIMEZONE)
    tods, dwells, energies = [], [], []
    for s in read_acn_sessions(path or BUNDLED_ACN):  # the one sessions reader (and session type)
        if s.is_battery:
            continue  # a stationary battery is no driver's arrival
        local = datetime.fromtimestamp(s.arrival / 1000, UTC).astimezone(tz)
        tods.append(local.hour * 3600 + local.minute * 60 + local.second)
        dwells.append((s.departure - s.arrival) // 1000)
        energies.append(s.requested_energy_kwh)
    if not energies:
        raise ValueError(f"no sessions in {path or BUNDLED_ACN}")
    return AcnSessions(tuple(tods), tuple(dwells), tuple(energies))


@dataclass(frozen=True)
class Session:
    """One planned plug-in: when, how long, how much energy, and the vehicle's state."""

    session_id: str
    arrival_ms: int
    departure_ms: int
    energy_kwh: float
    """Energy the driver requests (resampled from ACN; capped at 90 % of the battery)."""
    capacity_kwh: float
    arrival_soc_pct: float
    reserve_soc_pct: float | None

    @property
    def target_soc_pct(self) -> float:
        """SoC at departure if the requested energy is delivered."""
        return min(100.0, self.arrival_soc_pct + 100.0 * self.energy_kwh / self.capacity_kwh)


def plan_sessions(cfg: SimConfig, charger_id: str, capacity_kwh: float, acn: AcnSessions,
                  reserve_soc_pct: float | None = None) -> list[Session]:
    """Non-overlapping sessions of one home charger from the day before the run start to its end.

    Each day the charger gets a session with probability ``cfg.plug_in_probability``; (arrival time
    of day, dwell, energy) is drawn jointly from the ACN sessions and the arrival shifted by
    ``cfg.arrival_shift_h`` (workplace → home evening). A session that would start before the previous
    one ends is dropped. Arrivals are on the telemetry grid so reports fall on whole periods.
    """
    rng = py_rng(cfg.seed, "sessions", charger_id)
    tz = ZoneInfo(cfg.timezone)
    grid = cfg.telemetry_s * 1000
    first_day = datetime.fromtimestamp(cfg.start_ms / 1000, UTC).astimezone(tz).date() - timedelta(days=1)
    last_day = datetime.fromtimestamp(cfg.end_ms / 1000, UTC).astimezone(tz).date()
    out: list[Session] = []
    busy_until = 0
    day = first_day
    n = 0
    while day <= last_day:
        plug = rng.random() < cfg.plug_in_probability
        i = rng.randrange(len(acn))
        soc_u = rng.random()
        if plug:
            midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
            arrival = int(midnight.timestamp() * 1000) + int((acn.arrival_tod_s[i] + cfg.arrival_shift_h * 3600) * 1000)
            arrival -= arrival % grid
            departure = arrival + max(acn.dwell_s[i] * 1000, grid)
            if arrival >= busy_until and arrival < cfg.end_ms:
                energy = min(acn.energy_kwh[i], 0.9 * capacity_kwh)
                headroom = 100.0 - 100.0 * energy / capacity_kwh  # highest arrival SoC that fits the energy
                soc = 5.0 + soc_u * max(0.0, min(60.0, headroom) - 5.0)
                n += 1
                out.append(Session(f"{charger_id}-S{n:04d}", arrival, departure, round(energy, 3), capacity_kwh,
                                   round(soc, 2), reserve_soc_pct))
                busy_until = departure + 10 * 60_000
        day += timedelta(days=1)
    return out
