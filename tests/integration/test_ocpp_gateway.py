"""``evgrid chargers register`` and ``evgrid ocpp-gateway`` against the shared broker (own topic prefix): stations
onboarded from a CSV, setpoints from the setpoint topic reach a simulated station, its events reach the telemetry
topic on the feeder key, a malformed frame reaches the dead-letter topic, a tombstone clears the profile."""

from __future__ import annotations

import asyncio
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
from streams.contracts.models import ChargerSetpoint, decode_record, encode_record
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, DEADLETTER, SETPOINTS, topic_name
from streams.kafka.clients import consume_all, make_producer, produce_records
from streams.ocpp.registry import load_credentials
from streams.ocpp.simstation import connect_station
from tests.fixtures.ocpp_pki import make_pki
from tests.integration.test_monitoring import query, rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CSV = """station,feeder,site,class,export_limit_kw,rating_kw,bidirectional,max_discharge_kw,v2g_enrolled,password
cs-1,feeder-a,site-1,non_parallel,0,11,false,0,false,password-of-cs-1-xyz
cs-2,feeder-b,site-2,parallel_exporting,7,22,true,10,true,password-of-cs-2-xyz
"""


def _wait_listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited {proc.returncode}: {log.read_text()[-2000:]}")
        if "listening" in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"gateway not listening: {log.read_text()[-2000:]}")


