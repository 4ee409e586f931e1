"""Cost of a plug-in plan on one feeder after a flood of one input kind (grid signals, registrations, incentive
responses), beside the same plan without the flood: wall time and LP solves, through the worker's own code.

Usage: python benchmarks/bench_floods.py [--n 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from streams.contracts.codec import default_codec
from streams.contracts.models import GridSignal, IncentiveResponse, Record, encode_record
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    CHARGER_TELEMETRY,
    GRID_SIGNALS,
    INCENTIVE_RESPONSES,
    METER_READINGS,
)
from streams.dispatch import planner
from streams.ingest.validate import RawMessage
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings, pipeline_config
from tests.fixtures.feeder_records import HOUR, T0, reg, tel

TOPIC = {"ChargerRegistration": CHARGER_REGISTRY, "ChargerTelemetry": CHARGER_TELEMETRY, "GridSignal": GRID_SIGNALS,
         "IncentiveResponse": INCENTIVE_RESPONSES}
LPS = [0]


def _count_lps() -> None:
    real = planner.solve_lp_or_failure  # every solve goes through it: plans, counterfactuals, offer probes

    def counted(*a, **k):  # type: ignore[no-untyped-def]
        LPS[0] += 1
        return real(*a, **k)

    planner.solve_lp_or_failure = counted  # type: ignore[assignment]


def flood(kind: str, n: int) -> list[Record]:
    if kind == "signals":
        return [GridSignal(signal_id=f"g{k}", feeder_id="F1", issued_at=T0, valid_from=T0 + (k % 480) * 60_000,
                           valid_until=T0 + (k % 480) * 60_000 + 2 * HOUR, import_limit_kw=30.0 - k % 17,
                           price_per_kwh=0.1 + k / 1e5) for k in range(n)]
    if kind == "registrations":
        return [reg(f"X{k}") for k in range(n)]
    if kind == "responses":
        return [IncentiveResponse(offer_id=f"offer-{k}", feeder_id="F1", customer_id="U1", accepted=True,
                                  responded_at=T0) for k in range(n)]
    return []


def plug_in_plan(kind: str, n: int) -> tuple[float, int]:
    """Seconds and LP solves of the first plan after the flood (a plug-in triggers it)."""
    codec = default_codec()
    w = FeederWorker(pipeline_config(Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=0)),
                     clock=lambda: T0 + 30 * 24 * HOUR)
    # every input partition read to its end and quiet: nothing waits for more input, telemetry applies at once
    w.drained = {(t, 0) for t in (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY)}
    offset = 0

    def feed(records: list[Record]) -> None:
        nonlocal offset
        msgs = []
        for r in records:
            offset += 1
            msgs.append(RawMessage(TOPIC[type(r).__name__], 0, offset, b"F1", encode_record(codec, r), None))
        w.process(msgs, lambda f: None)

    feed([reg(f"C{i}") for i in range(3)] + flood(kind, n))
    before, t = LPS[0], time.perf_counter()
    feed([tel(T0 + 60_000, "C0")])  # the plan applies the signals and responses waiting for it
    assert w.runtimes[b"F1"].plans == 1, "the plug-in made the one plan measured"
    return time.perf_counter() - t, LPS[0] - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    _count_lps()
    plug_in_plan("none", 0)  # warm-up (imports, HiGHS)
    print(f"plug-in plan after a flood of {args.n} records of one kind (median of {args.repeats})")
    base = 0.0
    for kind in ("none", "signals", "registrations", "responses"):
        runs = [plug_in_plan(kind, args.n) for _ in range(args.repeats)]
        sec = statistics.median(r[0] for r in runs)
        base = base or sec
        print(f"  {kind:<14} {sec * 1000:8.1f} ms  {runs[0][1]:4d} LP solves  {sec / base:6.1f}x the plan without one")


if __name__ == "__main__":
    main()
