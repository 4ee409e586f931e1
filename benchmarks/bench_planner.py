"""Plan latency for 10, 100, 500 and 2,000 cars on one feeder (15-min steps, 24 h horizon).

Compares the production grid (15-min fine steps for 2 h, then 30-min coarse tail) with the full
uniform LP (96 steps of 15 min) and prints p50/p99 latency and both peaks.
Usage: python benchmarks/bench_planner.py [--repeats N] [--sizes 10,100,500,2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streams.dispatch.planner import HOUR_MS, PlanRequest, PlanSession, SolverLimits, plan_feeder, solve_lp, time_grid

T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS
Q = 15 * 60_000


def fleet(n: int, seed: int) -> list[PlanSession]:
    """Cars already plugged in: dwell 1-14 h, 5-40 kWh (capped to what is deliverable), 7-11 kW."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        dwell = rng.uniform(1.0, 14.0)
        kw = float(rng.choice([7.4, 11.0]))
        energy = min(rng.uniform(5.0, 40.0), 0.9 * kw * dwell)
        out.append(PlanSession(f"c{i:05d}", T0, T0 + int(dwell * HOUR_MS) // Q * Q, energy, kw))
    return out


def request(cars: list[PlanSession], edges: np.ndarray) -> PlanRequest:
    n = len(edges) - 1
    mid_h = ((edges[:-1] + edges[1:]) / 2 - T0) / HOUR_MS
    base = 0.6 * len(cars) * (1.0 + 0.5 * np.sin(2 * np.pi * (mid_h - 8) / 24))  # kW of other load
    price = np.where((mid_h % 24 >= 17) & (mid_h % 24 < 21), 0.40, 0.20)
    return PlanRequest("bench", tuple(int(e) for e in edges), tuple(base), (np.inf,) * n, (0.0,) * n,
                       tuple(price), tuple(cars))


def true_peak(plan, req_full: PlanRequest, cars: list[PlanSession]) -> float:
    """Peak of the plan evaluated on the fine 15-min grid (coarse steps held flat)."""
    fine = np.asarray(req_full.edges_ms)
    base = np.asarray(req_full.base_kw)
    load = base.copy()
    for k in range(len(fine) - 1):
        load[k] += float(plan.fleet_kw[int(np.searchsorted(plan.edges_ms, fine[k], side="right")) - 1])
    return float(load.max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--sizes", default="10,100,500,2000")
    args = ap.parse_args()
    full_edges = time_grid(T0, Q, 24 * HOUR_MS)
    prod_edges = time_grid(T0, Q, 24 * HOUR_MS, 2 * HOUR_MS, 30 * 60_000)
    print(f"{'cars':>6} {'grid':>6} {'p50 ms':>9} {'p99 ms':>9} {'peak kW':>9} {'full LP peak':>13} {'gap %':>7}")
    for n in (int(x) for x in args.sizes.split(",")):
        reps = args.repeats if n <= 500 else max(3, args.repeats // 4)
        full_peak = None
        for name, edges in (("full", full_edges), ("fast", prod_edges)):
            times = []
            plan = None
            for r in range(reps):
                cars = fleet(n, seed=r)
                req = request(cars, edges)
                t = time.perf_counter()
                plan = plan_feeder(req, SolverLimits(time_limit_s=10.0))
                times.append(time.perf_counter() - t)
            cars = fleet(n, seed=reps - 1)
            req_full = request(cars, full_edges)
            if name == "full":
                ref = solve_lp(req_full, SolverLimits(time_limit_s=60.0))
                full_peak = ref.peak_kw if ref else float("nan")
            assert plan is not None and full_peak is not None
            peak = true_peak(plan, req_full, cars)
            p50, p99 = np.percentile(times, 50) * 1e3, np.percentile(times, 99) * 1e3
            gap = 100 * (peak - full_peak) / full_peak
            print(f"{n:>6} {name:>6} {p50:>9.1f} {p99:>9.1f} {peak:>9.2f} {full_peak:>13.2f} {gap:>7.2f}"
                  f"  solver={plan.solver}")


if __name__ == "__main__":
    main()
