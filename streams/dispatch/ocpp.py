"""Mapping of a ``ChargerSetpoint`` to an OCPP 2.0.1 ``ChargingProfile`` (SetChargingProfileRequest).

* ``chargingProfilePurpose`` = ``TxProfile`` (applies to the running transaction), ``chargingProfileKind`` =
  ``Absolute``, ``stackLevel`` configurable (default 1);
* ``validFrom`` / ``validTo`` = the setpoint's validity (RFC 3339 UTC);
* one ``chargingSchedule`` with ``chargingRateUnit`` ``"W"``, ``startSchedule`` = ``valid_from`` and
  ``duration`` up to ``valid_until``; periods: the setpoint from 0 s, then each later schedule point at its
  offset (``startPeriod`` seconds), ``limit`` in W;
* negative limits (discharge) follow OCPP 2.1 (bidirectional, V2X); an OCPP 2.0.1-only station cannot
  discharge, so ``allow_discharge=False`` clips limits at 0.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from streams.contracts.models import ChargerSetpoint

__all__ = ["iso_utc", "to_charging_profile"]


def iso_utc(t_ms: int) -> str:
    """RFC 3339 UTC timestamp with ``Z``."""
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_charging_profile(sp: ChargerSetpoint, profile_id: int, transaction_id: str | None = None,
                        stack_level: int = 1, allow_discharge: bool = True,
                        until_ms: int | None = None) -> dict[str, Any]:
    """The ``chargingProfile`` object of a SetChargingProfileRequest for ``sp`` (JSON-ready dict).

    ``until_ms`` (default ``valid_until``) ends the profile; pass the end of the schedule to let the
    station follow the planned schedule through a communications gap.
    """
    end = max(sp.valid_until, until_ms) if until_ms is not None else sp.valid_until

    def watts(kw: float) -> float:
        w = round(kw * 1000.0, 1)
        return w if allow_discharge else max(0.0, w)

    periods = [{"startPeriod": 0, "limit": watts(sp.setpoint_kw)}]
    for p in sp.schedule:
        off = (p.start - sp.valid_from) // 1000
        if off <= 0 or p.start >= end:
            continue
        if watts(p.kw) != periods[-1]["limit"]:
            periods.append({"startPeriod": int(off), "limit": watts(p.kw)})
    profile: dict[str, Any] = {
        "id": int(profile_id),
        "stackLevel": int(stack_level),
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "validFrom": iso_utc(sp.valid_from),
        "validTo": iso_utc(end),
        "chargingSchedule": [{
            "id": int(profile_id),
            "startSchedule": iso_utc(sp.valid_from),
            "duration": int((end - sp.valid_from) // 1000),
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": periods,
        }],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile
