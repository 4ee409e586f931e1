"""N simulated OCPP stations on one ``evgrid ocpp-gateway`` process (security profile 2: basic auth over TLS),
against the shared broker under a throw-away topic prefix. Printed (wall-clock, measured at the stations):

1. connect: N stations open a TLS websocket and boot (password hashes are written with a cheap scrypt cost,
   n = 2**10, so the connection storm measures the gateway rather than the KDF; the production default is 2**14,
   ~0.1 s of CPU per station, paid once per station and gateway process: verified passwords are remembered);
2. TransactionEvent Started → SetChargingProfile received, p50/p99/max, for a setpoint the gateway already holds
   (published to the setpoint topic before the run, session id = the transaction id); the N stations plug in
   evenly over ``--spread`` seconds (10 s: 100 plug-ins/s for 1,000 stations);
3. setpoint produced to Kafka → SetChargingProfile received, for a new setpoint of every station published at
   once (the Kafka edge, the delivery tasks and the websockets under a burst), and the gateway CPU it took;
4. messages per second per gateway core: every station sends ``--updates`` TransactionEvent Updated with meter
   values (each one telemetry record on Kafka); gateway CPU seconds from /proc (user + system).

The stations run in ``--client-procs`` processes (2, at ``--client-nice`` 10: they stand in for other machines, so
the gateway should not wait behind them for a core) on the same machine, kept in step by barriers, so latencies
at the stations include their event-loop delays (and the ``ocpp`` library's schema validation of every profile);
the gateway also reports its own side: Started handled, or setpoint taken from Kafka → SetChargingProfile written
to the socket.

    python benchmarks/bench_ocpp_gateway.py [--stations 1000] [--updates 5] [--spread 10]
                                            [--client-procs 2] [--client-nice 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from streams import infra
from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerRegistration, ChargerSetpoint, encode_record
from streams.contracts.topics import CHARGER_REGISTRY, SETPOINTS, topic_name
from streams.kafka.admin import create_topics, delete_topics
from streams.kafka.clients import make_producer, produce_records
from streams.ocpp.registry import hash_password, save_credentials
from streams.ocpp.simstation import connect_station
from streams.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.ocpp_pki import make_pki

PASSWORD = "bench-password-0123456789"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setpoint(i: int, now: int, seq: int, kw: float) -> ChargerSetpoint:
    return ChargerSetpoint(charger_id=f"bs-{i}", feeder_id=f"feeder-{i % 20}", session_id=f"tx-{i}", sequence=seq,
                           setpoint_kw=kw, valid_from=now, valid_until=now + 1_800_000, fallback_kw=0.0,
                           reason="optimal", plan_id=f"plan-{seq}", issued_at=now)


async def run_slice(args: argparse.Namespace, ids: list[int], port: int, ca: str, sync: Any, out: Any) -> None:
    """One client process: its stations through the phases, in step with the others (barriers)."""
    barrier, t_start, t_pub = sync
    n = args.stations
    url = f"wss://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=ca)
    sem = asyncio.Semaphore(50)

    async def step() -> None:
        await asyncio.to_thread(barrier.wait)

    async def open_one(i: int) -> Any:
        async with sem:
            sess = await connect_station(url, f"bs-{i}", "2.1" if i % 2 else "2.0.1", password=PASSWORD,
                                         ssl_context=ctx)
            await sess.station.boot()
            default = await sess.station.next_received(timeout=60)  # the fallback, installed at boot
            assert default.payload["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile", default
            return sess

    sessions = dict(zip(ids, await asyncio.gather(*(open_one(i) for i in ids)), strict=True))
    await step()  # B1: everyone connected; the barrier action set t_start

    async def started(i: int) -> float:  # plug-ins spread evenly over --spread seconds, all processes together
        st = sessions[i].station
        await asyncio.sleep(max(0.0, t_start.value + i * args.spread / n - time.time()))
        if not st.received.empty():
            raise SystemExit(f"station {i} got a profile before its transaction started")
        sent = time.perf_counter()
        await st.transaction("Started", f"tx-{i}", power_w=0.0, energy_wh=0.0, soc=30)
        got = await st.next_received(timeout=60)
        assert got.payload["chargingProfile"]["transactionId"] == f"tx-{i}", got
        return float(got.at - sent)

    lat_started = await asyncio.gather(*(started(i) for i in ids))
    await step()  # B2: the coordinator publishes the burst
    got = await asyncio.gather(*(sessions[i].station.next_received(timeout=60) for i in ids))
    wall_minus_perf = time.time() - time.perf_counter()
    await step()  # B3
    lat_burst = [g.at + wall_minus_perf - t_pub.value for g in got]
    await step()  # B4: updates

    async def updates(i: int) -> None:
        for k in range(args.updates):
            await sessions[i].station.transaction("Updated", f"tx-{i}", power_w=3700.0, energy_wh=100.0 * (k + 1),
                                                  soc=31)

    await asyncio.gather(*(updates(i) for i in ids))
    await step()  # B5
    for sess in sessions.values():
        await sess.close()
    out.put((lat_started, lat_burst))


def client_process(args: argparse.Namespace, ids: list[int], port: int, ca: str, sync: Any, out: Any) -> None:
    os.nice(args.client_nice)  # the stations stand in for other machines: the gateway should not queue behind them
    asyncio.run(run_slice(args, ids, port, ca, sync, out))


def run(args: argparse.Namespace, s: Settings, port: int, ca: str, producer: Any) -> dict[str, object]:
    n, k = args.stations, args.client_procs
    ctx = mp.get_context("fork")
    t_start, t_pub = ctx.Value("d", 0.0), ctx.Value("d", 0.0)

    def set_start() -> None:
        t_start.value = time.time() + 0.5

    barrier = ctx.Barrier(k + 1, action=set_start)
    out = ctx.Queue()
    procs = [ctx.Process(target=client_process, args=(args, list(range(j, n, k)), port, ca, (barrier, t_start, t_pub),
                                                      out)) for j in range(k)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    barrier.wait(300)  # B1
    connect_s = time.perf_counter() - t0
    barrier.wait(300)  # B2: every station plugged in and got its profile
    codec = default_codec()
    now = int(time.time() * 1000)
    recs = [(f"bs-{i}".encode(), encode_record(codec, setpoint(i, now, 2, 3.7)), now, None) for i in range(n)]
    cpu_burst0 = cpu_seconds(args.gateway_pid)
    t_pub.value = time.time()
    produce_records(producer, topic_name(SETPOINTS, s.topic_prefix), recs, flush_timeout=60)
    barrier.wait(300)  # B3: every station has the new profile
    cpu_burst = cpu_seconds(args.gateway_pid) - cpu_burst0
    cpu0, w0 = cpu_seconds(args.gateway_pid), time.perf_counter()
    barrier.wait(300)  # B4
    barrier.wait(300)  # B5
    wall = time.perf_counter() - w0
    cpu = cpu_seconds(args.gateway_pid) - cpu0
    lat_started: list[float] = []
    lat_burst: list[float] = []
    for _ in procs:
        a, b = out.get(timeout=120)
        lat_started += a
        lat_burst += b
    for p in procs:
        p.join(60)
    msgs = n * args.updates

    def ms(xs: list[float]) -> dict[str, float]:
        return {"p50_ms": round(1000 * statistics.median(xs), 1), "p99_ms": round(1000 * pct(xs, 0.99), 1),
                "max_ms": round(1000 * max(xs), 1)}

    return {"stations": n, "client_processes": k, "connect_and_boot_s": round(connect_s, 2),
            "started_to_profile": ms(lat_started), "plugins_per_s": round(n / args.spread, 1),
            "setpoint_produced_to_profile": ms(lat_burst), "burst_gateway_cpu_s": round(cpu_burst, 2),
            "updates": msgs, "updates_wall_s": round(wall, 2), "gateway_cpu_s": round(cpu, 2),
            "messages_per_s": round(msgs / wall), "messages_per_gateway_cpu_s": round(msgs / cpu) if cpu else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=5)
    ap.add_argument("--spread", type=float, default=10.0, help="seconds over which the stations plug in")
    ap.add_argument("--client-procs", type=int, default=2, help="processes running the simulated stations")
    ap.add_argument("--client-nice", type=int, default=10, help="niceness of the station processes")
    args = ap.parse_args()
    s = Settings(topic_prefix=f"bench-ocpp-{uuid.uuid4().hex[:6]}.", topic_retention_ms=-1, partitions=4)
    create_topics(s)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ocpp-"))
    proc = None
    try:
        codec = default_codec()
        now = int(time.time() * 1000)
        regs = [ChargerRegistration(charger_id=f"bs-{i}", feeder_id=f"feeder-{i % 20}", site_id="s", customer_id="c",
                                    bidirectional=bool(i % 2), inverter_location="onboard",
                                    interconnection_class="parallel_exporting", v2g_enrolled=bool(i % 2),
                                    max_charge_kw=11.0, max_discharge_kw=7.0 if i % 2 else 0.0, registered_at=now)
                for i in range(args.stations)]
        producer = make_producer(s)
        produce_records(producer, topic_name(CHARGER_REGISTRY, s.topic_prefix),
                        [(r.feeder_id.encode(), encode_record(codec, r), now, None) for r in regs])
        produce_records(producer, topic_name(SETPOINTS, s.topic_prefix),
                        [(f"bs-{i}".encode(), encode_record(codec, setpoint(i, now, 1, -2.0)), now, None)
                         for i in range(args.stations)])
        salt_hash = hash_password(PASSWORD, n=2 ** 10)  # one hash: the bench pays no KDF per station
        save_credentials(tmp / "creds.json", {f"bs-{i}": salt_hash for i in range(args.stations)})
        pki = make_pki(tmp / "pki")
        port = infra.free_ports(1)[0]
        env = {**os.environ, "EVGRID_TOPIC_PREFIX": s.topic_prefix, "EVGRID_OCPP_CREDENTIALS": str(tmp / "creds.json")}
        log = open(tmp / "gateway.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-c", "from streams.cli import app; app()", "ocpp-gateway",
                                 "--host", "127.0.0.1", "--port", str(port), "--certfile", str(pki.server_cert),
                                 "--keyfile", str(pki.server_key), "--no-metrics", "--name", "bench"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "listening" not in (tmp / "gateway.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gateway did not start: {(tmp / 'gateway.log').read_text()[-2000:]}")
            time.sleep(0.2)
        args.gateway_pid = proc.pid
        result = run(args, s, port, str(pki.ca_cert), producer)
        proc.terminate()
        proc.wait(30)
        for line in (tmp / "gateway.log").read_text().splitlines():
            if line.startswith('{"stats"'):
                stats = json.loads(line)["stats"]
                result["gateway_side_started_to_profile_sent_ms"] = stats["started_to_profile_sent_ms"]
                result["gateway_side_setpoint_to_profile_sent_ms"] = stats["setpoint_to_profile_sent_ms"]
        print(json.dumps(result, indent=1))
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        delete_topics(s)


if __name__ == "__main__":
    main()
