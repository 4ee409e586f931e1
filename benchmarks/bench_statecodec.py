"""Checkpoint size and cost of one feeder: the state format (statecodec) against pickle + zlib (the old format).

Feeds a FeederRuntime ``--chargers`` chargers and ``--days`` of 5-minute meter readings and 15-minute telemetry,
then encodes and decodes its state and its forecaster both ways. Prints bytes and ms (fastest of ``--repeat``)
per checkpoint, and the ratios within this run.

    python benchmarks/bench_statecodec.py [--chargers 20] [--days 2] [--model fls] [--repeat 20]
"""

from __future__ import annotations

import argparse
import pickle
import time
import zlib
from collections.abc import Callable
from typing import Any

from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS
from streams.ingest.validate import RawMessage
from streams.pipeline import statecodec
from streams.pipeline.feeder import FeederRuntime
from streams.settings import Settings, feeder_config
from tests.fixtures.feeder_records import T0, reg, tel
from tests.unit.pipeline.test_feeder_runtime import MIN, meter


def runtime(chargers: int, days: int, model: str) -> FeederRuntime:
    rt = FeederRuntime("F1", feeder_config(Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30,
                                      forecast_model=model)))
    ids = [f"C{i}" for i in range(chargers)]
    for cid in ids:
        rt.apply(reg(cid), RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", b"", None))
    for i in range(1, days * 288):
        ts = T0 + i * 5 * MIN
        rt.apply(meter(ts, kw=3 + i % 7), RawMessage(METER_READINGS, 0, i, b"F1", b"", None), i)
        if i % 3 == 0:
            for n, cid in enumerate(ids):  # each car plugged in for 2 of every 3 five-hour blocks, staggered
                plugged = ((i + 12 * n) // 60) % 3 != 0
                rt.apply(tel(ts, cid=cid, connected=plugged), RawMessage(CHARGER_TELEMETRY, 0, i, b"F1", b"", None), i)
    return rt


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """The result and the fastest of ``repeat`` runs in ms (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best * 1000


def compare(name: str, obj: Any, repeat: int) -> None:
    old, old_enc = timed(lambda: zlib.compress(pickle.dumps(obj, 5), 1), repeat)
    _, old_dec = timed(lambda: pickle.loads(zlib.decompress(old)), repeat)
    new, new_enc = timed(lambda: statecodec.encode(obj), repeat)
    _, new_dec = timed(lambda: statecodec.decode(new), repeat)
    print(f"  {name:<11} pickle+zlib {len(old):>8,} B  enc {old_enc:6.2f} ms  dec {old_dec:6.2f} ms | "
          f"statecodec {len(new):>8,} B  enc {new_enc:6.2f} ms  dec {new_dec:6.2f} ms | "
          f"size x{len(new) / len(old):.2f}  enc x{new_enc / old_enc:.1f}  dec x{new_dec / old_dec:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", type=int, default=20)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--model", action="append", help="forecast model family (repeatable; default fls, river-linear)")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    for model in args.model or ["fls", "river-linear"]:
        rt = runtime(args.chargers, args.days, model)
        state = rt.__dict__.copy()
        forecaster = state.pop("forecaster")
        print(f"{model}: {args.chargers} chargers, {args.days} days, {len(rt.held)} held telemetry, "
              f"{rt.plans} plans")
        compare("state", state, args.repeat)
        compare("forecaster", forecaster, args.repeat)


if __name__ == "__main__":
    main()
