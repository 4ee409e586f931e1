"""The gateway over real websockets on 127.0.0.1 with stations simulated by the same ``ocpp`` library."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, SchedulePoint
from streams.ocpp.gateway import Gateway, GatewayConfig
from streams.ocpp.handshake import server_ssl_context
from streams.ocpp.registry import Directory, hash_password
from streams.ocpp.simstation import connect_station
from tests.fixtures.ocpp_pki import Pki, make_pki

PASSWORD = "correct-horse-battery-1"
NOW = int(time.time() * 1000)
"""Wall-clock now of the test under way (reset before each test by ``conftest.py``: the gateway checks a setpoint's
validity against the wall clock, and a run may reach a test long after it was imported)."""


def reg(station: str, *, bidirectional: bool = False, active: bool = True, at: int | None = None
        ) -> ChargerRegistration:
    return ChargerRegistration(
        charger_id=station, feeder_id="feeder-7", site_id="site-1", customer_id="c1", bidirectional=bidirectional,
        inverter_location="onboard", interconnection_class="parallel_exporting" if bidirectional else "non_parallel",
        v2g_enrolled=bidirectional, max_charge_kw=11.0, max_discharge_kw=7.0 if bidirectional else 0.0,
        registered_at=NOW - 60_000 if at is None else at, active=active)


def setpoint(station: str, kw: float, *, seq: int = 1, session: str | None = "tx-1") -> ChargerSetpoint:
    return ChargerSetpoint(
        charger_id=station, feeder_id="feeder-7", session_id=session, sequence=seq, setpoint_kw=kw,
        valid_from=NOW, valid_until=NOW + 1_800_000, fallback_kw=1.4,
        schedule=[SchedulePoint(start=NOW, kw=kw), SchedulePoint(start=NOW + 900_000, kw=abs(kw) / 2)],
        reason="optimal", plan_id="plan-1", issued_at=NOW)


class Outputs:
    def __init__(self) -> None:
        self.telemetry_records: list[Any] = []
        self.dead_letters: list[Any] = []
        self.outcomes: list[Any] = []

    def telemetry(self, record: Any) -> None:
        self.telemetry_records.append(record)

    def dead_letter(self, record: Any) -> None:
        self.dead_letters.append(record)

    def outcome(self, outcome: Any) -> None:
        self.outcomes.append(outcome)


def run(profile: int, body: Callable[[Gateway, Outputs, str, Any], Awaitable[None]], tmp_path: Path,
        stations: tuple[ChargerRegistration, ...] = ()) -> None:
    pki = make_pki(tmp_path / "pki") if profile in (2, 3) else None
    directory = Directory()
    for r in stations or (reg("st-1"), reg("st-v2x", bidirectional=True), reg("st-off", active=False)):
        directory.register(r)
        directory.credentials[r.charger_id] = hash_password(PASSWORD, n=2 ** 10)
    ctx = server_ssl_context(str(pki.server_cert), str(pki.server_key), str(pki.ca_cert), profile == 3) if pki else None
    outputs = Outputs()
    gw = Gateway(directory, outputs, GatewayConfig(port=0, security_profile=profile, ssl_context=ctx,
                                                   response_timeout_seconds=5, connect_grace_seconds=0.3))

    async def main() -> None:
        await gw.start()
        try:
            url = f"{'wss' if pki else 'ws'}://127.0.0.1:{gw.port}/ocpp"
            await asyncio.wait_for(body(gw, outputs, url, pki), 60)
        finally:
            await gw.stop()

    asyncio.run(main())


def test_boot_transaction_profile_revocation_and_reconnection_201(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Pki) -> None:
        s = await connect_station(url, "st-1", "2.0.1", password=PASSWORD, ssl_context=pki.client_context())
        boot = await s.station.boot()
        assert boot.status == "Accepted"
        gw.apply_setpoint("st-1", setpoint("st-1", -5.0))  # discharge asked of a 2.0.1 station
        await s.station.transaction("Started", "tx-1", power_w=0.0, energy_wh=1000.0, soc=40, phases=3)
        got = await s.station.next_received()
        assert got.action == "SetChargingProfile"
        p = got.payload
        assert p["evseId"] == 1
        prof = p["chargingProfile"]
        assert prof["chargingProfilePurpose"] == "TxProfile" and prof["chargingProfileKind"] == "Absolute"
        assert prof["transactionId"] == "tx-1" and prof["validFrom"] == prof["chargingSchedule"][0]["startSchedule"]
        sched = prof["chargingSchedule"][0]
        assert sched["chargingRateUnit"] == "W"
        assert sched["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 0.0, "numberPhases": 3},  # -5 kW clipped at 0 on 2.0.1, held while valid
            {"startPeriod": 1800, "limit": 1400.0, "numberPhases": 3},  # the fallback after valid_until
        ]
        await _until(lambda: out.outcomes)
        assert out.outcomes[0].status == "Accepted" and out.outcomes[0].clipped and not out.outcomes[0].discharge
        # meter values become telemetry on the feeder key, in kW / kWh
        await s.station.transaction("Updated", "tx-1", power_w=7200.0, energy_wh=3500.0, soc=55)
        t = out.telemetry_records[-1]
        assert (t.charger_id, t.feeder_id, t.session_id, t.connected) == ("st-1", "feeder-7", "tx-1", True)
        assert t.power_kw == 7.2 and t.energy_delivered_kwh == 2.5 and t.soc_pct == 55
        assert t.max_discharge_kw == 0.0  # 2.0.1: no discharge can be sent, so none is offered
        # reconnection: the same profile is sent again on the new connection
        await s.close()
        s2 = await connect_station(url, "st-1", "2.0.1", password=PASSWORD, ssl_context=pki.client_context())
        again = await s2.station.next_received()
        assert again.action == "SetChargingProfile" and again.payload == p
        # revocation -> ClearChargingProfile
        gw.apply_setpoint("st-1", None)
        cleared = await s2.station.next_received()
        assert cleared.action == "ClearChargingProfile" and cleared.payload == {"chargingProfileId": 8001}
        await s2.station.transaction("Ended", "tx-1", power_w=0.0, energy_wh=9000.0)
        assert out.telemetry_records[-1].connected is False and out.telemetry_records[-1].session_id is None
        await s2.close()

    run(2, body, tmp_path)


def test_v2x_discharge_the_21_way_and_21_without_v2x_is_clipped(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Any) -> None:
        s = await connect_station(url, "st-v2x", "2.1", password=PASSWORD)
        assert (await s.station.boot()).status == "Accepted"
        await s.station.transaction("Started", "tx-9", power_w=0.0)
        gw.apply_setpoint("st-v2x", setpoint("st-v2x", -6.0, session="tx-9"))
        got = await s.station.next_received()
        periods = got.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert periods[0] == {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -6000.0,
                              "limit": 11000.0, "dischargeLimit": -7000.0}
        assert all(p.get("limit", 0) >= 0 for p in periods)  # never a negative limit, even on 2.1
        assert periods[-1] == {"startPeriod": 1800, "limit": 1400.0, "operationMode": "ChargingOnly"}
        await _until(lambda: out.outcomes)
        assert out.outcomes[-1].discharge and not out.outcomes[-1].clipped
        assert out.telemetry_records[-1].max_discharge_kw == 7.0
        # the EV says it charges only (no *_BPT mode): no discharge is offered or sent any more
        needs = await s.station.call(s.station.calls.NotifyEVChargingNeeds(
            evse_id=1, charging_needs={"requested_energy_transfer": "DC"}))
        assert needs.status == "Accepted" and out.telemetry_records[-1].max_discharge_kw == 0.0
        gw.apply_setpoint("st-v2x", setpoint("st-v2x", -6.0, seq=2, session="tx-9"))
        again = await s.station.next_received()
        assert again.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0] == {
            "startPeriod": 0, "limit": 0.0}
        await _until(lambda: len(out.outcomes) == 2)
        assert out.outcomes[-1].clipped
        # a unidirectional charger on a 2.1 station: limit only, clipped at 0
        s1 = await connect_station(url, "st-1", "2.1", password=PASSWORD)
        await s1.station.transaction("Started", "tx-2", power_w=0.0)
        gw.apply_setpoint("st-1", setpoint("st-1", -3.0, session="tx-2"))
        p1 = (await s1.station.next_received()).payload["chargingProfile"]["chargingSchedule"][0]
        assert p1["chargingSchedulePeriod"][0] == {"startPeriod": 0, "limit": 0.0}
        await _until(lambda: len(out.outcomes) == 3)
        assert out.outcomes[-1].clipped
        # a setpoint of an earlier session is never sent to the running one
        gw.apply_setpoint("st-1", setpoint("st-1", 5.0, seq=2, session="tx-old"))
        with pytest.raises(TimeoutError):
            await s1.station.next_received(timeout=0.5)
        await s.close()
        await s1.close()

    run(1, body, tmp_path)


def test_the_stations_answer_to_a_setpoint_becomes_telemetry(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Any) -> None:
        s = await connect_station(url, "st-1", "2.0.1", password=PASSWORD)
        await s.station.transaction("Started", "tx-1", power_w=3000.0, energy_wh=1000.0)
        s.station.answer = "Rejected"
        gw.apply_setpoint("st-1", setpoint("st-1", 4.0, seq=7))
        await s.station.next_received()
        await _until(lambda: any(t.setpoint_answer for t in out.telemetry_records))
        s.station.answer = "Accepted"
        gw.apply_setpoint("st-1", setpoint("st-1", 5.0, seq=8))
        await s.station.next_received()
        await _until(lambda: sum(t.setpoint_answer is not None for t in out.telemetry_records) == 2)
        answers = [(t.setpoint_sequence, t.setpoint_answer, t.power_kw, t.session_id) for t in out.telemetry_records
                   if t.setpoint_answer is not None]
        assert answers == [(7, "rejected", 3.0, "tx-1"), (8, "accepted", 3.0, "tx-1")]
        assert all(t.setpoint_answer is None for t in out.telemetry_records if t.setpoint_sequence is None)
        await s.close()

    run(1, body, tmp_path)


def test_bad_credentials_and_unregistered_stations_are_refused(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Pki) -> None:
        ctx = pki.client_context()
        for station, pw, user, code in (("st-1", "wrong-password-123456", None, 401), ("st-1", None, None, 401),
                                        ("st-1", PASSWORD, "st-v2x", 401), ("nobody", PASSWORD, None, 404),
                                        ("st-off", PASSWORD, None, 404)):
            with pytest.raises(InvalidStatus) as exc:
                await connect_station(url, station, password=pw, user=user, ssl_context=ctx)
            assert exc.value.response.status_code == code, (station, pw, user)
        with pytest.raises(InvalidStatus) as bad_proto:
            await connect_station(url, "st-1", password=PASSWORD, ssl_context=ctx, subprotocols=["ocpp1.6"])
        assert bad_proto.value.response.status_code == 400
        with pytest.raises((OSError, websockets.exceptions.InvalidMessage)):  # plain ws on the TLS port
            await connect_station(url.replace("wss://", "ws://"), "st-1", password=PASSWORD)
        assert gw.stats.refused == {"credentials": 3, "unregistered": 2, "subprotocol": 1}
        assert not out.dead_letters and gw.stats.connections == 0
        ok = await connect_station(url, "st-1", password=PASSWORD, ssl_context=ctx)
        assert (await ok.station.boot()).status == "Accepted"
        gw.apply_registration(reg("st-1", active=True, at=NOW - 120_000))  # older: ignored
        assert "st-1" in gw.connected
        gw.apply_registration(reg("st-1", active=False, at=NOW))  # deactivated while connected: closed
        await asyncio.wait_for(ok.ws.wait_closed(), 10)
        assert ok.ws.close_code == 1008
        with pytest.raises(InvalidStatus):
            await connect_station(url, "st-1", password=PASSWORD, ssl_context=ctx)

    run(2, body, tmp_path)


def test_after_a_gateway_restart_a_silent_station_gets_the_setpoint_of_its_session(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Any) -> None:
        gw.apply_setpoint("st-1", setpoint("st-1", 4.0, session="tx-5"))
        booted = await connect_station(url, "st-1", "2.0.1", password=PASSWORD)
        await booted.station.boot()  # booted within the grace: no transaction, so no profile
        with pytest.raises(TimeoutError):
            await booted.station.next_received(timeout=0.8)
        await booted.close()
        gw.states.clear()  # as after a restart: the gateway knows nothing of the station
        silent = await connect_station(url, "st-1", "2.0.1", password=PASSWORD)
        got = await silent.station.next_received()
        assert got.payload["chargingProfile"]["transactionId"] == "tx-5"
        await silent.close()

    run(1, body, tmp_path)


def test_mtls_profile_3(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Pki) -> None:
        s = await connect_station(url, "st-1", "2.1", ssl_context=pki.client_context("st-1"))
        assert (await s.station.boot()).status == "Accepted"
        await s.close()
        with pytest.raises(InvalidStatus) as other:  # a valid certificate of another station
            await connect_station(url, "st-1", ssl_context=pki.client_context("st-v2x"))
        assert other.value.response.status_code == 403
        for ctx in (pki.client_context(), pki.client_context("st-1", signed_by_ca=False)):
            with pytest.raises((OSError, websockets.exceptions.WebSocketException)):  # no or untrusted cert
                await connect_station(url, "st-1", ssl_context=ctx)
        assert gw.stats.connections == 1

    run(3, body, tmp_path)


def test_malformed_messages_get_callerrors_and_dead_letters_never_a_crash(tmp_path: Path) -> None:
    async def body(gw: Gateway, out: Outputs, url: str, pki: Any) -> None:
        s = await connect_station(url, "st-1", "2.0.1", password=PASSWORD)
        st = s.station
        frames = [
            "not json",  # RpcFrameworkError, id -1
            '{"a": 1}',  # not an OCPP-J array
            json.dumps([2, "m3", "BootNotification", {"reason": "PowerUp"}]),  # required field missing
            json.dumps([2, "m4", "Heartbeat", {"extra": 1}]),  # additional property
            json.dumps([2, "m5", "TransactionEvent", {  # schema-valid, SoC 140 %
                "eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "MeterValuePeriodic",
                "seqNo": 1, "transactionInfo": {"transactionId": "tx-1"},
                "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
                    {"value": 140, "measurand": "SoC"}]}]}]),
            json.dumps([2, "m6", "StatusNotification", {  # not a date-time
                "timestamp": "yesterday", "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}]),
            json.dumps([2, "m7", "DataTransfer", {"vendorId": "x"}]),  # an action the gateway does not serve
        ]
        for f in frames:
            await st.send_raw(f)
        await _until(lambda: len(st.errors) == len(frames))
        got = {e[1]: e[2] for e in st.errors}
        assert got["-1"] == "RpcFrameworkError" and got["m3"] == "ProtocolError"
        assert got["m4"] == "FormatViolation" and got["m5"] == "PropertyConstraintViolation"
        assert got["m6"] == "FormatViolation" and got["m7"] == "NotImplemented"
        assert len(out.dead_letters) == len(frames)
        d = out.dead_letters[4]
        assert d.source_topic == "ocpp:st-1" and d.reason_code == "ocpp_PropertyConstraintViolation"
        assert "soc_pct" in d.reason and b"140" in d.value
        # the station still works, and the bad SoC did not stick
        assert (await st.boot()).status == "Accepted"
        await st.transaction("Started", "tx-1", power_w=3000.0, soc=20)
        assert out.telemetry_records[-1].soc_pct == 20 and out.telemetry_records[-1].power_kw == 3.0
        await s.close()

    run(1, body, tmp_path)


def test_random_mutations_of_valid_messages_are_all_answered(tmp_path: Path) -> None:
    """Every CALL frame gets exactly one CALLRESULT or CALLERROR, whatever was mutated; the station keeps working."""
    import random

    rng = random.Random(16)
    valid = {"eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "MeterValuePeriodic",
             "seqNo": 1, "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
             "evse": {"id": 1}, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
                 {"value": 3000, "measurand": "Power.Active.Import"}, {"value": 50, "measurand": "SoC"}]}]}
    junk: list[Any] = [None, -1, 1e308, "", "x" * 5000, [], {}, True, -1e9, {"a": [1, {"b": None}]}]

    def mutate(obj: Any) -> Any:
        if isinstance(obj, dict) and obj and rng.random() < 0.7:
            key = rng.choice(list(obj))
            out = dict(obj)
            roll = rng.random()
            if roll < 0.3:
                del out[key]
            elif roll < 0.6:
                out[key] = rng.choice(junk)
            else:
                out[key] = mutate(out[key])
            return out
        if isinstance(obj, list) and obj:
            return [mutate(obj[0]), *obj[1:]]
        return rng.choice(junk)

    async def body(gw: Gateway, out: Outputs, url: str, pki: Any) -> None:
        s = await connect_station(url, "st-v2x", "2.1", password=PASSWORD)
        n = 150
        for k in range(n):
            await s.station.send_raw(json.dumps([2, f"f{k}", "TransactionEvent", mutate(valid)]))
        await _until(lambda: len(s.station.answers) >= n, timeout=30)
        assert sorted(a[1] for a in s.station.answers) == sorted(f"f{k}" for k in range(n))
        errors = len(s.station.errors)
        codes = {e[2] for e in s.station.errors}
        assert "InternalError" not in codes and codes <= {"FormatViolation", "ProtocolError", "TypeConstraintViolation",
                                                          "PropertyConstraintViolation", "RpcFrameworkError"}
        assert 0 < errors < n and len(out.dead_letters) == errors  # some mutations stay valid
        assert (await s.station.boot()).status == "Accepted"
        await s.close()

    run(1, body, tmp_path)


async def _until(cond: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
