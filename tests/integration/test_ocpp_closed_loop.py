"""Closed loop through OCPP: charger twins drive simulated stations over real websockets, the gateway turns their
events into telemetry on the real broker, a real worker plans, its setpoints go back through the gateway as
SetChargingProfile, and each twin runs the profile its station received (read back as the station would).

Simulated time moves in lockstep: a step's telemetry and meter reading go out, then the stations wait for the
profiles that step's plan sends. The gateway runs on event time (``EVGRID_OCPP_EVENT_TIME``): its clock is the
stations' timestamps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams import infra
from streams.cli import app
from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, ChargerTelemetry, MeterReading, decode_record, encode_record
from streams.contracts.topics import METER_READINGS, SETPOINTS, topic_name
from streams.kafka.clients import make_consumer, make_producer, produce_records
from streams.ocpp.profiles import StationTarget, clears, setpoint_request
from streams.ocpp.readback import StationProfiles, profile_as_setpoint, profile_payload, station_periods
from streams.ocpp.simstation import connect_station
from streams.simulate.twin import ChargerTwin, TwinConfig, TwinSession
from tests.integration.test_ocpp_gateway import _wait_listening

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

T0 = 1_767_592_800_000  # 2026-01-05T06:00:00Z
MIN = 60_000
STEP = MIN
BASE_KW = 20.0
LIMIT_KW = 35.0
PASSWORD = "password-of-the-loop-0123"
STATIONS = {"cl-1": "2.1", "cl-2": "2.1", "cl-3": "2.0.1"}
ARRIVE, DEPART, END = T0 + 60 * MIN, T0 + 240 * MIN, T0 + 255 * MIN
REQUEST_KWH = 11.0
CSV = "station,feeder,site,class,export_limit_kw,rating_kw,password\n" + "".join(
    f"{s},fz,site-{s},non_parallel,0,11,{PASSWORD}\n" for s in STATIONS)


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Tail:
    """The setpoints, read as they come: the newest of each charger."""

    def __init__(self, settings: Any) -> None:
        self.codec = default_codec()
        self.consumer = make_consumer(settings, f"loop-{uuid.uuid4().hex[:8]}", enable_auto_commit=False)
        self.consumer.subscribe([topic_name(SETPOINTS, settings.topic_prefix)])
        self.latest: dict[str, ChargerSetpoint] = {}

    def _poll(self) -> bool:
        msg = self.consumer.poll(0)
        if msg is None or msg.error() is not None or msg.value() is None:
            return False
        rec = decode_record(self.codec, msg.value())
        if isinstance(rec, ChargerSetpoint):
            old = self.latest.get(rec.charger_id)
            if old is None or rec.sequence > old.sequence:
                self.latest[rec.charger_id] = rec
        return True

    async def drain_setpoints(self, idle: float = 1.0) -> None:
        """Read until nothing came for ``idle`` s: the setpoints sent with the step are in."""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle:
            if self._poll():
                quiet_since = time.monotonic()
            else:
                await asyncio.sleep(0.05)


async def _consumed(worker: Any, sent: dict[str, int], timeout: float = 90.0) -> None:
    """Until the worker's stats show every meter reading and telemetry record sent so far taken in (accepted or
    dead-lettered) and no telemetry held back."""
    deadline = time.monotonic() + timeout
    while True:
        st = worker.stats()
        seen = {kind: sum(n for k, n in {**st.get("accepted", {}), **st.get("rejected", {})}.items() if kind in k)
                for kind in sent}
        if st and all(seen[k] >= n for k, n in sent.items()) and st.get("held_telemetry", 1) == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker behind: sent {sent}, stats {st}")
        await asyncio.sleep(0.1)


async def _report(st: Any, tel: ChargerTelemetry, tx: str, open_tx: set[str], sent: dict[str, int]) -> None:
    """A twin's telemetry as the station's OCPP messages, stamped with simulated time."""
    ts = _iso(tel.timestamp)
    energy_wh = 1000.0 + 1000.0 * (tel.energy_delivered_kwh or 0.0)
    if tel.connected and tx not in open_tx:
        open_tx.add(tx)
        await st.transaction("Started", tx, power_w=tel.power_kw * 1000.0, energy_wh=1000.0, soc=tel.soc_pct,
                             timestamp=ts)
        needs = {"requested_energy_transfer": "AC_three_phase", "departure_time": _iso(tel.departure_time or DEPART),
                 "ac_charging_parameters": {"energy_amount": int(REQUEST_KWH * 1000), "ev_max_current": 16,
                                            "ev_max_voltage": 400, "ev_min_current": 6}}
        kwargs: dict[str, Any] = {"timestamp": ts} if st.version == "2.1" else {}
        await st.call(st.calls.NotifyEVChargingNeeds(charging_needs=needs, evse_id=1, **kwargs))
        sent["telemetry"] += 2
        return
    elif tel.connected:
        await st.transaction("Updated", tx, power_w=tel.power_kw * 1000.0, energy_wh=energy_wh, soc=tel.soc_pct,
                             timestamp=ts)
        sent["telemetry"] += 1
    elif tx in open_tx:
        open_tx.discard(tx)
        await st.transaction("Ended", tx, power_w=0.0, energy_wh=energy_wh, timestamp=ts)
        sent["telemetry"] += 1


def test_twins_follow_the_worker_through_the_gateway(topic_namespace, start_worker, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    s = topic_namespace
    creds = tmp_path / "creds.json"
    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
           "EVGRID_OCPP_CREDENTIALS": str(creds), "EVGRID_OCPP_EVENT_TIME": "true",
           "EVGRID_DEFAULT_IMPORT_LIMIT_KW": str(LIMIT_KW), "EVGRID_GRACE_SECONDS": "0"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "stations.csv").write_text(CSV)
    out = CliRunner().invoke(app, ["chargers", "register", str(tmp_path / "stations.csv")])
    assert out.exit_code == 0, out.output
    worker = start_worker(env)
    port = infra.free_ports(1)[0]
    log = tmp_path / "gateway.log"
    with open(log, "wb") as fh:
        gw = subprocess.Popen(
            [sys.executable, "-c", "from streams.cli import app; app()", "ocpp-gateway", "--port", str(port),
             "--host", "127.0.0.1", "--security-profile", "1", "--no-metrics", "--name", f"gw-{uuid.uuid4().hex[:6]}"],
            env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT)
    codec = default_codec()
    producer = make_producer(s)
    meter_topic = topic_name(METER_READINGS, s.topic_prefix)
    cfg = TwinConfig(heartbeat_ms=STEP, idle_heartbeat_ms=STEP, schedule_ms=7 * 24 * 60 * MIN,
                     default_fallback_kw=11.0)
    twins = {cid: ChargerTwin(cid, "fz", [TwinSession(f"tx-{cid}", cid, ARRIVE, DEPART, DEPART, REQUEST_KWH, 11.0,
                                                       capacity_kwh=60.0, initial_soc_pct=30.0)],
                              cfg, start_ms=T0, end_ms=END, rating_kw=11.0) for cid in STATIONS}
    load: dict[int, float] = {}
    profiles: dict[str, list[dict[str, Any]]] = {cid: [] for cid in STATIONS}
    holds = {cid: StationProfiles() for cid in STATIONS}  # what each station holds: default, TxProfile

    async def loop() -> None:
        conns = {cid: await connect_station(f"ws://127.0.0.1:{port}", cid, v, password=PASSWORD)
                 for cid, v in STATIONS.items()}
        tail = _Tail(s)
        open_tx: set[str] = set()
        sent = {"telemetry": 0, "meter": 0}
        seq = 0
        t = T0
        while t <= END:
            for cid, tw in twins.items():
                for tel in tw.step(t):
                    await _report(conns[cid].station, tel, f"tx-{cid}", open_tx, sent)
            produce_records(producer, meter_topic, [(b"fz", encode_record(codec, MeterReading(
                meter_id="m-fz", feeder_id="fz", timestamp=t, active_power_kw=BASE_KW)), t, None)])
            sent["meter"] += 1
            if any(tw.car is not None for tw in twins.values()) and (t - T0) % (15 * MIN) in (0, STEP):
                # lockstep: the worker took in everything sent so far, and every setpoint it sent reached its
                # station (a plan at a boundary runs on the first telemetry after it)
                await _consumed(worker, sent)
                await tail.drain_setpoints()
                for cid, sp in tail.latest.items():
                    if twins[cid].car is None or sp.session_id != f"tx-{cid}" or sp.valid_until <= t:
                        continue
                    cleared = clears(sp, 0.0)  # a revocation to the installed default (EVGRID_FALLBACK_KW = 0)
                    want = None if cleared else station_periods(profile_payload(setpoint_request(
                        sp, StationTarget(STATIONS[cid], 1, f"tx-{cid}")).request))  # type: ignore[arg-type]
                    held = holds[cid]
                    while held.default is None or (held.tx is not None if cleared
                                                   else held.tx is None or station_periods(held.tx) != want):
                        got = await conns[cid].station.next_received(timeout=60)
                        held.apply(got.action, got.payload)
                        if held.tx is not None and held.tx is got.payload:
                            profiles[cid].append(got.payload)
                        effective = held.effective()
                        assert effective is not None  # the default is installed first: never unlimited
                        seq += 1
                        for tel in twins[cid].receive(profile_as_setpoint(effective, cid, "fz", seq), t):
                            await _report(conns[cid].station, tel, f"tx-{cid}", open_tx, sent)
            load[t] = BASE_KW + sum(tw.power for tw in twins.values())
            t += STEP
        for c in conns.values():
            await c.close()
        tail.consumer.close()

    try:
        _wait_listening(gw, log)
        asyncio.run(loop())
    finally:
        gw.terminate()
        gw.wait(30)
        worker.stop()
    for tw in twins.values():
        tw.finish()
    results = {tw.charger_id: tw.results[0] for tw in twins.values()}
    assert all(profiles.values()), {c: len(p) for c, p in profiles.items()}
    # the 2.0.1 station is never sent a negative limit
    assert all(min(kw for _, kw in station_periods(p)[1]) >= 0.0 for p in profiles["cl-3"])
    # uncontrolled, the three cars would take the feeder to 53 kW; controlled it stays at the limit once planned
    first_plan = min(station_periods(p)[0] for ps in profiles.values() for p in ps)
    over = {(t - T0) // MIN: round(kw, 2) for t, kw in load.items() if t >= first_plan and kw > LIMIT_KW + 0.5}
    assert not over, f"feeder above {LIMIT_KW} kW at minutes {over}"
    # and every driver leaves with (nearly) the energy asked for: 33 kWh in 3 h, where 45 kWh fit in the 15 kW of
    # headroom. Not 100 %: the plan for a boundary runs on the first telemetry after it (1 min later here), and
    # the planner gives a car the just-enough power for its last interval, so that minute is lost (~1.5 %).
    short = {c: round(r.delivered_kwh, 2) for c, r in results.items() if r.delivered_kwh < 0.97 * REQUEST_KWH}
    assert not short, f"sessions short of {REQUEST_KWH} kWh: {short}"
