"""Ingest throughput: meter readings decoded, validated and routed per second, in one worker process.

Prints, in one run (compare the ratio, not absolute figures, on a shared machine):
- pure: the same FeederWorker code in-process (decode + validate + aggregate + forecast, no Kafka);
- faust: end to end on the local broker: a fresh `evgrid worker` subprocess consumes N pre-produced readings;
  rate = N / (time of the stats file reporting all N - time of the first non-empty stats file).

    python benchmarks/bench_ingest.py [--n 500000] [--feeders 50] [--meters 200] [--repeat 3]
    python benchmarks/bench_ingest.py --n 1000000 --feeders 100 --meters 1000   # the fleet of issue 7's load test

The forecaster runs once per feeder and interval, so fewer meters per feeder means more forecasting per reading:
200 meters per feeder costs noticeably more per reading than 1,000.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from streams.agents.app import tune_gc
from streams.contracts.codec import default_codec
from streams.contracts.topics import METER_READINGS
from streams.ingest.validate import RawMessage
from streams.kafka.admin import create_topics, delete_topics
from streams.kafka.clients import make_producer, produce_records
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings, pipeline_config


def readings(n: int, feeders: int, meters: int, start_ms: int) -> list[tuple[bytes, bytes, int, None]]:
    codec = default_codec()
    out = []
    per_round = feeders * meters
    for i in range(n):
        feeder = f"F{i % feeders:03d}"
        ts = start_ms + (i // per_round) * 900_000
        value = codec.encode("MeterReading", {"meter_id": f"{feeder}-M{(i // feeders) % meters}", "feeder_id": feeder,
                                              "timestamp": ts, "active_power_kw": 1.0 + (i % 7) * 0.1})
        out.append((feeder.encode(), value, ts, None))
    return out


def pure_rate(records: list[tuple[bytes, bytes, int, None]]) -> float:
    worker = FeederWorker(pipeline_config(Settings()))
    msgs = [RawMessage(METER_READINGS, 0, i, k, v, ts) for i, (k, v, ts, _) in enumerate(records)]
    t0 = time.perf_counter()
    for k in range(0, len(msgs), 2000):
        worker.process(msgs[k:k + 2000], lambda f: None, checkpoint=False)
    worker.checkpoint()  # the worker checkpoints once a second, not per batch
    return len(msgs) / (time.perf_counter() - t0)


def faust_rate(records: list[tuple[bytes, bytes, int, None]], data_dir: Path) -> float:
    s = Settings(topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.", topic_retention_ms=-1)
    create_topics(s)
    try:
        stats = produce_records(make_producer(s), s.topic_prefix + METER_READINGS, records)
        assert stats.failed == 0
        env = {**os.environ, "EVGRID_TOPIC_PREFIX": s.topic_prefix, "EVGRID_DATA_DIR": str(data_dir)}
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = data_dir / f"{s.topic_prefix}{s.app_id}" / f"stats-{proc.pid}.json"
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if not path.exists():
                    continue
                st = json.loads(path.read_text())
                done = sum(st["accepted"].values()) + sum(st["rejected"].values())
                if first is None and done > 0:
                    first = (st["written_at"] / 1000, done)
                if done >= len(records):
                    assert first is not None
                    return (done - first[1]) / max(st["written_at"] / 1000 - first[0], 1e-3)
            raise TimeoutError("worker did not finish")
        finally:
            proc.kill()
    finally:
        delete_topics(s)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3, help="end-to-end runs (each on fresh topics)")
    ap.add_argument("--feeders", type=int, default=50)
    ap.add_argument("--meters", type=int, default=200)
    args = ap.parse_args()
    start = int(time.time() // 900 * 900 * 1000) - 30 * 86_400_000
    records = readings(args.n, args.feeders, args.meters, start)
    tune_gc(Settings().gc_gen0_threshold)  # as `evgrid worker` does
    pure = pure_rate(records)
    print(f"pure pipeline (decode+validate+aggregate+forecast), in-process: {pure:,.0f} readings/s")
    rates = []
    for i in range(args.repeat):
        rates.append(faust_rate(records, Path(".run/bench").resolve()))
        print(f"faust worker end to end on the local broker, run {i + 1}:          {rates[-1]:,.0f} readings/s "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    rate = statistics.median(rates)
    print(f"median of {len(rates)} end-to-end runs: {rate:,.0f} readings/s; faust / pure ratio {rate / pure:.2f}")


if __name__ == "__main__":
    main()
