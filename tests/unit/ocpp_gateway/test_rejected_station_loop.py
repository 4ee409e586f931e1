"""A station that answers Rejected, end to end over real websockets: simulated stations → the gateway → its
telemetry (the answer included) → the feeder's dispatcher → setpoints → the gateway → the stations' profiles.
The refusing station is planned as uncontrolled load at its rating, and the profiles the other stations hold keep
the feeder within its limit (issue 16). In process: no broker, the gateway's outputs feed the dispatcher."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from streams.dispatch.dispatcher import FeederDispatcher
from streams.ocpp.gateway import Gateway, GatewayConfig
from streams.ocpp.registry import Directory, hash_password
from streams.ocpp.simstation import connect_station
from tests.unit.dispatch.fleet import cfg
from tests.unit.ocpp_gateway.test_gateway_ws import PASSWORD, Outputs, _until, reg

LIMIT_KW = 25.0  # three 11 kW stations would take 33 kW
STATIONS = ("st-a", "st-b", "st-c")  # st-c refuses every profile


def _iso(t_ms: int) -> str:
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def test_a_station_that_rejects_is_uncontrolled_load_and_the_others_keep_the_feeder_limit() -> None:
    directory = Directory()
    regs = {s: reg(s) for s in STATIONS}
    for r in regs.values():
        directory.register(r)
        directory.credentials[r.charger_id] = hash_password(PASSWORD, n=2 ** 10)
    out = Outputs()
    gw = Gateway(directory, out, GatewayConfig(port=0, security_profile=1, response_timeout_seconds=5,
                                               connect_grace_seconds=0.3, default_profile_kw=0.0))
    d = FeederDispatcher("feeder-7", cfg(default_import_limit_kw=LIMIT_KW))
    for r in regs.values():
        d.on_registration(r)
    fed = 0

    def pump() -> None:  # the gateway's telemetry into the dispatcher, as the worker takes it from Kafka
        nonlocal fed
        for rec in out.telemetry_records[fed:]:
            d.on_telemetry(rec)
        fed = len(out.telemetry_records)

    async def tx_profile(st: Any) -> dict[str, Any]:
        while True:
            got = await st.next_received()
            if got.payload.get("chargingProfile", {}).get("chargingProfilePurpose") == "TxProfile":
                return got.payload

    async def main() -> None:
        await gw.start()
        try:
            url = f"ws://127.0.0.1:{gw.port}/ocpp"
            conns = {s: await connect_station(url, s, "2.0.1", password=PASSWORD) for s in STATIONS}
            conns["st-c"].station.answer = "Rejected"  # refuses the default and every setpoint: runs unlimited
            now = int(time.time() * 1000)
            for s, c in conns.items():
                await c.station.boot()
                await c.station.transaction("Started", f"tx-{s}", power_w=0.0, energy_wh=1000.0)
                await c.station.call(c.station.calls.NotifyEVChargingNeeds(evse_id=1, charging_needs={
                    "requested_energy_transfer": "AC_three_phase", "departure_time": _iso(now + 3_600_000),
                    "ac_charging_parameters": {"energy_amount": 40_000, "ev_max_current": 16,
                                               "ev_max_voltage": 400, "ev_min_current": 6}}))
            pump()
            first = d.on_interval(int(time.time() * 1000))
            assert sum(sp.setpoint_kw for sp in first.setpoints) == pytest.approx(LIMIT_KW, abs=0.1)
            for sp in first.setpoints:
                gw.apply_setpoint(sp.charger_id, sp)
            for s in STATIONS:
                await tx_profile(conns[s].station)
            await _until(lambda: any(t.charger_id == "st-c" and t.setpoint_answer == "rejected"
                                     for t in out.telemetry_records))
            assert conns["st-c"].station.profiles.effective() is None  # it holds nothing: its own default
            pump()
            assert d.n_refused_setpoints == 1
            t = int(time.time() * 1000)
            second = {sp.charger_id: sp for sp in d.on_interval(t).setpoints}
            assert "uncontrolled: the station answered rejected" in second["st-c"].message
            for sp in second.values():
                gw.apply_setpoint(sp.charger_id, sp)
            held = {s: await tx_profile(conns[s].station) for s in ("st-a", "st-b")}
            assert all(held[s] is conns[s].station.profiles.tx for s in held)
            others = sum(conns[s].station.profiles.command_kw(t) or 0.0 for s in ("st-a", "st-b"))
            assert others > 0
            # st-c draws at most its 11 kW rating; what the others hold leaves exactly that room
            assert others + regs["st-c"].max_charge_kw == pytest.approx(LIMIT_KW, abs=0.1)
            for c in conns.values():
                await c.close()
        finally:
            await gw.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
