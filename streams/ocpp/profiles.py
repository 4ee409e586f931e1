"""A ``ChargerSetpoint`` as an OCPP SetChargingProfileRequest (2.0.1 or 2.1), and a revocation as a
ClearChargingProfileRequest, built with the ``ocpp`` library's message classes.

The profile (one per EVSE, id :func:`profile_id`, so each new setpoint replaces the last):

* ``TxProfile``, ``Absolute``, the running ``transactionId``, ``validFrom`` = the setpoint's ``valid_from``;
* one schedule in W starting at ``valid_from``: the setpoint from 0 s, and from ``valid_until`` on the
  setpoint's ``fallback_kw`` (the last period is open ended, so a station that loses the gateway runs on its
  fallback until a new profile or the end of the transaction); ``numberPhases`` on every period when the
  station reported it. The setpoint contract holds ``setpoint_kw`` for the whole validity (the value the safety
  envelope checked); the plan's ``schedule`` points are not sent inside it;
* 2.1 station with V2X (registered bidirectional, the EV not charge-only): every planned period uses ``operationMode``
  ``CentralSetpoint`` with ``setpoint`` in W (negative = discharge), bounded by ``limit`` (the charger's rating)
  and ``dischargeLimit`` (minus its discharge rating); the fallback period is ``ChargingOnly``;
* any other station (2.0.1, or 2.1 without V2X): ``limit`` only, never negative: a discharge is clipped at 0
  and :attr:`ProfileCommand.clipped` says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from ocpp.v21 import call as call21
from ocpp.v21 import datatypes as dt21
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as dt201

from streams.contracts.models import ChargerSetpoint

__all__ = ["DEFAULT_PROFILE_ID", "PROFILE_STACK_LEVEL", "ProfileCommand", "StationTarget", "clear_request",
           "clears", "default_request", "iso_utc", "profile_id", "setpoint_request"]

OcppVersion = Literal["2.0.1", "2.1"]
PROFILE_STACK_LEVEL = 1
_PROFILE_ID_BASE = 8_000
DEFAULT_PROFILE_ID = 7_000
"""The gateway's TxDefaultProfile (EVSE 0: every EVSE), installed at boot with the charger's fallback limit."""


def iso_utc(t_ms: int) -> str:
    """RFC 3339 UTC with ``Z`` and millisecond precision when needed."""
    t = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
    spec = "milliseconds" if t_ms % 1000 else "seconds"
    return t.isoformat(timespec=spec).replace("+00:00", "Z")


def profile_id(evse_id: int) -> int:
    """The gateway's TxProfile id on ``evse_id`` (a new setpoint replaces the profile of the same id)."""
    return _PROFILE_ID_BASE + evse_id


@dataclass(frozen=True)
class StationTarget:
    """What the mapping needs to know about the station a setpoint goes to."""

    version: OcppVersion
    evse_id: int
    transaction_id: str
    v2x: bool = False
    """A 2.1 station registered bidirectional: discharge goes out as a 2.1 setpoint."""
    max_charge_kw: float = 0.0
    max_discharge_kw: float = 0.0
    number_phases: int | None = None


@dataclass(frozen=True)
class ProfileCommand:
    """A SetChargingProfile request and what the mapping did to the setpoint."""

    request: Any
    """``ocpp.v201.call.SetChargingProfile`` or ``ocpp.v21.call.SetChargingProfile``."""
    clipped: bool
    """A discharge was clipped at 0 W (the station may not discharge)."""
    discharge: bool
    """The profile asks the station to discharge at some point."""


def _watts(kw: float) -> float:
    return round(kw * 1000.0, 1) + 0.0


def _planned(sp: ChargerSetpoint) -> list[tuple[int, float]]:
    """``(startPeriod s, kW)`` inside the validity: the setpoint, held until ``valid_until`` (the contract)."""
    return [(0, sp.setpoint_kw)]


