"""Station → evgrid: OCPP 2.0.1/2.1 request payloads (camelCase, schema-valid) fold into a :class:`StationState`,
and a state becomes a validated ``ChargerTelemetry``.

Each ``on_*`` function returns a new state and the event time of the message (the station's ``timestamp``);
the caller keeps the new state only when its telemetry validates, so one bad message (SoC 140 %) is dead-lettered
without poisoning what follows.

* TransactionEvent ``Started`` opens a session (``session_id`` = ``transactionId``, EVSE from ``evse.id``),
  ``Ended`` closes it (disconnected, 0 kW); ``chargingState`` ``Idle`` means no EV; meter values give power
  (``Power.Active.Import`` - ``Power.Active.Export``, phases summed when no total), energy delivered in the session
  (``Energy.Active.Import.Register`` minus its value at the start, kWh) and ``SoC``.
* StatusNotification ``Occupied`` / ``Available`` set whether an EV is plugged in.
* NotifyEVChargingNeeds gives departure time, requested energy (2.1 ``evTargetEnergyRequest``, else the AC/DC
  ``energyAmount``), target SoC, battery capacity, SoC (DC) and the EV's power limits (2.1 V2X parameters).
* Discharge capacity is reported only for a 2.1 station registered bidirectional whose EV did not announce a
  charge-only energy transfer (no ``*_BPT`` mode in NotifyEVChargingNeeds): a 2.0.1 station has no way to
  receive a discharge setpoint, so the dispatcher must not plan one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

from streams.contracts.models import ChargerRegistration, ChargerTelemetry

__all__ = ["StationState", "may_discharge", "meter_sample", "on_charging_needs", "on_meter_values", "on_status",
           "on_transaction_event", "parse_time", "telemetry"]

_SCALE = {"W": 1e-3, "kW": 1.0, "Wh": 1e-3, "kWh": 1.0}


@dataclass(frozen=True)
class StationState:
    """What the gateway knows about one station (one evgrid charger) between messages."""

    station_id: str
    version: Literal["2.0.1", "2.1"]
    evse_id: int = 1
    transaction_id: str | None = None
    connected: bool = False
    power_kw: float = 0.0
    soc_pct: float | None = None
    battery_capacity_kwh: float | None = None
    register_start_kwh: float | None = None
    energy_kwh: float | None = None
    departure_time: int | None = None
    requested_energy_kwh: float | None = None
    target_soc_pct: float | None = None
    ev_max_charge_kw: float | None = None
    ev_max_discharge_kw: float | None = None
    ev_bidirectional: bool | None = None
    """The EV announced (NotifyEVChargingNeeds) a bidirectional energy transfer mode (``*_BPT``); None = not said."""
    number_phases: int | None = None


def parse_time(text: str) -> int:
    """RFC 3339 date-time → UTC epoch ms (a time without offset is taken as UTC)."""
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


@dataclass(frozen=True)
class MeterSample:
    """Measurands of one MeterValue list, in kW, kWh and %."""

    power_kw: float | None = None
    import_kwh: float | None = None
    soc_pct: float | None = None
    capacity_kwh: float | None = None


def _value(sv: dict[str, Any], default_unit: str) -> float:
    unit = sv.get("unitOfMeasure") or {}
    scale = _SCALE.get(unit.get("unit", default_unit), _SCALE.get(default_unit, 1.0))
    return float(sv["value"]) * scale * 10.0 ** int(unit.get("multiplier", 0))


def meter_sample(meter_values: list[dict[str, Any]]) -> MeterSample:
    """The newest reading of each measurand in ``meter_values`` (a list of MeterValueType)."""
    power: dict[str, dict[str, float]] = {"import": {}, "export": {}}
    import_kwh = soc = capacity = None
    for mv in sorted(meter_values, key=lambda m: parse_time(m["timestamp"])):
        for sv in mv["sampledValue"]:
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            phase = sv.get("phase", "total")
            if measurand in ("Power.Active.Import", "Power.Active.Export"):
                power["import" if measurand.endswith("Import") else "export"][phase] = _value(sv, "W")
            elif measurand == "Energy.Active.Import.Register" and phase == "total":
                import_kwh = _value(sv, "Wh")
            elif measurand == "SoC":
                soc = float(sv["value"])
            elif measurand == "Display.BatteryEnergyCapacity":
                capacity = _value(sv, "Wh")

    def total(d: dict[str, float]) -> float:
        return d["total"] if "total" in d else sum(d.values())

    kw = total(power["import"]) - total(power["export"]) if power["import"] or power["export"] else None
    return MeterSample(kw, import_kwh, soc, capacity)


def _with_sample(state: StationState, sample: MeterSample) -> StationState:
    changes: dict[str, Any] = {}
    if sample.power_kw is not None:
        changes["power_kw"] = sample.power_kw
    if sample.soc_pct is not None:
        changes["soc_pct"] = sample.soc_pct
    if sample.capacity_kwh is not None:
        changes["battery_capacity_kwh"] = sample.capacity_kwh
    if sample.import_kwh is not None:
        start = state.register_start_kwh if state.register_start_kwh is not None else sample.import_kwh
        changes["register_start_kwh"] = start
        changes["energy_kwh"] = round(sample.import_kwh - start, 6)
    return replace(state, **changes)


def on_transaction_event(state: StationState, p: dict[str, Any]) -> tuple[StationState, int]:
    """TransactionEvent (Started, Updated, Ended)."""
    ts = parse_time(p["timestamp"])
    info = p["transactionInfo"]
    s = state
    if p["eventType"] == "Started" or info["transactionId"] != s.transaction_id:
        s = replace(s, transaction_id=info["transactionId"], connected=True, register_start_kwh=None, energy_kwh=None,
                    soc_pct=None, departure_time=None, requested_energy_kwh=None, target_soc_pct=None,
                    ev_max_charge_kw=None, ev_max_discharge_kw=None, ev_bidirectional=None, power_kw=0.0)
    if "evse" in p:
        s = replace(s, evse_id=int(p["evse"]["id"]))
    if "numberOfPhasesUsed" in p:
        s = replace(s, number_phases=int(p["numberOfPhasesUsed"]))
    s = _with_sample(s, meter_sample(p.get("meterValue", [])))
    charging_state = info.get("chargingState")
    if charging_state == "Idle":
        s = replace(s, connected=False, power_kw=0.0)
    elif charging_state is not None:
        s = replace(s, connected=True)
    if p["eventType"] == "Ended":
        s = replace(s, transaction_id=None, connected=False, power_kw=0.0)
    return s, ts


def on_meter_values(state: StationState, p: dict[str, Any]) -> tuple[StationState, int]:
    """MeterValuesRequest (outside transactions, or a station that reports them separately)."""
    ts = max(parse_time(mv["timestamp"]) for mv in p["meterValue"])
    return _with_sample(state, meter_sample(p["meterValue"])), ts


def on_status(state: StationState, p: dict[str, Any]) -> tuple[StationState, int]:
    """StatusNotificationRequest: ``Occupied`` = EV plugged in, ``Available`` = none."""
    ts = parse_time(p["timestamp"])
    status = p["connectorStatus"]
    if status == "Occupied":
        return replace(state, connected=True, evse_id=int(p["evseId"])), ts
    if status == "Available":
        return replace(state, connected=False, power_kw=0.0), ts
    return state, ts


def on_charging_needs(state: StationState, p: dict[str, Any], now_ms: int) -> tuple[StationState, int]:
    """NotifyEVChargingNeedsRequest (2.0.1 AC/DC parameters, 2.1 V2X parameters); ``now_ms`` when untimed."""
    ts = parse_time(p["timestamp"]) if "timestamp" in p else now_ms
    needs = p["chargingNeeds"]
    ac = needs.get("acChargingParameters") or {}
    dc = needs.get("dcChargingParameters") or {}
    v2x = needs.get("v2xChargingParameters") or {}
    modes = [needs["requestedEnergyTransfer"], *needs.get("availableEnergyTransfer", [])]
    changes: dict[str, Any] = {"evse_id": int(p["evseId"]), "ev_bidirectional": any("BPT" in m for m in modes)}
    if "departureTime" in needs:
        changes["departure_time"] = parse_time(needs["departureTime"])
    energy_wh = v2x.get("evTargetEnergyRequest", dc.get("energyAmount", ac.get("energyAmount")))
    if energy_wh is not None:
        changes["requested_energy_kwh"] = float(energy_wh) / 1000.0
    if "targetSoC" in v2x:
        changes["target_soc_pct"] = float(v2x["targetSoC"])
    if "stateOfCharge" in dc:
        changes["soc_pct"] = float(dc["stateOfCharge"])
    if "evEnergyCapacity" in dc:
        changes["battery_capacity_kwh"] = float(dc["evEnergyCapacity"]) / 1000.0
    max_charge_w = v2x.get("maxChargePower", dc.get("evMaxPower"))
    if max_charge_w is not None:
        changes["ev_max_charge_kw"] = float(max_charge_w) / 1000.0
    if "maxDischargePower" in v2x:
        changes["ev_max_discharge_kw"] = abs(float(v2x["maxDischargePower"])) / 1000.0
    return replace(state, **changes), ts


def may_discharge(state: StationState, reg: ChargerRegistration) -> bool:
    """A discharge can be sent: a 2.1 station, registered bidirectional, whose EV did not announce a
    charge-only energy transfer mode."""
    return state.version == "2.1" and reg.bidirectional and state.ev_bidirectional is not False


def telemetry(state: StationState, reg: ChargerRegistration, ts_ms: int) -> ChargerTelemetry:
    """The ``ChargerTelemetry`` of ``state`` at ``ts_ms`` (pydantic validation: raises ``ValidationError``)."""
    max_charge = reg.max_charge_kw
    if state.ev_max_charge_kw is not None:
        max_charge = min(max_charge, state.ev_max_charge_kw)
    max_discharge = reg.max_discharge_kw if may_discharge(state, reg) else 0.0
    if state.ev_max_discharge_kw is not None:
        max_discharge = min(max_discharge, state.ev_max_discharge_kw)
    return ChargerTelemetry(
        charger_id=reg.charger_id, feeder_id=reg.feeder_id, timestamp=ts_ms, connected=state.connected,
        session_id=state.transaction_id, power_kw=round(state.power_kw, 3) + 0.0, soc_pct=state.soc_pct,
        battery_capacity_kwh=state.battery_capacity_kwh or reg.battery_capacity_kwh, max_charge_kw=max_charge,
        max_discharge_kw=max_discharge, departure_time=state.departure_time,
        requested_energy_kwh=state.requested_energy_kwh, target_soc_pct=state.target_soc_pct,
        energy_delivered_kwh=state.energy_kwh,
    )
