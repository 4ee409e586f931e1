"""Charger telemetry: plug-in sessions with SoC evolving with the power actually drawn."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from streams.contracts.models import ChargerTelemetry
from streams.simulate.config import SimConfig
from streams.simulate.fleet import ChargerSpec
from streams.simulate.sessions import Session

__all__ = ["SetpointFn", "charger_telemetry"]

SetpointFn = Callable[[str, int], float | None]
"""``(charger_id, event time ms) -> kW`` (+ charge, − discharge) or None for uncontrolled charging."""

_EPS_KWH = 1e-6


def _idle(spec: ChargerSpec, ts: int) -> ChargerTelemetry:
    reg = spec.registration
    return ChargerTelemetry(charger_id=reg.charger_id, feeder_id=reg.feeder_id, timestamp=ts, connected=False,
                            power_kw=0.0, max_charge_kw=reg.max_charge_kw, max_discharge_kw=reg.max_discharge_kw)


def _power(spec: ChargerSpec, s: Session, soc: float, delivered: float, dt_h: float, ts: int,
           setpoint_fn: SetpointFn | None) -> float:
    """Power over the next ``dt_h`` hours: the setpoint if one is given, else full rate until the energy is in."""
    reg = spec.registration
    headroom_kw = (100.0 - soc) / 100.0 * s.capacity_kwh / dt_h
    setpoint = setpoint_fn(reg.charger_id, ts) if setpoint_fn is not None else None
    if setpoint is None:
        remaining = s.energy_kwh - delivered
        if remaining <= _EPS_KWH:
            return 0.0
        return max(0.0, min(reg.max_charge_kw, remaining / dt_h, headroom_kw))
    power = min(max(setpoint, -reg.max_discharge_kw), reg.max_charge_kw)
    if power >= 0.0:
        return min(power, headroom_kw)
    return -min(-power, soc / 100.0 * s.capacity_kwh / dt_h)


def charger_telemetry(cfg: SimConfig, spec: ChargerSpec, sessions: list[Session],
                      setpoint_fn: SetpointFn | None = None) -> Iterator[tuple[int, ChargerTelemetry]]:
    """``(event time, telemetry)`` of one charger within the run, in time order (a lazy generator).

    While a vehicle is connected the charger reports every ``cfg.telemetry_s``: the power it will
    draw until the next report, the SoC and the energy delivered so far. The report at departure
    says ``connected=False``; idle chargers send a heartbeat every ``cfg.heartbeat_s``. Sessions that
    began before the run start are simulated from their arrival but only reports within the run are
    yielded. ``setpoint_fn`` is asked at every connected report, so a caller can close the loop.
    """
    reg = spec.registration
    period = cfg.telemetry_s * 1000
    heartbeat = cfg.heartbeat_s * 1000
    idle_from = cfg.start_ms
    for s in sessions:
        if s.departure_ms <= cfg.start_ms:
            continue
        ts = idle_from
        while ts < min(s.arrival_ms, cfg.end_ms):  # idle heartbeats until the car arrives
            if ts >= cfg.start_ms:
                yield ts, _idle(spec, ts)
            ts += heartbeat
        if s.arrival_ms >= cfg.end_ms:
            return
        soc, delivered = s.arrival_soc_pct, 0.0
        ts = s.arrival_ms
        while ts < s.departure_ms and ts < cfg.end_ms:
            nxt = min(ts + period, s.departure_ms)
            dt_h = (nxt - ts) / 3_600_000.0
            live = ts >= cfg.start_ms
            power = _power(spec, s, soc, delivered, dt_h, ts, setpoint_fn if live else None)
            if live:
                yield ts, ChargerTelemetry(
                    charger_id=reg.charger_id, feeder_id=reg.feeder_id, timestamp=ts, connected=True,
                    session_id=s.session_id, power_kw=round(power, 3), soc_pct=round(min(max(soc, 0.0), 100.0), 2),
                    battery_capacity_kwh=s.capacity_kwh, max_charge_kw=reg.max_charge_kw,
                    max_discharge_kw=reg.max_discharge_kw, departure_time=s.departure_ms,
                    requested_energy_kwh=s.energy_kwh, target_soc_pct=round(s.target_soc_pct, 2),
                    energy_delivered_kwh=round(delivered, 4), reserve_soc_pct=s.reserve_soc_pct,
                )
            delivered += power * dt_h
            soc += 100.0 * power * dt_h / s.capacity_kwh
            ts = nxt
        if s.departure_ms >= cfg.end_ms:
            return
        idle_from = s.departure_ms
    ts = idle_from
    while ts < cfg.end_ms:
        if ts >= cfg.start_ms:
            yield ts, _idle(spec, ts)
        ts += heartbeat