def setpoint_request(sp: ChargerSetpoint, target: StationTarget) -> ProfileCommand:
    """The SetChargingProfile request carrying ``sp`` to ``target`` (see the module docstring)."""
    fallback_at = max(0, int((sp.valid_until - sp.valid_from) // 1000))
    planned = [(start, kw) for start, kw in _planned(sp) if start < fallback_at]
    discharge = any(kw < 0 for _, kw in planned)
    phases = target.number_phases
    if target.version == "2.1":
        periods21: list[dt21.ChargingSchedulePeriodType] = []
        for start, kw in planned:
            if target.v2x:
                periods21.append(dt21.ChargingSchedulePeriodType(
                    start_period=start, operation_mode="CentralSetpoint", setpoint=_watts(kw),
                    limit=_watts(max(kw, target.max_charge_kw, 0.0)),
                    discharge_limit=_watts(min(kw, -target.max_discharge_kw)) if min(kw, -target.max_discharge_kw) < 0
                    else None,
                    number_phases=phases))
            else:
                periods21.append(dt21.ChargingSchedulePeriodType(start_period=start, limit=_watts(max(kw, 0.0)),
                                                                 number_phases=phases))
        periods21.append(dt21.ChargingSchedulePeriodType(
            start_period=fallback_at, limit=_watts(sp.fallback_kw), number_phases=phases,
            operation_mode="ChargingOnly" if target.v2x else None))
        profile21 = dt21.ChargingProfileType(
            id=profile_id(target.evse_id), stack_level=PROFILE_STACK_LEVEL, charging_profile_purpose="TxProfile",
            charging_profile_kind="Absolute", transaction_id=target.transaction_id, valid_from=iso_utc(sp.valid_from),
            charging_schedule=[dt21.ChargingScheduleType(
                id=profile_id(target.evse_id), charging_rate_unit="W", start_schedule=iso_utc(sp.valid_from),
                charging_schedule_period=periods21)])
        return ProfileCommand(call21.SetChargingProfile(evse_id=target.evse_id, charging_profile=profile21),
                              clipped=discharge and not target.v2x, discharge=discharge and target.v2x)
    periods = [dt201.ChargingSchedulePeriodType(start_period=start, limit=_watts(max(kw, 0.0)), number_phases=phases)
               for start, kw in planned]
    periods.append(dt201.ChargingSchedulePeriodType(start_period=fallback_at, limit=_watts(sp.fallback_kw),
                                                    number_phases=phases))
    profile = dt201.ChargingProfileType(
        id=profile_id(target.evse_id), stack_level=PROFILE_STACK_LEVEL, charging_profile_purpose="TxProfile",
        charging_profile_kind="Absolute", transaction_id=target.transaction_id, valid_from=iso_utc(sp.valid_from),
        charging_schedule=[dt201.ChargingScheduleType(
            id=profile_id(target.evse_id), charging_rate_unit="W", start_schedule=iso_utc(sp.valid_from),
            charging_schedule_period=periods)])
    return ProfileCommand(call201.SetChargingProfile(evse_id=target.evse_id, charging_profile=profile),
                          clipped=discharge, discharge=False)


def clear_request(version: OcppVersion, evse_id: int) -> Any:
    """ClearChargingProfile of the gateway's TxProfile on ``evse_id`` (a revoked setpoint)."""
    if version == "2.1":
        return call21.ClearChargingProfile(charging_profile_id=profile_id(evse_id))
    return call201.ClearChargingProfile(charging_profile_id=profile_id(evse_id))


def default_request(version: OcppVersion, kw: float) -> Any:
    """SetChargingProfile of the station's TxDefaultProfile: ``kw`` (W on the wire), open ended, ``Relative`` (from
    the start of each transaction), on EVSE 0 (every EVSE). A station without a TxProfile runs on it, never on its
    own (unlimited) default."""
    if version == "2.1":
        return call21.SetChargingProfile(evse_id=0, charging_profile=dt21.ChargingProfileType(
            id=DEFAULT_PROFILE_ID, stack_level=0, charging_profile_purpose="TxDefaultProfile",
            charging_profile_kind="Relative", charging_schedule=[dt21.ChargingScheduleType(
                id=DEFAULT_PROFILE_ID, charging_rate_unit="W",
                charging_schedule_period=[dt21.ChargingSchedulePeriodType(start_period=0, limit=_watts(kw))])]))
    return call201.SetChargingProfile(evse_id=0, charging_profile=dt201.ChargingProfileType(
        id=DEFAULT_PROFILE_ID, stack_level=0, charging_profile_purpose="TxDefaultProfile",
        charging_profile_kind="Relative", charging_schedule=[dt201.ChargingScheduleType(
            id=DEFAULT_PROFILE_ID, charging_rate_unit="W",
            charging_schedule_period=[dt201.ChargingSchedulePeriodType(start_period=0, limit=_watts(kw))])]))


def clears(sp: ChargerSetpoint, default_kw: float) -> bool:
    """``sp`` asks for nothing but the installed default (a revocation: 0 kW and a 0 kW fallback under a 0 kW
    default): it is sent as ClearChargingProfile of the TxProfile, and the station falls back to the default."""
    return _watts(sp.setpoint_kw) == _watts(default_kw) and _watts(sp.fallback_kw) == _watts(default_kw)
