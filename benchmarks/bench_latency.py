"""Latency under load: a running `evgrid worker` driven at real speed (event time advances with wall time).

N chargers send telemetry every ``--telemetry-s`` (each at its own phase), M meters send a reading stamped at
every interval end; ``--plugins-per-min`` idle chargers plug in during the run. The whole stream is encoded up
front, then pumped: each record is produced when the wall clock reaches its event time. Event time is wall time
plus a constant offset (< one interval) chosen so that an interval boundary B falls ``--warmup`` seconds into the
run: the run then sees the meter burst at B and the plan at B without waiting up to 15 minutes for one. A first
meter round stamped at the previous boundary B0 is sent at the start. Printed (wall-clock latencies):

- plug-in → setpoint: plug-in telemetry appended (producer acknowledgement) → the first setpoint for that
  charger and session (its record timestamp = when the worker sent it; and when our consumer received it).
  Plug-ins in the warm-up (the initially connected chargers all look like plug-ins) are not counted.
- interval end → plan, per feeder: wall time of B → the first setpoint of the feeder issued at B. A plan is only
  visible through its setpoints, so the worker runs with ``EVGRID_DISPATCH_REPLAN_MINUTES=1`` and
  ``EVGRID_SETPOINT_REFRESH_SECONDS=60`` (flags): at B every feeder re-plans in full and re-sends a setpoint to
  every connected charger (the worst case of a boundary; production defaults are 15 min / 900 s).
- interval end → forecast, per feeder: the forecast issued at B0 is emitted when the round stamped B passes the
  watermark beyond B0 + grace, so it is reported from the interval end B0 (includes the wait for the next
  meter round, one interval) and from the moment the round B was produced (the processing part).

    python benchmarks/bench_latency.py [--chargers 1000] [--meters 10000] [--feeders 20] [--after 150]
    python benchmarks/bench_latency.py --chargers 10000 --meters 100000 --feeders 100   # the issue's full load
    python benchmarks/bench_latency.py --chargers 10000 --meters 100000 --feeders 100 --partitions 8 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_scaleout import wait_group
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.contracts.codec import default_codec
from streams.contracts.models import encode_record
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, FORECASTS, METER_READINGS, SETPOINTS
from streams.kafka.admin import create_topics, delete_topics
from streams.kafka.clients import client_config, make_producer
from streams.settings import Settings
from streams.simulate import SimConfig, build_fleet

__all__ = ["Load", "build_load", "percentile"]

RUN_DIR = Path(".run/bench/latency").resolve()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def fmt(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {percentile(values, 50):7.3f} s  p99 {percentile(values, 99):7.3f} s  max {max(values):7.3f} s  "
            f"(n={len(values)})")


@dataclass
class Load:
    """The encoded stream: ``(event ms, topic, key, value, plug-in (charger, session) or None)`` by event time."""

    records: list[tuple[int, str, bytes, bytes, tuple[str, str] | None]]
    registrations: list[tuple[bytes, bytes]]
    boundary_ms: int
    previous_boundary_ms: int
    feeders: tuple[str, ...]
    counts: Counter[str] = field(default_factory=Counter)


def build_load(args: argparse.Namespace, e0: int, e_end: int, boundary: int, interval_ms: int) -> Load:
    """Registrations, telemetry of every charger every ``telemetry_s``, meter rounds at B0 and B, plug-ins."""
    codec = default_codec()
    rng = random.Random(args.seed)
    per_feeder = max(1, args.chargers // args.feeders)
    fleet = build_fleet(SimConfig(feeders=args.feeders, homes=per_feeder, chargers=per_feeder, start_ms=e0,
                                  seed=args.seed))
    regs = [(c.feeder_id.encode(), encode_record(codec, c.registration)) for c in fleet.chargers]
    out: list[tuple[int, str, bytes, bytes, tuple[str, str] | None]] = []
    counts: Counter[str] = Counter()
    b0 = boundary - interval_ms
    meters_per_feeder = max(1, args.meters // args.feeders)
    for stamp in (b0, boundary):
        when = e0 if stamp == b0 else stamp
        for f in fleet.feeders:
            key = f.encode()
            for i in range(meters_per_feeder):
                v = codec.encode("MeterReading", {"meter_id": f"{f}-M{i:05d}", "feeder_id": f, "timestamp": stamp,
                                                  "active_power_kw": round(rng.uniform(0.2, 2.5), 3)})
                out.append((when, METER_READINGS, key, v, None))
                counts[METER_READINGS] += 1
    period = args.telemetry_s * 1000
    chargers = list(fleet.chargers)
    connected0 = set(rng.sample(range(len(chargers)), round(args.connected_share * len(chargers))))
    idle = [i for i in range(len(chargers)) if i not in connected0]
    n_plug = min(len(idle), round(args.plugins_per_min * (e_end - e0 - args.warmup * 1000) / 60_000))
    plug_at = {i: rng.uniform(e0 + args.warmup * 1000, e_end - 10_000) for i in rng.sample(idle, n_plug)}
    for i, c in enumerate(chargers):
        reg = c.registration
        key = reg.feeder_id.encode()
        session = f"S-{reg.charger_id}-{e0}"
        soc = rng.uniform(15, 60)
        ts = e0 + rng.randrange(period)
        announced = False
        while ts < e_end:
            live = i in connected0 or (i in plug_at and ts >= plug_at[i])
            rec: dict[str, Any] = {"charger_id": reg.charger_id, "feeder_id": reg.feeder_id, "timestamp": ts,
                                   "connected": live, "power_kw": 0.0, "max_charge_kw": reg.max_charge_kw,
                                   "max_discharge_kw": reg.max_discharge_kw}
            if live:
                rec |= {"session_id": session, "soc_pct": round(soc, 2), "battery_capacity_kwh": c.capacity_kwh,
                        "departure_time": e0 + 8 * 3_600_000, "requested_energy_kwh": 20.0,
                        "energy_delivered_kwh": 0.0, "reserve_soc_pct": c.reserve_soc_pct}
            tag = (reg.charger_id, session) if live and not announced and i in plug_at else None
            announced = announced or live
            out.append((ts, CHARGER_TELEMETRY, key, codec.encode("ChargerTelemetry", rec), tag))
            counts[CHARGER_TELEMETRY] += 1
            ts += period
    out.sort(key=lambda r: r[0])
    return Load(out, regs, boundary, b0, fleet.feeders, counts)


class OutputWatcher(threading.Thread):
    """Consumes setpoints and forecasts: first setpoint per (charger, session) and per (feeder, issued_at)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.codec = default_codec()
        self.consumer = Consumer(client_config(settings) | {
            "group.id": f"bench-latency-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        self.topics = [settings.topic_prefix + SETPOINTS, settings.topic_prefix + FORECASTS]
        self.assigned = threading.Event()
        self.stop = threading.Event()
        self.setpoint_by_session: dict[tuple[str, str], tuple[int, int]] = {}  # -> (sent ms, consumed ms)
        self.plan_by_feeder: dict[tuple[str, int], tuple[int, int]] = {}
        self.forecast_by_feeder: dict[tuple[str, int], tuple[int, int]] = {}
        self.counts: Counter[str] = Counter()

    def run(self) -> None:
        def on_assign(c: Consumer, parts: list[TopicPartition]) -> None:
            self.assigned.set()

        self.consumer.subscribe(self.topics, on_assign=on_assign)
        while not self.stop.is_set():
            for msg in self.consumer.consume(5000, 0.05):
                self._on(msg)
        self.consumer.close()

    def _on(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(str(err))
            return
        now = int(time.time() * 1000)
        sent = msg.timestamp()[1]
        name, d = self.codec.decode(msg.value() or b"")
        self.counts[name] += 1
        if name == "ChargerSetpoint":
            if d["session_id"]:
                self.setpoint_by_session.setdefault((d["charger_id"], d["session_id"]), (sent, now))
            self.plan_by_feeder.setdefault((d["feeder_id"], d["issued_at"]), (sent, now))
        elif name == "DemandForecast":
            self.forecast_by_feeder.setdefault((d["feeder_id"], d["issued_at"]), (sent, now))


def merged_stats(paths: list[Path]) -> dict[str, Any]:
    """The workers' stats files summed (counters per key; missing files count as empty)."""
    out: dict[str, Any] = {"accepted": Counter(), "rejected": Counter(), "held_telemetry": 0, "skipped_stale_plans": 0,
                           "checkpoint_ms_max": 0.0}
    for path in paths:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            st = json.loads(path.read_text())
            out["accepted"].update(st.get("accepted", {}))
            out["rejected"].update(st.get("rejected", {}))
            out["held_telemetry"] += st.get("held_telemetry", 0)
            out["skipped_stale_plans"] += st.get("skipped_stale_plans", 0)
            out["checkpoint_ms_max"] = max(out["checkpoint_ms_max"], st.get("checkpoint_ms_max", 0.0))
            out["gc_pause_ms_max"] = [max(a, b) for a, b in zip(out.get("gc_pause_ms_max", [0.0] * 3),
                                                                st.get("gc_pause_ms_max", [0.0] * 3), strict=True)]
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chargers", type=int, default=1000, help="N chargers in total (the issue: 10,000)")
    ap.add_argument("--meters", type=int, default=10_000, help="M meters in total (the issue: 100,000)")
    ap.add_argument("--feeders", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="worker processes sharing the partitions")
    ap.add_argument("--telemetry-s", type=int, default=10)
    ap.add_argument("--interval-minutes", type=int, default=15, help="meter period = planning interval")
    ap.add_argument("--connected-share", type=float, default=0.3, help="chargers connected from the start")
    ap.add_argument("--plugins-per-min", type=float, default=40.0,
                    help="plug-ins after the warm-up (40: n = 100, so the p99 is not simply the slowest one)")
    ap.add_argument("--replan-minutes", type=int, default=1, help="worker EVGRID_DISPATCH_REPLAN_MINUTES")
    ap.add_argument("--refresh-s", type=int, default=60, help="worker EVGRID_SETPOINT_REFRESH_SECONDS")
    ap.add_argument("--warmup", type=int, default=90, help="seconds before the interval boundary")
    ap.add_argument("--after", type=int, default=150, help="seconds of load after the boundary")
    ap.add_argument("--drain", type=int, default=120, help="seconds to wait for outputs after the load")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    interval_ms = args.interval_minutes * 60_000

    prefix = f"bench-lat-{uuid.uuid4().hex[:6]}."
    s = Settings(topic_prefix=prefix, topic_retention_ms=-1, partitions=args.partitions)
    create_topics(s)
    data_dir = RUN_DIR / prefix
    env = {**os.environ, "EVGRID_TOPIC_PREFIX": prefix, "EVGRID_DATA_DIR": str(data_dir),
           "EVGRID_PARTITIONS": str(args.partitions), "EVGRID_TOPIC_RETENTION_MS": "-1",
           "EVGRID_MONITOR_ENABLED": "false", "EVGRID_INTERVAL_MINUTES": str(args.interval_minutes),
           "EVGRID_DISPATCH_REPLAN_MINUTES": str(args.replan_minutes),
           "EVGRID_SETPOINT_REFRESH_SECONDS": str(args.refresh_s)}
    procs = [subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(args.workers)]
    stats_paths = [data_dir / f"{prefix}{s.app_id}" / f"stats-{p.pid}.json" for p in procs]
    watcher = OutputWatcher(s)
    try:
        watcher.start()
        # The stream is encoded while the worker starts; its first record is due once both are ready.
        n_est = args.chargers * (args.warmup + args.after) // args.telemetry_s + 2 * args.meters
        wall0 = int(time.time() * 1000) + 30_000 + n_est // 25
        boundary = ((wall0 + args.warmup * 1000) // interval_ms + 1) * interval_ms
        offset = boundary - (wall0 + args.warmup * 1000)  # event time = wall time + offset
        e0, e_end = wall0 + offset, boundary + args.after * 1000
        t = time.perf_counter()
        load = build_load(args, e0, e_end, boundary, interval_ms)
        n_plugins = sum(1 for r in load.records if r[4] is not None)
        print(f"load: {args.chargers:,} chargers (telemetry every {args.telemetry_s} s), {args.meters:,} meters "
              f"(every {args.interval_minutes} min), {args.feeders} feeders, {args.partitions} partitions; "
              f"{args.warmup + args.after} s at real speed, {n_plugins} plug-ins after warm-up; "
              f"{len(load.records):,} records encoded in {time.perf_counter() - t:.0f} s; event time = wall + "
              f"{offset / 1000:.0f} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        wait_group(s, f"{prefix}{s.app_id}", members=args.workers)
        watcher.assigned.wait(60)
        if time.time() * 1000 > wall0:
            print(f"warning: setup overran the start by {time.time() - wall0 / 1000:.1f} s", flush=True)
        producer = make_producer(s, linger_ms=5)
        for key, value in load.registrations:
            producer.produce(prefix + CHARGER_REGISTRY, value, key, timestamp=e0)
        producer.flush(30)

        acked: dict[tuple[str, str], int] = {}
        round_start: int | None = None

        def on_plugin(tag: tuple[str, str]) -> Any:
            def cb(err: Any, _msg: Any) -> None:
                if err is None:
                    acked[tag] = int(time.time() * 1000)
            return cb

        start_wall = time.time() * 1000
        late_max = 0.0
        produced = 0
        for ts, topic, key, value, tag in load.records:
            due = ts - offset
            now = time.time() * 1000
            if due > now:
                producer.poll((due - now) / 1000)
                while (now := time.time() * 1000) < due:
                    producer.poll((due - now) / 1000)
            late_max = max(late_max, now - due)
            if round_start is None and topic == METER_READINGS and ts >= boundary:
                round_start = int(now)
            kwargs: dict[str, Any] = {"timestamp": ts}
            if tag is not None:
                kwargs["on_delivery"] = on_plugin(tag)
            while True:
                try:
                    producer.produce(prefix + topic, value, key, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.05)
            produced += 1
            if produced % 200 == 0:
                producer.poll(0)
        producer.flush(60)
        pump_s = (time.time() * 1000 - start_wall) / 1000
        print(f"pump: {produced:,} records in {pump_s:.0f} s; the producer fell at most {late_max / 1000:.2f} s behind "
              f"event time", flush=True)

        expected = produced + len(load.registrations)
        drain_start = time.monotonic()
        st: dict[str, Any] = {}
        while time.monotonic() - drain_start < args.drain:
            st = merged_stats(stats_paths)
            done = sum(st.get("accepted", {}).values()) + sum(st.get("rejected", {}).values())
            plans_seen = sum(1 for f in load.feeders if (f, boundary) in watcher.plan_by_feeder)
            if done >= expected and plans_seen == len(load.feeders) and all(tag in watcher.setpoint_by_session
                                                                            for tag in acked):
                break
            time.sleep(0.5)
        st = merged_stats(stats_paths)
        done = sum(st.get("accepted", {}).values()) + sum(st.get("rejected", {}).values())
        print(f"{args.workers} worker(s): {done:,} of {expected:,} input records processed "
              f"{time.monotonic() - drain_start:.0f} s after the pump ended; accepted {st.get('accepted')}; "
              f"rejected {st.get('rejected')}; held telemetry {st.get('held_telemetry')}; "
              f"stale plans skipped {st.get('skipped_stale_plans')}; "
              f"longest checkpoint {st.get('checkpoint_ms_max')} ms; "
              f"longest GC pause per generation {st.get('gc_pause_ms_max')} ms; "
              f"workers alive: {[p.poll() is None for p in procs]}")
        report(load, watcher, acked, offset, round_start)
        print(f"outputs seen: {dict(watcher.counts)}; load average {os.getloadavg()[0]:.1f}")
    finally:
        watcher.stop.set()
        for p in procs:
            p.kill()
            p.wait()
        watcher.join(10)
        delete_topics(s)
        shutil.rmtree(data_dir, ignore_errors=True)


def report(load: Load, w: OutputWatcher, acked: dict[tuple[str, str], int], offset: int,
           round_start: int | None) -> None:
    plug_sent = [(w.setpoint_by_session[t][0] - a) / 1000 for t, a in acked.items() if t in w.setpoint_by_session]
    plug_seen = [(w.setpoint_by_session[t][1] - a) / 1000 for t, a in acked.items() if t in w.setpoint_by_session]
    missing = sum(1 for t in acked if t not in w.setpoint_by_session)
    print(f"plug-in appended -> first setpoint sent by the worker:   {fmt(plug_sent)}; no setpoint: {missing}")
    print(f"plug-in appended -> first setpoint consumed downstream:  {fmt(plug_seen)}")
    b_wall = load.boundary_ms - offset
    slow = sorted(((w.setpoint_by_session[t][0] - a) / 1000, (a - b_wall) / 1000) for t, a in acked.items()
                  if t in w.setpoint_by_session)[-3:]
    print("slowest plug-ins (latency at time appended, from the interval end): "
          + ", ".join(f"{lat:.2f} s at {at:+.1f} s" for lat, at in reversed(slow)))
    plan = [(w.plan_by_feeder[(f, load.boundary_ms)][0] - b_wall) / 1000 for f in load.feeders
            if (f, load.boundary_ms) in w.plan_by_feeder]
    print(f"interval end -> plan (first setpoint issued at it), per feeder: {fmt(plan)}; "
          f"within 5 s: {sum(1 for x in plan if x <= 5)}/{len(load.feeders)} feeders")
    fc_keys = [(f, load.previous_boundary_ms) for f in load.feeders]
    fc_end = [(w.forecast_by_feeder[k][0] - (k[1] - offset)) / 1000 for k in fc_keys if k in w.forecast_by_feeder]
    print(f"interval end -> forecast emitted, per feeder:                  {fmt(fc_end)} "
          f"(waits for the next meter round)")
    if round_start is not None:
        fc_round = [(w.forecast_by_feeder[k][0] - round_start) / 1000 for k in fc_keys if k in w.forecast_by_feeder]
        print(f"closing meter round produced -> forecast emitted, per feeder:  {fmt(fc_round)}")


if __name__ == "__main__":
    main()