def test_register_csv_then_gateway_carries_setpoints_and_telemetry(topic_namespace, influx_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    s = topic_namespace
    creds = tmp_path / "creds.json"
    name = f"gw-{uuid.uuid4().hex[:8]}"
    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
           "EVGRID_OCPP_CREDENTIALS": str(creds), "EVGRID_INFLUX_URL": influx_url,
           "EVGRID_MONITOR_PIPELINE_SECONDS": "1", "EVGRID_INFLUX_FLUSH_SECONDS": "0.2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text(CSV)
    out = CliRunner().invoke(app, ["chargers", "register", str(csv_file)])
    assert out.exit_code == 0, out.output
    hashes = load_credentials(creds)
    assert set(hashes) == {"cs-1", "cs-2"} and all(h.startswith("scrypt$") for h in hashes.values())
    assert "password-of-cs-1" not in creds.read_text()
    codec = default_codec()
    regs = [decode_record(codec, m.value()) for m in consume_all(s, [topic_name(CHARGER_REGISTRY, s.topic_prefix)],
                                                                 expected=2)]
    assert {(r.charger_id, r.feeder_id, r.bidirectional) for r in regs} == {("cs-1", "feeder-a", False),  # type: ignore[attr-defined]
                                                                              ("cs-2", "feeder-b", True)}
    bad = CliRunner().invoke(app, ["chargers", "register", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2

    now = int(time.time() * 1000)
    sp = ChargerSetpoint(charger_id="cs-2", feeder_id="feeder-b", session_id="tx-7", sequence=4, setpoint_kw=-8.0,
                         valid_from=now, valid_until=now + 1_800_000, fallback_kw=0.0, reason="optimal",
                         plan_id="p1", issued_at=now)
    producer = make_producer(s)
    produce_records(producer, topic_name(SETPOINTS, s.topic_prefix), [(b"cs-2", encode_record(codec, sp), now, None)])

    pki = make_pki(tmp_path / "pki")
    port = infra.free_ports(1)[0]
    log = tmp_path / "gateway.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from streams.cli import app; app()", "ocpp-gateway", "--port", str(port),
             "--host", "127.0.0.1", "--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key),
             "--name", name],
            env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_listening(proc, log)

        async def station() -> None:
            url = f"wss://127.0.0.1:{port}"
            sess = await connect_station(url, "cs-2", "2.1", password="password-of-cs-2-xyz",
                                         ssl_context=pki.client_context())
            st = sess.station
            assert (await st.boot()).status == "Accepted"
            default = await st.next_received(timeout=20)  # the fallback (EVGRID_FALLBACK_KW = 0) installed at boot
            assert default.payload["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile"
            assert default.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"] == [
                {"startPeriod": 0, "limit": 0.0}]
            await st.transaction("Started", "tx-7", power_w=0.0, energy_wh=500.0, soc=61)
            got = await st.next_received(timeout=20)
            period = got.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            assert period["operationMode"] == "CentralSetpoint" and period["setpoint"] == -8000.0
            await st.send_raw("[2, broken")
            await asyncio.sleep(0.5)
            # a tombstone on the setpoint topic revokes: ClearChargingProfile
            produce_records(producer, topic_name(SETPOINTS, s.topic_prefix), [(b"cs-2", None, None, None)])
            cleared = await st.next_received(timeout=20)
            assert cleared.action == "ClearChargingProfile"
            assert st.profiles.tx is None and st.profiles.command_kw(now) == 0.0  # on the default, not unlimited
            await sess.close()

        asyncio.run(station())
    finally:
        proc.terminate()
        proc.wait(30)
    # boot, the transaction's start, and the station's answer to the setpoint (the clear answers no setpoint)
    tel = [m for m in consume_all(s, [topic_name(CHARGER_TELEMETRY, s.topic_prefix)], expected=3, timeout=20)]
    records = [decode_record(codec, m.value()) for m in tel]
    assert [m.key() for m in tel] == [b"feeder-b"] * 3
    started, answer = records[1], records[2]
    assert started.session_id == "tx-7" and started.soc_pct == 61 and started.max_discharge_kw == 10.0  # type: ignore[attr-defined]
    assert tel[1].timestamp()[1] == started.timestamp  # type: ignore[attr-defined]
    assert (answer.setpoint_sequence, answer.setpoint_answer, answer.session_id) == (4, "accepted", "tx-7")  # type: ignore[attr-defined]
    assert all(r.setpoint_answer is None for r in records[:2])  # type: ignore[attr-defined]
    dead = [decode_record(codec, m.value()) for m in consume_all(s, [topic_name(DEADLETTER, s.topic_prefix)],
                                                                 expected=1, timeout=20)]
    assert [(d.source_topic, d.reason_code) for d in dead] == [("ocpp:cs-2", "ocpp_RpcFrameworkError")]  # type: ignore[attr-defined]
    assert proc.returncode == 0, log.read_text()[-2000:]
    answers = rows(query(influx_url, f"SELECT * FROM ocpp_profile WHERE gateway = '{name}'", "evgrid"))
    assert sorted((a["action"], a["status"], a["discharge"], a["station"]) for a in answers) == [
        ("ClearChargingProfile", "Accepted", 0, "cs-2"), ("SetChargingProfile", "Accepted", 0, "cs-2"),
        ("SetChargingProfile", "Accepted", 1, "cs-2")]
    counters = rows(query(influx_url, f"SELECT last(*) FROM ocpp_gateway WHERE gateway = '{name}'", "evgrid"))
    assert counters and counters[0]["last_dead_letters"] == 1 and counters[0]["last_accepted"] == 3


def _gateway(env: dict[str, str], port: int, log: Path, name: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-c", "from streams.cli import app; app()", "ocpp-gateway", "--port", str(port),
             "--host", "127.0.0.1", "--security-profile", "1", "--no-metrics", "--name", name],
            env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT)


async def _tx_profile(station: Any) -> Any:
    """The next TxProfile the station receives (the TxDefaultProfile each connection installs is skipped)."""
    while True:
        got = await station.next_received(timeout=20)
        if got.payload.get("chargingProfile", {}).get("chargingProfilePurpose") == "TxProfile":
            return got


def test_a_station_may_move_to_another_gateway(topic_namespace, tmp_path: Path) -> None:
    """Every gateway reads every setpoint partition: a station that reconnects to another gateway gets the
    setpoint published while it was offline, from that gateway."""
    from streams.contracts.models import ChargerRegistration
    from streams.ocpp.registry import hash_password, save_credentials

    s = topic_namespace
    codec = default_codec()
    now = int(time.time() * 1000)
    stations = [f"m-{i}" for i in range(8)]  # spread over the setpoint topic's partitions
    producer = make_producer(s)
    produce_records(producer, topic_name(CHARGER_REGISTRY, s.topic_prefix), [
        (b"feeder-m", encode_record(codec, ChargerRegistration(
            charger_id=st, feeder_id="feeder-m", site_id="s", customer_id="c", bidirectional=False,
            inverter_location="onboard", interconnection_class="non_parallel", max_charge_kw=11.0,
            registered_at=now)), now, None) for st in stations])

    def setpoint(st: str, seq: int, kw: float) -> ChargerSetpoint:
        return ChargerSetpoint(charger_id=st, feeder_id="feeder-m", session_id=f"tx-{st}", sequence=seq,
                               setpoint_kw=kw, valid_from=now, valid_until=now + 1_800_000, fallback_kw=0.0,
                               reason="optimal", plan_id=f"p{seq}", issued_at=now + seq)

    sp_topic = topic_name(SETPOINTS, s.topic_prefix)
    produce_records(producer, sp_topic, [(st.encode(), encode_record(codec, setpoint(st, 1, 5.0)), now, None)
                                         for st in stations])
    creds = tmp_path / "creds.json"
    save_credentials(creds, {st: hash_password("password-0123456789", n=2 ** 10) for st in stations})
    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
           "EVGRID_OCPP_CREDENTIALS": str(creds)}
    ports = infra.free_ports(2)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_gateway(env, port, log, f"gw-{k}") for k, (port, log) in enumerate(zip(ports, logs, strict=True))]
    try:
        for p, log in zip(procs, logs, strict=True):
            _wait_listening(p, log)

        async def scenario() -> None:
            for st in stations:
                a = await connect_station(f"ws://127.0.0.1:{ports[0]}", st, password="password-0123456789")
                await a.station.boot()
                await a.station.transaction("Started", f"tx-{st}", power_w=0.0)
                first = await _tx_profile(a.station)
                assert first.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0][
                    "limit"] == 5000.0
                await a.close()
            # while the stations are offline, the dispatcher re-plans
            produce_records(producer, sp_topic, [(st.encode(), encode_record(codec, setpoint(st, 2, 2.5)), now, None)
                                                 for st in stations])
            await asyncio.sleep(1.0)
            for st in stations:
                b = await connect_station(f"ws://127.0.0.1:{ports[1]}", st, password="password-0123456789")
                await b.station.transaction("Updated", f"tx-{st}", power_w=5000.0)
                moved = await _tx_profile(b.station)
                prof = moved.payload["chargingProfile"]
                assert prof["transactionId"] == f"tx-{st}"
                assert prof["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 2500.0
                await b.close()

        asyncio.run(scenario())
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    assert [p.returncode for p in procs] == [0, 0], [log.read_text()[-1500:] for log in logs]
