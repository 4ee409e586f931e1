"""Pure mappings: setpoint → SetChargingProfile (schema-validated by the ``ocpp`` library), station payloads →
ChargerTelemetry, the onboarding CSV and password hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, _validate_payload
from pydantic import ValidationError

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, SchedulePoint
from streams.ocpp import events
from streams.ocpp.events import StationState
from streams.ocpp.profiles import StationTarget, clear_request, setpoint_request
from streams.ocpp.registry import CsvError, Directory, hash_password, read_chargers_csv, verify_password
from streams.ocpp.schemas import to_payload, validate

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000


def sp(kw: float, schedule: list[tuple[int, float]], *, valid_min: int = 30, fallback: float = 0.0) -> ChargerSetpoint:
    return ChargerSetpoint(charger_id="c1", feeder_id="f1", session_id="tx", sequence=1, setpoint_kw=kw,
                           valid_from=T0, valid_until=T0 + valid_min * MIN, fallback_kw=fallback,
                           schedule=[SchedulePoint(start=T0 + m * MIN, kw=k) for m, k in schedule],
                           reason="optimal", plan_id="p", issued_at=T0)


def wire(request: object, version: str) -> dict:
    """The request as the library sends it, after the library's schema validation (and the gateway's own
    serialisation and compiled validation agree)."""
    payload = remove_nones(snake_to_camel_case(serialize_as_dict(request)))
    _validate_payload(Call("1", type(request).__name__, payload), version)
    assert to_payload(request) == payload
    validate(Call("1", type(request).__name__, payload), version)
    return payload


def periods(payload: dict) -> list[dict]:
    return payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]


def test_201_profile_is_schema_valid_with_the_setpoint_for_its_validity_then_fallback() -> None:
    cmd = setpoint_request(sp(7.0, [(0, 7.0), (15, 3.25), (45, 9.0)], fallback=1.5),
                           StationTarget("2.0.1", evse_id=2, transaction_id="tx"))
    p = wire(cmd.request, "2.0.1")
    assert p["evseId"] == 2 and p["chargingProfile"]["id"] == 8002
    assert p["chargingProfile"]["validFrom"] == "2026-01-01T00:00:00Z" and "validTo" not in p["chargingProfile"]
    # the plan's 15-min point is not sent: the contract holds setpoint_kw (what the envelope checked) until
    # valid_until; a station that hears nothing more runs on the fallback
    assert periods(p) == [{"startPeriod": 0, "limit": 7000.0}, {"startPeriod": 1800, "limit": 1500.0}]
    assert not cmd.clipped and not cmd.discharge


def test_201_never_negative_and_says_so() -> None:
    cmd = setpoint_request(sp(-4.0, [(10, 2.0)]), StationTarget("2.0.1", 1, "tx", v2x=True, max_discharge_kw=7))
    assert [q["limit"] for q in periods(wire(cmd.request, "2.0.1"))] == [0.0, 0.0]
    assert cmd.clipped and not cmd.discharge
    charge_only = setpoint_request(sp(4.0, [(10, 2.0)]), StationTarget("2.0.1", 1, "tx"))
    assert not charge_only.clipped


def test_21_v2x_uses_central_setpoint_and_discharge_limit() -> None:
    target = StationTarget("2.1", 1, "tx", v2x=True, max_charge_kw=11.0, max_discharge_kw=7.0, number_phases=3)
    cmd = setpoint_request(sp(-9.5, [(20, 5.0)]), target)
    ps = periods(wire(cmd.request, "2.1"))
    assert ps[0] == {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -9500.0, "limit": 11000.0,
                     "dischargeLimit": -9500.0, "numberPhases": 3}  # never tighter than the setpoint itself
    assert ps[1] == {"startPeriod": 1800, "limit": 0.0, "operationMode": "ChargingOnly", "numberPhases": 3}
    assert len(ps) == 2
    assert cmd.discharge and not cmd.clipped
    plain = setpoint_request(sp(-9.5, []), StationTarget("2.1", 1, "tx", v2x=False))
    assert periods(wire(plain.request, "2.1"))[0] == {"startPeriod": 0, "limit": 0.0} and plain.clipped


def test_clear_request_targets_the_gateway_profile() -> None:
    assert wire(clear_request("2.1", 3), "2.1") == {"chargingProfileId": 8003}
    assert wire(clear_request("2.0.1", 1), "2.0.1") == {"chargingProfileId": 8001}


REG = ChargerRegistration(charger_id="c1", feeder_id="f1", site_id="s", customer_id="u", bidirectional=True,
                          inverter_location="onboard", interconnection_class="parallel_exporting", v2g_enrolled=True,
                          max_charge_kw=11.0, max_discharge_kw=7.0, registered_at=T0)


def mv(ts: str, *sampled: dict) -> list[dict]:
    return [{"timestamp": ts, "sampledValue": list(sampled)}]


def test_transaction_meter_values_and_charging_needs_become_telemetry() -> None:
    s0 = StationState("c1", "2.1")
    s1, ts = events.on_transaction_event(s0, {
        "eventType": "Started", "timestamp": "2026-01-01T08:00:00Z", "triggerReason": "CablePluggedIn", "seqNo": 0,
        "transactionInfo": {"transactionId": "T1", "chargingState": "EVConnected"}, "evse": {"id": 2},
        "meterValue": mv("2026-01-01T08:00:00Z", {"value": 12.0, "measurand": "Energy.Active.Import.Register",
                                                  "unitOfMeasure": {"unit": "kWh"}})})
    assert ts == T0 + 8 * 60 * MIN and s1.transaction_id == "T1" and s1.evse_id == 2 and s1.connected
    s2, _ = events.on_transaction_event(s1, {
        "eventType": "Updated", "timestamp": "2026-01-01T08:05:00Z", "triggerReason": "MeterValuePeriodic",
        "seqNo": 1, "transactionInfo": {"transactionId": "T1", "chargingState": "Charging"},
        "meterValue": mv("2026-01-01T08:05:00Z",
                         {"value": 2.4, "measurand": "Power.Active.Import", "phase": "L1", "unitOfMeasure":
                          {"unit": "W", "multiplier": 3}},
                         {"value": 2400, "measurand": "Power.Active.Import", "phase": "L2"},
                         {"value": 12500, "measurand": "Energy.Active.Import.Register"},
                         {"value": 48, "measurand": "SoC"})})
    s3, ts3 = events.on_charging_needs(s2, {"evseId": 2, "timestamp": "2026-01-01T08:06:00+01:00", "chargingNeeds": {
        "requestedEnergyTransfer": "DC_BPT", "departureTime": "2026-01-01T17:00:00Z",
        "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400, "evEnergyCapacity": 60000},
        "v2xChargingParameters": {"evTargetEnergyRequest": 20000, "targetSoC": 80, "maxChargePower": 9000,
                                  "maxDischargePower": 5000}}}, now_ms=0)
    assert ts3 == T0 + 7 * 60 * MIN + 6 * MIN
    t = events.telemetry(s3, REG, ts3)
    assert (t.charger_id, t.feeder_id, t.session_id, t.connected) == ("c1", "f1", "T1", True)
    assert t.power_kw == 4.8 and t.energy_delivered_kwh == 0.5 and t.soc_pct == 48
    assert t.departure_time == T0 + 17 * 60 * MIN and t.requested_energy_kwh == 20.0 and t.target_soc_pct == 80
    assert t.battery_capacity_kwh == 60.0 and t.max_charge_kw == 9.0 and t.max_discharge_kw == 5.0
    # the same registration behind a 2.0.1 station offers no discharge, nor an EV that charges only
    assert events.telemetry(StationState("c1", "2.0.1"), REG, ts3).max_discharge_kw == 0.0
    charge_only, _ = events.on_charging_needs(s2, {"evseId": 2, "chargingNeeds": {
        "requestedEnergyTransfer": "DC", "availableEnergyTransfer": ["DC", "AC_three_phase"]}}, now_ms=ts3)
    assert events.telemetry(charge_only, REG, ts3).max_discharge_kw == 0.0
    assert not events.may_discharge(charge_only, REG) and events.may_discharge(s3, REG)
    s4, _ = events.on_transaction_event(s3, {
        "eventType": "Ended", "timestamp": "2026-01-01T09:00:00Z", "triggerReason": "EVDeparted", "seqNo": 2,
        "transactionInfo": {"transactionId": "T1", "stoppedReason": "EVDisconnected"}})
    end = events.telemetry(s4, REG, T0)
    assert not end.connected and end.session_id is None and end.power_kw == 0.0


def test_export_power_and_status_and_impossible_values() -> None:
    s, _ = events.on_meter_values(StationState("c1", "2.1", connected=True), {"evseId": 1, "meterValue": mv(
        "2026-01-01T00:00:00Z", {"value": 6000, "measurand": "Power.Active.Export"})})
    assert events.telemetry(s, REG, T0).power_kw == -6.0
    off, _ = events.on_status(s, {"timestamp": "2026-01-01T00:01:00Z", "connectorStatus": "Available", "evseId": 1,
                                  "connectorId": 1})
    assert not events.telemetry(off, REG, T0).connected
    too_much, _ = events.on_meter_values(s, {"evseId": 1, "meterValue": mv(
        "2026-01-01T00:00:00Z", {"value": 60, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}})})
    with pytest.raises(ValidationError, match="max_charge_kw"):
        events.telemetry(too_much, REG, T0)
    with pytest.raises(ValueError):
        events.parse_time("yesterday")


def test_onboarding_csv(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("station,feeder,site,class,export_limit_kw,rating_kw,max_discharge_kw,password\n"
                 "a,f1,s1,parallel_exporting,5,22,10,0123456789abcdefXYZ\n"
                 "b,f2,s2,non_parallel,0,7.4,,\n")
    regs, pw = read_chargers_csv(f, T0)
    assert [(r.charger_id, r.bidirectional, r.max_discharge_kw, r.max_charge_kw) for r in regs] == [
        ("a", True, 10.0, 22.0), ("b", False, 0.0, 7.4)]
    assert pw == {"a": "0123456789abcdefXYZ"}
    for body, msg in (("station,feeder\n", "missing column"),
                      ("station,feeder,site,class,export_limit_kw,rating_kw\na,f,s,bogus,0,7\n", ":2: interconnection"),
                      ("station,feeder,site,class,export_limit_kw,rating_kw\na,f,s,non_parallel,0,lots\n",
                       "rating_kw: 'lots' is not a number"),
                      ("station,feeder,site,class,export_limit_kw,rating_kw,password\na,f,s,non_parallel,0,7,short\n",
                       "16-40 characters")):
        f.write_text(body)
        with pytest.raises(CsvError, match=msg):
            read_chargers_csv(f, T0)


def test_password_hashes() -> None:
    h = hash_password("0123456789abcdef", n=2 ** 10)
    assert "0123456789abcdef" not in h and h != hash_password("0123456789abcdef", n=2 ** 10)  # salted
    assert verify_password("0123456789abcdef", h) and not verify_password("0123456789abcdeF", h)
    assert not verify_password("x", "garbage")
    d = Directory(credentials={"a": h})
    assert d.check_password("a", "0123456789abcdef") and d.check_password("a", "0123456789abcdef")  # cached
    assert not d.check_password("a", "wrong-wrong-wrong") and not d.check_password("b", "0123456789abcdef")


def test_cli_refuses_bad_input_with_one_line_and_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app

    bad = tmp_path / "bad.csv"
    bad.write_text("station,feeder,site,class,export_limit_kw,rating_kw\ncs-1,f1,s1,non_parallel,0,-7\n")
    runner = CliRunner()
    for argv, msg in ((["chargers", "register", str(bad)], "bad.csv:2: max_charge_kw: -7.0 is not >= 0"),
                      (["ocpp-gateway", "--security-profile", "4"], "--security-profile must be 1, 2 or 3"),
                      (["ocpp-gateway", "--security-profile", "3", "--certfile", str(bad), "--keyfile", str(bad)],
                       "cannot load TLS material")):
        out = runner.invoke(app, argv)
        assert out.exit_code == 2, out.output
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], out.output
