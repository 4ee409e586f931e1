"""The simulated population: feeders, homes (meters, PV), home chargers and their registrations."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.contracts.models import ChargerRegistration
from streams.simulate.config import SimConfig, py_rng

__all__ = ["ChargerSpec", "Fleet", "Home", "build_fleet", "feeder_ids", "station_for_feeder"]

VEHICLE_CAPACITIES_KWH = (40.0, 58.0, 64.0, 77.0, 82.0, 100.0)
RESERVE_CHOICES = (None, 20.0, 30.0, 40.0)
EXPORT_LIMITS_KW = (3.3, 5.0, 7.2, 10.0)


@dataclass(frozen=True)
class Home:
    """One household: its meter, consumption and rooftop PV."""

    meter_id: str
    feeder_id: str
    site_id: str
    customer_id: str
    annual_kwh: float
    pv_kwp: float
    """Rooftop PV peak power, kWp (0 = no PV)."""


@dataclass(frozen=True)
class ChargerSpec:
    """One home charger: its registration and the household's vehicle."""

    registration: ChargerRegistration
    capacity_kwh: float
    reserve_soc_pct: float | None

    @property
    def charger_id(self) -> str:
        return self.registration.charger_id

    @property
    def feeder_id(self) -> str:
        return self.registration.feeder_id


@dataclass(frozen=True)
class Fleet:
    """Everything static in a run."""

    feeders: tuple[str, ...]
    homes: tuple[Home, ...]
    chargers: tuple[ChargerSpec, ...]

    @property
    def stations(self) -> tuple[str, ...]:
        """Weather station ids, one per feeder (see :func:`station_for_feeder`)."""
        return tuple(station_for_feeder(f) for f in self.feeders)


def feeder_ids(n: int) -> tuple[str, ...]:
    """Feeder ids ``F001`` … of a run with ``n`` feeders."""
    return tuple(f"F{i + 1:03d}" for i in range(n))


def station_for_feeder(feeder_id: str) -> str:
    """The weather station whose observations (topic evgrid.weather) describe ``feeder_id``: ``WX-<feeder>``."""
    return f"WX-{feeder_id}"


def _pick(rng_value: float, shares: tuple[tuple[str, float], ...]) -> str:
    acc = 0.0
    for name, share in shares:
        acc += share
        if rng_value < acc:
            return name
    return shares[-1][0]


def _registration(cfg: SimConfig, feeder: str, j: int, home: Home) -> ChargerSpec:
    charger_id = f"{feeder}-EV{j + 1:03d}"
    rng = py_rng(cfg.seed, "charger", charger_id)
    bidirectional = rng.random() < cfg.bidirectional_share
    cls_u, v2g_u, inv_u, rate_u, lim_u = (rng.random() for _ in range(5))
    capacity = VEHICLE_CAPACITIES_KWH[rng.randrange(len(VEHICLE_CAPACITIES_KWH))]
    reserve = RESERVE_CHOICES[rng.randrange(len(RESERVE_CHOICES))]
    if bidirectional:
        offboard = inv_u < 0.7  # DC bidirectional wallbox; otherwise the vehicle's onboard AC inverter
        max_charge = 11.0 if offboard else 7.4
        max_discharge = max_charge
        cls = _pick(cls_u, cfg.class_shares)
        export = min(EXPORT_LIMITS_KW[int(lim_u * len(EXPORT_LIMITS_KW))], max_discharge) \
            if cls == "parallel_exporting" else 0.0
        enrolled = v2g_u < cfg.v2g_enrolment
    else:
        offboard = False
        max_charge = 7.4 if rate_u < 0.6 else 11.0
        max_discharge, cls, export, enrolled = 0.0, "non_parallel", 0.0, False
    reg = ChargerRegistration(
        charger_id=charger_id, feeder_id=feeder, site_id=home.site_id, customer_id=home.customer_id,
        bidirectional=bidirectional, inverter_location="offboard" if offboard else "onboard",
        interconnection_class=cls, export_limit_kw=export, v2g_enrolled=enrolled,  # type: ignore[arg-type]
        max_charge_kw=max_charge, max_discharge_kw=max_discharge, registered_at=cfg.start_ms,
    )
    return ChargerSpec(reg, capacity, reserve)


def build_fleet(cfg: SimConfig) -> Fleet:
    """The deterministic population of ``cfg``: ``cfg.homes`` homes and ``cfg.chargers`` chargers per feeder.

    Chargers are spread evenly over the feeder's homes (wrapping when there are more chargers than homes).
    Unidirectional chargers are registered as ``non_parallel`` (plain load, no export).
    """
    feeders = feeder_ids(cfg.feeders)
    homes: list[Home] = []
    chargers: list[ChargerSpec] = []
    for feeder in feeders:
        feeder_homes = []
        for i in range(max(cfg.homes, 1 if cfg.chargers else 0)):
            rng = py_rng(cfg.seed, "home", feeder, i)
            annual = cfg.annual_kwh_median * math.exp(0.35 * rng.gauss(0.0, 1.0))
            pv = round(3.0 + 7.0 * rng.random(), 1) if rng.random() < cfg.pv_share else 0.0
            home = Home(f"{feeder}-M{i + 1:04d}", feeder, f"{feeder}-S{i + 1:04d}", f"C-{feeder}-{i + 1:04d}",
                        round(annual, 1), pv)
            feeder_homes.append(home)
        if cfg.homes:
            homes.extend(feeder_homes)
        for j in range(cfg.chargers):
            home = feeder_homes[(j * len(feeder_homes)) // cfg.chargers if cfg.chargers <= len(feeder_homes)
                                else j % len(feeder_homes)]
            chargers.append(_registration(cfg, feeder, j, home))
    return Fleet(feeders, tuple(homes), tuple(chargers))
