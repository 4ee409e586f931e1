"""Produce throughput of simulated meter readings (records/s), and encode-only throughput.

    python benchmarks/bench_produce.py [--records 200000] [--bootstrap 127.0.0.1:9092] [--partitions 4]

Generates meter readings with the simulator (no chargers), then measures and prints:

* simulator generation rate (pure Python: load profile, noise, PV, pydantic records),
* encode-only rate: ``encode_record`` (pydantic dump + Avro single-object) and raw ``codec.encode``,
* produce rate of the pre-encoded readings into a fresh 4-partition topic (idempotent producer,
  acks=all, lz4, keyed by feeder), from the first ``produce`` to the last acknowledgement.

The topic (prefix ``bench-produce-<random>.``) is deleted afterwards.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid
from dataclasses import replace

from streams.contracts.codec import default_codec
from streams.contracts.models import MeterReading, encode_record
from streams.contracts.topics import METER_READINGS
from streams.kafka.admin import TopicLayout, delete_topics, ensure_topics
from streams.kafka.clients import DeliveryStats, make_producer, produce_records
from streams.settings import Settings
from streams.simulate import SimConfig, iter_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--feeders", type=int, default=8)
    args = parser.parse_args()

    homes = 100
    hours = math.ceil(args.records / (args.feeders * homes * 4))
    cfg = SimConfig(feeders=args.feeders, homes=homes, chargers=0, hours=hours, seed=1)
    t0 = time.perf_counter()
    readings = [r for _, _, _, r in iter_records(cfg) if isinstance(r, MeterReading)][: args.records]
    gen_s = time.perf_counter() - t0
    n = len(readings)
    print(f"records: {n} meter readings ({args.feeders} feeders x {homes} homes x {hours} h)")
    print(f"simulate (generate records):  {n / gen_s:>10,.0f} records/s  ({gen_s:.2f} s)")

    codec = default_codec()
    t0 = time.perf_counter()
    values = [encode_record(codec, r) for r in readings]
    enc_s = time.perf_counter() - t0
    dicts = [r.to_avro() for r in readings]
    t0 = time.perf_counter()
    for d in dicts:
        codec.encode("MeterReading", d)
    raw_s = time.perf_counter() - t0
    size = sum(map(len, values))
    print(f"encode_record (dump+Avro):    {n / enc_s:>10,.0f} records/s  ({enc_s:.2f} s, {size / n:.0f} B/record)")
    print(f"codec.encode (dict->Avro):    {n / raw_s:>10,.0f} records/s  ({raw_s:.2f} s)")

    base = Settings()
    settings = Settings(bootstrap_servers=args.bootstrap or base.bootstrap_servers,
                        topic_prefix=f"bench-produce-{uuid.uuid4().hex[:8]}.")
    topic = settings.topic_prefix + METER_READINGS
    ensure_topics(settings, replace(TopicLayout.from_settings(settings), partitions=args.partitions), [METER_READINGS])
    try:
        records = [(r.feeder_id.encode(), v, r.timestamp, None) for r, v in zip(readings, values, strict=True)]
        producer = make_producer(settings)
        producer.list_topics(topic, timeout=10)  # metadata warm-up outside the timing
        stats = DeliveryStats()
        t0 = time.perf_counter()
        produce_records(producer, topic, records, stats=stats, flush_timeout=300)
        prod_s = time.perf_counter() - t0
        print(f"produce (acks=all, lz4):      {stats.delivered / prod_s:>10,.0f} records/s  ({prod_s:.2f} s, "
              f"{size / prod_s / 1e6:.1f} MB/s, delivered {stats.delivered}, failed {stats.failed})")
        t0 = time.perf_counter()
        stats2 = DeliveryStats()
        produce_records(producer, topic, ((k, encode_record(codec, r), ts, None) for (k, _, ts, _), r
                                          in zip(records, readings, strict=True)), stats=stats2, flush_timeout=300)
        both_s = time.perf_counter() - t0
        print(f"encode + produce:             {stats2.delivered / both_s:>10,.0f} records/s  ({both_s:.2f} s)")
    finally:
        delete_topics(settings)


if __name__ == "__main__":
    main()
