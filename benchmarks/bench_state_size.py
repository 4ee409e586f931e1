"""State size per feeder over time: the ACN month repeated, in-process through the worker's own code.

    python benchmarks/bench_state_size.py [--months 3] [--copies 1] [--step 5m]

``--copies 2`` adds a copy of every station (a second charger per station, ~100 chargers). Prints, after
1 day, 1 week and each month of event time, the feeder's checkpoint (state + forecaster, compressed, the
bytes written to the changelog), the telemetry held in memory and the process RSS. The state must depend on
the fleet, not on elapsed time: flat after the first week.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from streams.backtest.inprocess import run_in_process
from streams.backtest.inputs import from_flags
from streams.contracts.timeparse import parse_duration_ms
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings

ACN = Path(__file__).resolve().parents[2] / "shared" / "data" / "acn" / "caltech_2019-03_sessions.csv"
DAY_MS = 86_400_000


def repeated_sessions(src: Path, dst: Path, months: int, copies: int) -> int:
    """Write ``src`` shifted by 31 days ``months`` times (and ``copies`` stations per station); return chargers."""
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    stations: set[str] = set()
    with open(dst, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for m in range(months):
            shift = dt.timedelta(days=31 * m)
            for c in range(copies):
                for r in rows:
                    out = dict(r)
                    for col in ("arrival_utc", "departure_utc", "estimated_departure_utc"):
                        t = dt.datetime.fromisoformat(r[col].replace("Z", "+00:00")) + shift
                        out[col] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
                    out["session_id"] = f"{r['session_id']}#{m}.{c}"
                    out["station_id"] = r["station_id"] if c == 0 else f"{r['station_id']}-{c}"
                    stations.add(out["station_id"])
                    w.writerow(out)
    return len(stations)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--months", type=int, default=3)
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--step", default="5m")
    ap.add_argument("--sessions", type=Path, default=ACN)
    a = ap.parse_args()
    step_ms = parse_duration_ms(a.step)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sessions.csv"
        chargers = repeated_sessions(a.sessions, path, a.months, a.copies)
        inputs = from_flags(path, step_ms=step_ms)
    settings = Settings(**{**inputs.settings, "interval_minutes": step_ms // 60_000})
    marks = [1, 7] + [31 * m for m in range(1, a.months + 1)]
    start = min(s.arrival for s in inputs.sessions) // DAY_MS * DAY_MS
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def observe(worker: FeederWorker, event_ms: int) -> None:
        while marks and event_ms >= start + marks[0] * DAY_MS:
            state = max(worker.state_bytes.values(), default=0)
            rows.append({"day": marks.pop(0), "state_kb": state / 1024, "held": worker.held_total(),
                         "rss_mb": rss_mb(), "wall_s": time.perf_counter() - t0})

    run_in_process(inputs, settings, observe=observe, keep_outputs=False)
    print(f"ACN month x{a.months}, {chargers} chargers, step {a.step}: checkpoint per feeder over event time")
    print(f"{'day':>5} {'checkpoint kB':>14} {'held':>6} {'max RSS MB':>11} {'wall s':>7}")
    for r in rows:
        print(f"{r['day']:>5} {r['state_kb']:>14.1f} {r['held']:>6} {r['rss_mb']:>11.0f} {r['wall_s']:>7.0f}")


if __name__ == "__main__":
    main()
