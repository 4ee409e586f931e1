"""The fallback as the station's TxDefaultProfile, revocation as ClearChargingProfile (issue 16), over real websockets
with stations simulated by the same ``ocpp`` library; what the station runs on is read back from what it holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.ocpp.gateway import Gateway, GatewayConfig
from streams.ocpp.profiles import DEFAULT_PROFILE_ID, profile_id
from streams.ocpp.registry import Directory, hash_password
from streams.ocpp.simstation import connect_station
from tests.unit.ocpp_gateway.test_gateway_ws import NOW, PASSWORD, Outputs, _until, reg, setpoint

FALLBACK_KW = 1.4  # the fallback_kw of ``setpoint``


def _run(body: Any, default_kw: float | None = FALLBACK_KW) -> None:
    directory = Directory()
    directory.register(reg("st-1"))
    directory.credentials["st-1"] = hash_password(PASSWORD, n=2 ** 10)
    out = Outputs()
    gw = Gateway(directory, out, GatewayConfig(port=0, security_profile=1, response_timeout_seconds=5,
                                               connect_grace_seconds=0.3, default_profile_kw=default_kw))

    async def main() -> None:
        await gw.start()
        try:
            await asyncio.wait_for(body(gw, out, f"ws://127.0.0.1:{gw.port}/ocpp"), 60)
        finally:
            await gw.stop()

    asyncio.run(main())


async def _default_installed(st: Any) -> None:
    got = await st.next_received()
    assert got.action == "SetChargingProfile" and got.payload["evseId"] == 0
    prof = got.payload["chargingProfile"]
    assert (prof["id"], prof["chargingProfilePurpose"], prof["chargingProfileKind"]) == (
        DEFAULT_PROFILE_ID, "TxDefaultProfile", "Relative")
    assert prof["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 1400.0}]


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_default_at_boot_revocation_clears_the_tx_profile_and_the_station_runs_its_fallback(version: str) -> None:
    async def body(gw: Gateway, out: Outputs, url: str) -> None:
        s = await connect_station(url, "st-1", version, password=PASSWORD)
        assert (await s.station.boot()).status == "Accepted"
        await _default_installed(s.station)
        # before any setpoint the station runs on the fallback, not unlimited
        assert s.station.profiles.command_kw(NOW) == pytest.approx(FALLBACK_KW)
        await s.station.transaction("Started", "tx-1", power_w=0.0, energy_wh=1000.0)
        gw.apply_setpoint("st-1", setpoint("st-1", 7.0))
        got = await s.station.next_received()
        assert got.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        assert s.station.profiles.command_kw(NOW) == pytest.approx(7.0)
        # a revocation: nothing but the fallback (setpoint and fallback = the installed default)
        gw.apply_setpoint("st-1", setpoint("st-1", FALLBACK_KW, seq=2))
        got = await s.station.next_received()
        assert got.action == "ClearChargingProfile" and got.payload == {"chargingProfileId": profile_id(1)}
        assert s.station.profiles.tx is None
        assert s.station.profiles.command_kw(NOW) == pytest.approx(FALLBACK_KW)  # back on the installed default
        await _until(lambda: any(t.setpoint_sequence == 2 for t in out.telemetry_records))
        assert [t.setpoint_answer for t in out.telemetry_records if t.setpoint_sequence == 2] == ["accepted"]
        assert [(o.action, o.status) for o in out.outcomes] == [
            ("SetChargingProfile", "Accepted"), ("SetChargingProfile", "Accepted"),
            ("ClearChargingProfile", "Accepted")]
        await s.close()
        # reconnection: the default is installed again first, then the revocation is resent
        s = await connect_station(url, "st-1", version, password=PASSWORD)
        await _default_installed(s.station)
        got = await s.station.next_received()
        assert got.action == "ClearChargingProfile"
        assert s.station.profiles.command_kw(NOW) == pytest.approx(FALLBACK_KW)
        await s.close()

    _run(body)


def test_a_rejecting_station_holds_nothing_new_and_its_answer_is_rejected() -> None:
    async def body(gw: Gateway, out: Outputs, url: str) -> None:
        s = await connect_station(url, "st-1", "2.0.1", password=PASSWORD)
        await s.station.boot()
        await _default_installed(s.station)
        s.station.answer = "Rejected"
        await s.station.transaction("Started", "tx-1", power_w=0.0, energy_wh=1000.0)
        gw.apply_setpoint("st-1", setpoint("st-1", 7.0))
        await s.station.next_received()
        await _until(lambda: any(t.setpoint_sequence == 1 for t in out.telemetry_records))
        assert [t.setpoint_answer for t in out.telemetry_records if t.setpoint_sequence == 1] == ["rejected"]
        assert s.station.profiles.tx is None and s.station.profiles.command_kw(NOW) == pytest.approx(FALLBACK_KW)
        await s.close()

    _run(body)


def test_without_a_default_profile_a_revocation_stays_a_set_charging_profile() -> None:
    async def body(gw: Gateway, out: Outputs, url: str) -> None:
        s = await connect_station(url, "st-1", "2.0.1", password=PASSWORD)
        await s.station.boot()
        await s.station.transaction("Started", "tx-1", power_w=0.0, energy_wh=1000.0)
        gw.apply_setpoint("st-1", setpoint("st-1", FALLBACK_KW))
        got = await s.station.next_received()
        assert got.action == "SetChargingProfile"
        assert got.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        await s.close()

    _run(body, default_kw=None)
