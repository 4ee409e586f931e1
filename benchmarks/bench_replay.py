"""Replay throughput: records/s from history files into the broker (one process).

    python benchmarks/bench_replay.py [--copies 4] [--bootstrap 127.0.0.1:9092]

Builds history from the real ACN Caltech month (registrations + plug-in/heartbeat/plug-out telemetry,
~75k records) repeated ``--copies`` times into a temporary file, then measures and prints:

* file write and read rates (records/s, offline),
* replay rate into a fresh topic namespace (queueing and delivery included, acks=all, lz4),
* the same replay merged from two files (k-way merge cost).

The replay topics (prefix ``bench-replay-<random>.``) are deleted afterwards. Target: >= 100,000 records/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.kafka.clients import client_config
from streams.replay.files import iter_history_dicts, write_history
from streams.replay.importers import import_acn
from streams.replay.replayer import replay_sources
from streams.settings import Settings

SHARED = Path(os.environ.get("EVGRID_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of the ACN month in the history file")
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--keep-topics", action="store_true")
    args = ap.parse_args()
    settings = Settings() if args.bootstrap is None else Settings(bootstrap_servers=args.bootstrap)

    base = import_acn(SHARED / "acn" / "caltech_2019-03_sessions.csv")
    month = 31 * 86_400_000
    records = [r._replace(timestamp=r.timestamp + i * month) for i in range(args.copies) for r in base]
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the broker shares them)")
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "history.avro"
        t = time.perf_counter()
        n = write_history(one, records)
        w = time.perf_counter() - t
        t = time.perf_counter()
        assert sum(1 for _ in iter_history_dicts(one)) == n
        r = time.perf_counter() - t
        print(f"records: {n:,}  file: {one.stat().st_size / n:.1f} bytes/record")
        print(f"write: {n / w:,.0f} records/s   read: {n / r:,.0f} records/s")

        half_a, half_b = Path(tmp) / "a.avro", Path(tmp) / "b.avro"
        write_history(half_a, records[: n // 2])
        write_history(half_b, records[n // 2:])
        prefixes = []
        for label, sources in (("one file", [one]), ("two files merged", [half_a, half_b])):
            prefix = f"bench-replay-{uuid.uuid4().hex[:8]}."
            prefixes.append(prefix)
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            s = replay_sources(sources, settings, prefix=prefix)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
            print(f"replay ({label}): {s.records:,} records in {s.seconds:.2f} s = {s.rate:,.0f} records/s "
                  f"(delivered, acks=all); process CPU {cpu:.2f} s = {s.records / cpu:,.0f} records per CPU-second")
    if not args.keep_topics:
        admin = AdminClient(client_config(settings))
        names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(tuple(prefixes))]
        for f in admin.delete_topics(names, request_timeout=30).values():
            f.result()


if __name__ == "__main__":
    main()
