"""What a station runs from the profile it was sent (pure): the station side of :mod:`streams.ocpp.profiles`.

A station holding one Absolute TxProfile uses, at time ``t``, the last period whose start is at or before ``t``:
a 2.1 ``CentralSetpoint`` period's ``setpoint`` (W, negative = discharge), else its ``limit`` (W, a charge
cap). :func:`profile_as_setpoint` writes that schedule as a :class:`ChargerSetpoint` whose
:func:`streams.simulate.twin.command_at` gives the same command at every time (with a ``schedule_ms`` that
reaches the last period), so the charger twin can follow what a station received over OCPP.

>>> from streams.ocpp.profiles import StationTarget, setpoint_request
>>> sp = ChargerSetpoint(charger_id="cs-1", feeder_id="f", sequence=3, setpoint_kw=-4.0, valid_from=0,
...                      valid_until=900_000, fallback_kw=2.0, reason="optimal", plan_id="p", issued_at=0)
>>> wire = profile_payload(setpoint_request(sp, StationTarget("2.1", 1, "tx", v2x=True, max_charge_kw=11,
...                                                            max_discharge_kw=7)).request)
>>> [station_command_kw(wire, t) for t in (0, 899_999, 900_000)]
[-4.0, -4.0, 2.0]
>>> wire201 = profile_payload(setpoint_request(sp, StationTarget("2.0.1", 1, "tx")).request)
>>> station_command_kw(wire201, 0)
0.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ocpp.charge_point import camel_to_snake_case, remove_nones, snake_to_camel_case

from streams.contracts.models import ChargerSetpoint, SchedulePoint
from streams.ocpp.events import parse_time

__all__ = ["StationProfiles", "profile_as_setpoint", "profile_payload", "station_command_kw", "station_periods"]


def profile_payload(request: Any) -> dict[str, Any]:
    """A SetChargingProfile request object as the camelCase payload a station receives."""
    return snake_to_camel_case(remove_nones(asdict(request)))


def station_periods(payload: dict[str, Any]) -> tuple[int, list[tuple[int, float]]]:
    """``(start ms, [(period start ms, kW)])`` of the first schedule of a SetChargingProfile payload."""
    sched = payload["chargingProfile"]["chargingSchedule"][0]
    start = parse_time(sched["startSchedule"]) if "startSchedule" in sched else 0  # Relative: from any start
    scale = 1e-3 if sched["chargingRateUnit"] == "W" else None
    if scale is None:
        raise ValueError(f"charging rate unit {sched['chargingRateUnit']!r} is not W")
    out = []
    for p in camel_to_snake_case(sched["chargingSchedulePeriod"]):
        watts = p["setpoint"] if p.get("operation_mode") == "CentralSetpoint" and "setpoint" in p else p["limit"]
        out.append((start + int(p["start_period"]) * 1000, float(watts) * scale))
    return start, out


def station_command_kw(payload: dict[str, Any], t: int) -> float | None:
    """The power (kW, + charge) the station runs at ``t`` under ``payload``; None before the schedule starts."""
    _, periods = station_periods(payload)
    kw = None
    for start, value in periods:
        if start > t:
            break
        kw = value
    return kw


@dataclass
class StationProfiles:
    """The profiles a station holds from the gateway: a TxProfile (the setpoint) overrides the TxDefaultProfile
    (the fallback installed at boot) while it is installed; ClearChargingProfile removes the profile of its id."""

    default: dict[str, Any] | None = None
    tx: dict[str, Any] | None = None

    def apply(self, action: str, payload: dict[str, Any]) -> None:
        if action == "SetChargingProfile":
            purpose = payload["chargingProfile"]["chargingProfilePurpose"]
            if purpose == "TxDefaultProfile":
                self.default = payload
            elif purpose == "TxProfile":
                self.tx = payload
        elif action == "ClearChargingProfile":
            pid = payload.get("chargingProfileId")
            if self.tx is not None and pid in (None, self.tx["chargingProfile"]["id"]):
                self.tx = None
            if self.default is not None and pid in (None, self.default["chargingProfile"]["id"]):
                self.default = None

    def effective(self) -> dict[str, Any] | None:
        """The profile the station runs on (``None``: none, the station's own default, unlimited)."""
        return self.tx if self.tx is not None else self.default

    def command_kw(self, t: int) -> float | None:
        p = self.effective()
        return None if p is None else station_command_kw(p, t)


def profile_as_setpoint(payload: dict[str, Any], charger_id: str, feeder_id: str, sequence: int) -> ChargerSetpoint:
    """The received profile as a setpoint the twin applies like the station (see the module doc)."""
    start, periods = station_periods(payload)
    first_kw = periods[0][1]
    later = periods[1:]
    until = later[0][0] if later else start + 1
    return ChargerSetpoint(
        charger_id=charger_id, feeder_id=feeder_id, sequence=sequence, setpoint_kw=first_kw, valid_from=start,
        valid_until=until, fallback_kw=max(0.0, periods[-1][1]), reason="optimal",
        message="read back from an OCPP profile", plan_id=str(payload["chargingProfile"]["id"]), issued_at=start,
        schedule=[SchedulePoint(start=s, kw=kw) for s, kw in later])
