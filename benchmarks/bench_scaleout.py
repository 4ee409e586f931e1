"""Scale-out: one `evgrid worker` process vs two sharing the partitions, on the same multi-feeder replay.

A simulated replay (meters, chargers, registrations, weather; many feeders) goes to a fresh prefixed namespace
with ``--partitions`` partitions per feeder-keyed topic. For each measurement the workers are started first and
the replay is produced once every worker owns partitions in the consumer group (no rebalance mid-run); the
rate is the records processed (accepted + rejected, summed over the workers' stats files) divided by the
time from the first stats tick showing any record to the first showing all of them. Each worker count is
measured ``--repeat`` times, alternating, in one run; the ratio is mean(2 workers) / mean(1 worker).

    python benchmarks/bench_scaleout.py [--feeders 24] [--homes 60] [--chargers 20] [--hours 12] [--repeat 2]

On a shared 2-core machine the ratio is bounded by the spare cores: the load average is printed with each
measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState

from streams.kafka.admin import admin_client, create_topics, delete_topics
from streams.kafka.clients import consume_all
from streams.replay.replayer import replay_records
from streams.settings import Settings
from streams.simulate import SimConfig, simulate

__all__ = ["Measurement", "measure", "replay_dicts", "wait_group"]

RUN_DIR = Path(".run/bench/scaleout").resolve()


def replay_dicts(cfg: SimConfig) -> list[dict[str, Any]]:
    """The simulated stream as replay dicts (topic without prefix), in event-time order."""
    return [{"topic": m.topic, "key": m.key, "value": m.value, "timestamp": m.timestamp, "partition": -1,
             "headers": []} for m in simulate(cfg)]


@dataclass
class Measurement:
    workers: int
    records: int
    seconds: float
    per_worker: list[int]
    skipped_replayed: int
    load_before: float
    load_after: float
    missing: int = 0
    """Records in the input topics never counted by any worker (0 unless the run stalled short of the end)."""
    changelog: tuple[int, int, float] | None = None
    """Feeder-state changelog at the end: (records, bytes, seconds to read it all back) = recovery read."""

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def _done(stats: dict[str, Any]) -> int:
    return sum(stats["accepted"].values()) + sum(stats["rejected"].values())


def wait_group(settings: Settings, group: str, members: int, timeout: float = 120.0) -> None:
    """Until the worker group is stable with ``members`` members that each own partitions."""
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = admin.describe_consumer_groups([group])[group].result()
        owners = [m for m in desc.members if m.assignment and m.assignment.topic_partitions]
        if desc.state == ConsumerGroupState.STABLE and len(desc.members) == members == len(owners):
            return
        time.sleep(0.5)
    raise TimeoutError(f"group {group} never had {members} members owning partitions")


def measure(records: Sequence[dict[str, Any]], workers: int, partitions: int, timeout: float = 900.0,
            stall: float = 30.0) -> Measurement:
    """Process ``records`` with ``workers`` fresh worker processes in a fresh namespace; see the module doc."""
    prefix = f"bench-scale-{uuid.uuid4().hex[:6]}."
    s = Settings(topic_prefix=prefix, topic_retention_ms=-1, partitions=partitions)
    create_topics(s)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        paths = []
        for i in range(workers):
            data_dir = RUN_DIR / f"{prefix}w{i}"
            env = {**os.environ, "EVGRID_TOPIC_PREFIX": prefix, "EVGRID_DATA_DIR": str(data_dir),
                   "EVGRID_PARTITIONS": str(partitions), "EVGRID_TOPIC_RETENTION_MS": "-1",
                   "EVGRID_MONITOR_ENABLED": "false"}
            proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            paths.append(data_dir / f"{prefix}{s.app_id}" / f"stats-{proc.pid}.json")
        wait_group(s, f"{prefix}{s.app_id}", workers)
        load_before = os.getloadavg()[0]
        replay_records(records, s, create_topics=False)
        n = len(records)
        samples: list[dict[int, int]] = [{} for _ in range(workers)]  # written_at -> done, per worker
        last: list[dict[str, Any]] = [{} for _ in range(workers)]
        deadline = time.monotonic() + timeout
        progress, moved = -1, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            for i, path in enumerate(paths):
                try:
                    st = json.loads(path.read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    continue
                samples[i][st["written_at"]] = _done(st)
                last[i] = st
            done = sum(_done(st) for st in last if st)
            if done >= n:
                break
            if done != progress:
                progress, moved = done, time.monotonic()
            elif done > 0 and time.monotonic() - moved > stall:
                break  # no progress: report the records never accounted for
        else:
            raise TimeoutError(f"{workers} worker(s) processed {sum(_done(st) for st in last if st)} of {n}")
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.pid} exited with {p.returncode}")
        times = sorted({t for s_ in samples for t in s_})

        def total(t: int) -> int:
            return sum(max((d for tt, d in s_.items() if tt <= t), default=0) for s_ in samples)

        t1 = next(t for t in times if total(t) > 0)
        final = total(times[-1])
        t_end = next(t for t in times if total(t) >= final)
        d1 = total(t1)
        m = Measurement(workers, final - d1, max(t_end - t1, 1) / 1000, [_done(st) for st in last],
                        sum(st.get("skipped_replayed", 0) for st in last), load_before, os.getloadavg()[0],
                        n - final)
        if workers == 1:
            time.sleep(2)  # the last checkpoints reach the changelog
            t0 = time.perf_counter()
            msgs = consume_all(s, [f"{prefix}{s.app_id}-feeder-state-changelog"], timeout=300, idle=1.0)
            m.changelog = (len(msgs), sum(len(x.value() or b"") for x in msgs), time.perf_counter() - t0 - 1.0)
        return m
    finally:
        for p in procs:
            p.kill()
            p.wait()
        delete_topics(s)
        shutil.rmtree(RUN_DIR, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeders", type=int, default=24)
    ap.add_argument("--homes", type=int, default=60, help="meters per feeder")
    ap.add_argument("--chargers", type=int, default=20, help="chargers per feeder")
    ap.add_argument("--hours", type=float, default=12.0, help="event time replayed")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    start = (int(time.time()) // 900 * 900 - round(args.hours * 3600) - 3600) * 1000
    cfg = SimConfig(feeders=args.feeders, homes=args.homes, chargers=args.chargers, hours=args.hours,
                    start_ms=start, telemetry_s=60, heartbeat_s=300)
    t0 = time.perf_counter()
    records = replay_dicts(cfg)
    print(f"replay: {len(records):,} records, {args.feeders} feeders x ({args.homes} meters + {args.chargers} "
          f"chargers), {args.hours:g} h of event time, {args.partitions} partitions "
          f"(simulated in {time.perf_counter() - t0:.0f} s); {os.cpu_count()} cores")
    results: dict[int, list[Measurement]] = {1: [], 2: []}
    for r in range(args.repeat):
        for workers in (1, 2):
            m = measure(records, workers, args.partitions)
            results[workers].append(m)
            print(f"  run {r + 1}: {workers} worker(s): {m.rate:8,.0f} records/s  ({m.records:,} in {m.seconds:.1f} s; "
                  f"per worker {m.per_worker}; never counted {m.missing}; "
                  f"re-read after rebalance {m.skipped_replayed}; "
                  f"load average {m.load_before:.1f} -> {m.load_after:.1f})", flush=True)
            if m.changelog:
                print(f"         feeder-state changelog: {m.changelog[0]:,} records, {m.changelog[1] / 1e6:.1f} MB, "
                      f"read back in {m.changelog[2]:.1f} s (a restarted worker's recovery read)", flush=True)
    mean = {w: sum(m.rate for m in ms) / len(ms) for w, ms in results.items()}
    print(f"1 worker:  {' / '.join(f'{m.rate:,.0f}' for m in results[1])} records/s (mean {mean[1]:,.0f})")
    print(f"2 workers: {' / '.join(f'{m.rate:,.0f}' for m in results[2])} records/s (mean {mean[2]:,.0f})")
    pairs = ", ".join(f"{b.rate / a.rate:.2f}" for a, b in zip(results[1], results[2], strict=True))
    print(f"ratio 2/1 workers: {mean[2] / mean[1]:.2f} (per run: {pairs}); "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
