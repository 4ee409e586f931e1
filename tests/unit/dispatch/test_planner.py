"""Hand-checked LP cases: one car, two cars competing, infeasible request, V2G peak event, fallback."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from streams.dispatch.heuristic import plan_llf
from streams.dispatch.planner import (
    HOUR_MS,
    PlannerWeights,
    PlanRequest,
    PlanSession,
    SolverLimits,
    plan_feeder,
    plan_id_of,
    solve_lp,
    solve_lp_or_failure,
    time_grid,
)
from tests.fixtures.fresh_process import evaluate

T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS
Q = 15 * 60_000


def request(sessions, hours=4, base=None, imp=np.inf, exp=0.0, price=0.2, floor=0.0):
    edges = time_grid(T0, Q, hours * HOUR_MS)
    n = len(edges) - 1
    base = np.zeros(n) if base is None else np.asarray(base, dtype=float)
    return PlanRequest("f1", tuple(int(e) for e in edges), tuple(base), (imp,) * n, (exp,) * n, (price,) * n,
                       tuple(sessions), peak_floor_kw=floor, weights=PlannerWeights(flatten_per_kwh=0.0))


def energy(plan, key):
    return float(np.sum(plan.schedules[key] * np.diff(plan.edges_ms) / HOUR_MS))


def test_one_car_is_spread_to_the_lowest_peak():
    car = PlanSession("c1", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    plan = solve_lp(request([car]))
    assert plan is not None and plan.status["c1"] == "optimal"
    assert energy(plan, "c1") == pytest.approx(10.0, abs=1e-6)
    assert plan.peak_kw == pytest.approx(2.5, abs=1e-6)  # 10 kWh over 4 h
    assert plan.schedules["c1"].min() >= -1e-9


def test_two_cars_competing_earliest_departure_first():
    a = PlanSession("a", T0, T0 + 2 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    b = PlanSession("b", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    plan = solve_lp(request([a, b]))
    assert plan is not None
    assert energy(plan, "a") == pytest.approx(10.0, abs=1e-6)
    assert energy(plan, "b") == pytest.approx(10.0, abs=1e-6)
    # 20 kWh in 4 h but a needs 10 kWh in its first 2 h: the lowest peak is 5 kW
    assert plan.peak_kw == pytest.approx(5.0, abs=1e-6)
    assert np.all(plan.schedules["a"][8:] == 0)


def test_infeasible_request_delivers_the_most_possible_and_says_so():
    car = PlanSession("c1", T0, T0 + HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    plan = solve_lp(request([car]))
    assert plan is not None
    assert plan.status["c1"] == "infeasible_request"
    assert energy(plan, "c1") == pytest.approx(7.0, abs=1e-6)
    assert plan.shortfall_kwh["c1"] == pytest.approx(3.0, abs=1e-6)


def test_v2g_discharges_in_a_peak_event_and_stays_above_reserve():
    base = np.full(16, 10.0)
    base[8:10] = 30.0  # a 30-minute peak
    car = PlanSession("v", T0, T0 + 4 * HOUR_MS, energy_kwh=0.0, max_charge_kw=7.0, max_discharge_kw=7.0,
                      soc_kwh=40.0, capacity_kwh=60.0, reserve_kwh=18.0)
    plan = solve_lp(request([car], base=base, exp=100.0))
    assert plan is not None
    assert plan.peak_kw == pytest.approx(23.0, abs=1e-6)  # 7 kW of V2G shaves the 30 kW peak
    assert np.all(plan.schedules["v"][8:10] == pytest.approx(-7.0))
    # net energy 0: what was discharged is put back off-peak, SoC never below reserve
    soc = 40.0 + np.cumsum(plan.schedules["v"] * 0.25)
    assert soc.min() >= 18.0 - 1e-6 and energy(plan, "v") == pytest.approx(0.0, abs=1e-6)


def test_no_discharge_when_it_does_not_pay():
    car = PlanSession("v", T0, T0 + 4 * HOUR_MS, energy_kwh=5.0, max_charge_kw=7.0, max_discharge_kw=7.0,
                      soc_kwh=40.0, capacity_kwh=60.0, reserve_kwh=18.0)
    plan = solve_lp(request([car], base=np.full(16, 10.0), exp=100.0))
    assert plan is not None and plan.schedules["v"].min() >= -1e-9


def test_peak_floor_lets_cars_charge_early_up_to_it():
    car = PlanSession("c1", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    plan = solve_lp(request([car], floor=5.0))
    assert plan is not None
    assert plan.schedules["c1"][0] == pytest.approx(5.0, abs=1e-6)
    assert plan.peak_kw == pytest.approx(5.0, abs=1e-6)


def test_import_limit_is_soft_and_reported():
    car = PlanSession("c1", T0, T0 + HOUR_MS, energy_kwh=6.0, max_charge_kw=7.0)
    plan = solve_lp(request([car], imp=4.0))
    assert plan is not None
    # the limit wins over the driver's request (feeder protection first)
    assert energy(plan, "c1") == pytest.approx(4.0, abs=1e-6)
    assert plan.status["c1"] == "infeasible_request"
    # the base load alone breaks the limit all hour: cutting the car would not hold it, so the car is served
    tight = solve_lp(request([car], base=np.full(16, 5.0), imp=4.0))
    assert tight is not None and energy(tight, "c1") == pytest.approx(6.0, abs=1e-6)
    assert tight.limit_violation_kwh == pytest.approx(4 * 1.0 + 6.0, abs=1e-3) and tight.status["c1"] == "optimal"
    # broken by the base load for the first half hour only: the limit is lost for the whole horizon, so the car
    # is served (6 kWh) at the lowest peak, 10 kW: full power where the base load is 0, 5 kW on top of 5 kW
    split = solve_lp(request([car], base=np.where(np.arange(16) < 2, 5.0, 0.0), imp=4.0))
    assert split is not None and energy(split, "c1") == pytest.approx(6.0, abs=1e-6)
    assert split.schedules["c1"][:4].tolist() == pytest.approx([5.0, 5.0, 7.0, 7.0], abs=1e-6)
    assert split.peak_kw == pytest.approx(10.0, abs=1e-6) and split.status["c1"] == "optimal"
    assert split.limit_lost.all() and split.limit_violation_kwh == pytest.approx(3.0 + 1.5, abs=1e-3)


def test_a_lost_limit_does_not_pull_ev_load_onto_the_steps_where_it_is_broken():
    # 3 h of base 3.5 kW under a 4 kW limit, then an hour of 5 kW that breaks it: a penalty only in the held
    # steps would push what does not fit under the limit (4.5 of 6 kWh) into the last hour (peak 9.5 kW);
    # the limit is lost, so the car is spread to the flattest peak: 3 (P - 3.5) + (P - 5) = 6 -> P = 5.375
    car = PlanSession("c1", T0, T0 + 4 * HOUR_MS, energy_kwh=6.0, max_charge_kw=7.0)
    base = np.where(np.arange(16) < 12, 3.5, 5.0)
    plan = solve_lp(request([car], base=base, imp=4.0))
    assert plan is not None and energy(plan, "c1") == pytest.approx(6.0, abs=1e-6)
    assert plan.peak_kw == pytest.approx(5.375, abs=1e-6)
    # where the base load never breaks the limit, the limit still wins over the request
    held = solve_lp(request([car], base=np.full(16, 3.5), imp=4.0))
    assert held is not None and energy(held, "c1") == pytest.approx(2.0, abs=1e-6)
    assert not held.limit_lost.any() and held.peak_kw == pytest.approx(4.0, abs=1e-6)


def test_fallback_heuristic_when_the_solver_hits_its_hang_guard(caplog):
    cars = [PlanSession(f"c{i}", T0, T0 + (2 + i) * HOUR_MS, energy_kwh=8.0, max_charge_kw=7.0) for i in range(3)]
    with caplog.at_level("WARNING", logger="streams.dispatch.planner"):
        plan = plan_feeder(request(cars, hours=6), SolverLimits(time_limit_s=0.0))
    assert plan.solver == "llf" and plan.reason == "fallback_heuristic" and plan.solver_failure == "time_limit"
    assert "not reproducible" in caplog.text
    for c in cars:
        assert energy(plan, c.key) == pytest.approx(8.0, abs=1e-6)
        assert plan.schedules[c.key].min() >= 0 and plan.schedules[c.key].max() <= 7.0 + 1e-9


def test_llf_serves_the_tightest_car_first():
    tight = PlanSession("t", T0, T0 + HOUR_MS, energy_kwh=7.0, max_charge_kw=7.0)
    loose = PlanSession("l", T0, T0 + 4 * HOUR_MS, energy_kwh=7.0, max_charge_kw=7.0)
    plan = plan_llf(request([tight, loose]))
    assert energy(plan, "t") == pytest.approx(7.0) and energy(plan, "l") == pytest.approx(7.0)
    assert plan.status["t"] == "fallback_heuristic"


def test_plan_id_is_deterministic_and_input_sensitive():
    car = PlanSession("c1", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    setup = ("from tests.unit.dispatch.test_planner import HOUR_MS, T0, PlanSession, plan_id_of, request\n"
             "car = PlanSession('c1', T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)")
    others = {evaluate(setup, "plan_id_of(request([car]))", seed) for seed in (1, 2)}
    assert others == {plan_id_of(request([car]))}, "the same request has the same id in any process"
    assert plan_id_of(request([car])) != plan_id_of(request([car], floor=1.0))


def test_time_grid_fine_then_coarse():
    edges = time_grid(T0, 5 * 60_000, 24 * HOUR_MS, 2 * HOUR_MS, 30 * 60_000)
    d = np.diff(edges)
    assert edges[0] == T0 and edges[-1] >= T0 + 24 * HOUR_MS
    assert np.all(d[:24] == 5 * 60_000) and np.all(d[-10:] == 30 * 60_000)


def _busy_request():
    """An LP that needs a few dozen simplex iterations: cars of staggered windows competing under a peak."""
    cars = [PlanSession(f"c{i}", T0 + (i % 4) * Q, T0 + (2 + i % 5) * HOUR_MS, energy_kwh=4.0 + i % 3,
                        max_charge_kw=7.0) for i in range(12)]
    return request(cars, hours=6, base=np.linspace(0.0, 9.0, 24))


def test_the_iteration_limit_bounds_the_solve_the_same_way_whatever_the_time():
    req = _busy_request()
    solved = solve_lp_or_failure(req, SolverLimits(iteration_limit=50_000))
    assert not isinstance(solved, str) and solved.solver == "highs"  # the budget a real plan gets: solved
    assert solve_lp_or_failure(req, SolverLimits(iteration_limit=3)) == "iteration_limit"
    # a tiny iteration budget: the same fallback plan under a short or a huge wall-clock guard
    plans = [plan_feeder(req, SolverLimits(iteration_limit=3, time_limit_s=t)) for t in (5.0, 1e6, 5.0)]
    assert {p.solver for p in plans} == {"llf"} and {p.solver_failure for p in plans} == {"iteration_limit"}
    for p in plans[1:]:
        assert p.plan_id == plans[0].plan_id and np.array_equal(p.fleet_kw, plans[0].fleet_kw)
        assert all(np.array_equal(p.schedules[k], plans[0].schedules[k]) for k in plans[0].schedules)


def test_same_request_same_plan_on_every_solve():
    req = _busy_request()
    first = solve_lp(req)
    assert first is not None
    for _ in range(3):
        again = solve_lp(req)
        assert again is not None and again.objective == first.objective
        assert all(np.array_equal(again.schedules[k], first.schedules[k]) for k in first.schedules)


def test_flattening_puts_ev_load_in_the_base_load_valley_not_early_under_the_peak():
    # an evening ramp then a night valley, all under the running peak: without flattening the car charges at once
    # (on the ramp, where a forecast miss breaks the peak); with it, in the valley
    base = np.full(16, 40.0)
    base[:8] = 80.0
    car = PlanSession("c1", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=10.0)
    req = request([car], base=base, floor=100.0)
    early = solve_lp(req)
    assert early is not None and energy(early, "c1") == pytest.approx(10.0, abs=1e-6)
    assert early.schedules["c1"][:8].sum() * 0.25 == pytest.approx(10.0, abs=1e-6)
    coarse = solve_lp(replace(req, weights=replace(req.weights, flatten_per_kwh=0.05, flatten_levels=8)))
    assert coarse is not None and energy(coarse, "c1") == pytest.approx(10.0, abs=1e-6)
    assert np.all(coarse.schedules["c1"][:8] == pytest.approx(0.0, abs=1e-6))
    # in the valley's lowest band (8 bands from the 40 kW valley to the 100 kW peak: 7.5 kW), not at full power; but
    # within that band the LP is indifferent, and fills it to the top on the first steps
    assert coarse.schedules["c1"].max() == pytest.approx(7.5, abs=1e-6)
    flat = solve_lp(replace(req, weights=replace(req.weights, flatten_per_kwh=0.05)))  # the default 64 bands
    assert flat is not None and energy(flat, "c1") == pytest.approx(10.0, abs=1e-6)
    assert np.all(flat.schedules["c1"][:8] == pytest.approx(0.0, abs=1e-6))
    # 10 kWh over the 2 h valley is 5 kW flat: every step within the band of 60/64 kW that holds 5 kW
    band = 60.0 / 64
    lo, hi = (5.0 // band) * band, (5.0 // band + 1) * band
    assert np.all(flat.schedules["c1"][8:] >= lo - 1e-6) and np.all(flat.schedules["c1"][8:] <= hi + 1e-6)


def test_a_v2g_car_is_never_planned_above_its_request_so_far():
    # a charger stops charging once the request is in (grid side, net of export; the twin does): a plan that tops the
    # car up on the morning's low load to discharge it under the high load after counts on energy that never comes,
    # and the other cars it held back for that phantom load charge later, on a higher peak
    base = np.full(8, 10.0)
    base[4:] = 40.0
    car = PlanSession("v", T0, T0 + 2 * HOUR_MS, energy_kwh=2.0, max_charge_kw=7.0, max_discharge_kw=7.0,
                      soc_kwh=30.0, capacity_kwh=60.0, reserve_kwh=10.0)
    plan = solve_lp(request([car], hours=2, base=base, exp=100.0))
    assert plan is not None and energy(plan, "v") == pytest.approx(2.0, abs=1e-6)
    so_far = np.cumsum(plan.schedules["v"] * 0.25)
    assert np.all(so_far <= 2.0 + 1e-6)
    assert plan.peak_kw == pytest.approx(40.0, abs=1e-6)  # no discharge it could not charge for first


def test_a_discharge_is_planned_no_deeper_than_the_envelope_lets_a_setpoint_run():
    # the envelope lets a discharge setpoint run for its validity (30 min) without the SoC going below the reserve:
    # 2 kWh above it allows 4 kW, not the car's 7. A plan that counts on 7 kW gets 4 and the peak it meant to
    # shave comes through; with the rule planned it knows the 4 kW (and the SoC it leaves for the steps after)
    base = np.array([50.0, 10.0, 10.0, 10.0])
    car = PlanSession("v", T0, T0 + HOUR_MS, energy_kwh=0.0, max_charge_kw=7.0, max_discharge_kw=7.0,
                      soc_kwh=20.0, capacity_kwh=60.0, reserve_kwh=18.0)
    req = request([car], hours=1, base=base, exp=100.0)
    free = solve_lp(req)
    assert free is not None and free.schedules["v"][0] == pytest.approx(-7.0, abs=1e-6)
    held = solve_lp(replace(req, sessions=(replace(car, discharge_hold_h=0.5),)))
    assert held is not None and held.schedules["v"][0] == pytest.approx(-4.0, abs=1e-6)
    x = held.schedules["v"]
    soc_before = 20.0 + np.concatenate([[0.0], np.cumsum(x * 0.25)[:-1]])
    assert np.all(-x <= (soc_before - 18.0) / 0.5 + 1e-6)
    assert held.peak_kw == pytest.approx(46.0, abs=1e-6)


def test_a_car_above_its_taper_soc_is_not_planned_beyond_the_tapered_power():
    # 90 % full (18 of 20 kWh), taper from 80 %: at 90 % it draws at most 10 kW x (1 - 0.9 x 0.5) = 5.5 kW. The base
    # load leaves only the last quarter hour free: without the taper the plan puts all 1.5 kWh there (6 kW), which
    # the car cannot draw; with it the last step stays under the taper and the rest goes earlier
    base = np.array([10.0, 10.0, 10.0, 0.0])
    car = PlanSession("c1", T0, T0 + HOUR_MS, energy_kwh=1.5, max_charge_kw=10.0, soc_kwh=18.0, capacity_kwh=20.0)
    req = request([car], hours=1, base=base)
    free = solve_lp(req)
    assert free is not None and free.schedules["c1"][3] == pytest.approx(6.0, abs=1e-6)
    taper = solve_lp(replace(req, sessions=(replace(car, taper_soc_kwh=16.0),)))
    assert taper is not None and energy(taper, "c1") == pytest.approx(1.5, abs=1e-6)
    x = taper.schedules["c1"]
    soc_before = 18.0 + np.concatenate([[0.0], np.cumsum(x * 0.25)[:-1]])
    assert np.all(x <= 10.0 * (1 - 0.9 * (soc_before - 16.0) / 4.0) + 1e-6)
    assert x[3] < 5.5 + 1e-6 and x[:3].sum() > 0


def test_a_car_leaving_within_a_step_is_not_planned_above_its_sites_import_limit_while_plugged_in():
    # a 7 kW car behind a 6 kW site import limit leaves 5 minutes into the last 15-minute step: the site row sees the
    # step's average, so without its own bound the car was planned at 7 kW for those 5 minutes (2.33 kW on average,
    # "under" 6), which the envelope clips to 6: the plan counted on energy that never came (the sites day's D1)
    from streams.dispatch.plan import PlanSite

    car = PlanSession("c", T0, T0 + 50 * 60_000, energy_kwh=6.0, max_charge_kw=7.0, site_id="s")
    req = request([car], hours=2)
    n = req.n_steps
    req = replace(req, sites=(PlanSite("s", (0.0,) * n, (6.0,) * n, (0.0,) * n),))
    plan = solve_lp(req)
    assert plan is not None
    assert plan.schedules["c"][:4] == pytest.approx([6.0] * 4, abs=1e-6)  # power while plugged in
    assert plan.shortfall_kwh["c"] == pytest.approx(6.0 - 6.0 * 50 / 60, abs=1e-6)  # what the site lets in


def test_a_higher_peak_forecast_later_does_not_make_load_above_the_running_peak_free_now():
    # running peak 20 kW; the next 30 minutes at 25 kW, then 40 kW (a rising load carried on, which may not come)
    base = np.full(16, 40.0)
    base[:2] = 25.0
    car = PlanSession("v", T0, T0 + 4 * HOUR_MS, energy_kwh=-7.0, max_charge_kw=7.0, max_discharge_kw=7.0,
                      soc_kwh=25.0, capacity_kwh=60.0, reserve_kwh=18.0)
    req = request([car], base=base, exp=100.0, floor=20.0)
    plain = solve_lp(req)
    assert plain is not None and plain.schedules["v"][:2] == pytest.approx([7.0, 7.0])  # under 37 kW: free
    near = solve_lp(replace(req, weights=replace(req.weights, near_peak_per_kw=50.0, near_peak_ms=30 * 60_000)))
    assert near is not None and near.schedules["v"][:2] == pytest.approx([-5.0, -5.0])  # held at the running peak
    assert near.peak_kw > plain.peak_kw  # what it costs later, if the 40 kW comes


def test_the_near_term_peak_does_not_defer_charging_past_its_window():
    # no load, no running peak yet: charging in the first 30 minutes must cost no more than charging after them,
    # or each plan pushes the car out of its window and it charges last-minute (the five-car closed loop ended short)
    car = PlanSession("c", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    req = request([car])
    plan = solve_lp(replace(req, weights=replace(req.weights, near_peak_per_kw=50.0, near_peak_ms=30 * 60_000)))
    assert plan is not None
    assert plan.schedules["c"] == pytest.approx(np.full(16, 2.5), abs=1e-6)  # spread flat from now, as without it


def test_the_near_term_peak_holds_against_the_upper_bound_without_lifting_the_horizon_peak():
    # base 20 kW as forecast, running peak 20 kW; the forecast's upper bound says 26 kW for the next 30 minutes (a jump
    # the point forecast may miss): the near-term peak holds the net at the running peak against the bound (V2G
    # discharges), while the horizon's peak keeps the point forecast, so the bound does not become room to fill later
    base = np.full(16, 20.0)
    upper = base.copy()
    upper[:2] = 26.0
    v2g = PlanSession("v", T0, T0 + 4 * HOUR_MS, energy_kwh=0.0, max_charge_kw=7.0, max_discharge_kw=7.0,
                      soc_kwh=40.0, capacity_kwh=60.0, reserve_kwh=18.0)
    car = PlanSession("c", T0, T0 + 4 * HOUR_MS, energy_kwh=10.0, max_charge_kw=7.0)
    req = request([v2g, car], base=base, exp=100.0, floor=20.0)
    req = replace(req, weights=replace(req.weights, near_peak_per_kw=50.0, near_peak_ms=30 * 60_000))
    plain, up = solve_lp(req), solve_lp(replace(req, near_base_kw=tuple(upper)))
    assert plain is not None and up is not None
    assert plain.schedules["v"][:2] + plain.schedules["c"][:2] == pytest.approx([2.5, 2.5], abs=1e-6)  # flat
    assert np.all(up.schedules["v"][:2] + up.schedules["c"][:2] <= -6.0 + 1e-6)  # 26 kW + net <= the 20 kW peak
    assert up.schedules["v"][:2].max() < -5.0  # by V2G
    assert plain.peak_kw == pytest.approx(22.5) and 22.5 < up.peak_kw < 24.0  # the recharge, not the 26 kW bound
    assert energy(up, "c") == pytest.approx(10.0, abs=1e-6)
    unset = solve_lp(replace(req, near_base_kw=()))  # without the bound: as before it existed
    assert unset is not None and unset.schedules["v"] == pytest.approx(plain.schedules["v"])


def test_a_sites_demand_charge_peak_keeps_its_margin_below_the_monthly_peak():
    # a building at 60 kW (forecast) with a monthly peak of 100 kW and a 40 kW car that prefers to charge early: up
    # to the peak it is free, so the plan fills the site to 100 kW, and a load 5 kW above its forecast sets a new
    # peak; with a 10 kW margin (the forecast's typical error) the plan keeps the site at 90 kW where it can
    from streams.dispatch.plan import PlanSite

    car = PlanSession("c", T0, T0 + 4 * HOUR_MS, energy_kwh=30.0, max_charge_kw=40.0, site_id="s")
    req = request([car], hours=4, base=np.full(16, 60.0), floor=500.0)  # the feeder's own peak is far above
    n = req.n_steps
    site = PlanSite("s", (60.0,) * n, (np.inf,) * n, (0.0,) * n, demand_charge_per_kw=20.0, peak_floor_kw=100.0)
    plain = solve_lp(replace(req, sites=(site,)))
    assert plain is not None and plain.schedules["c"].max() == pytest.approx(40.0, abs=1e-6)
    held = solve_lp(replace(req, sites=(replace(site, peak_margin_kw=10.0),)))
    assert held is not None and held.schedules["c"].max() <= 30.0 + 1e-6
    assert energy(held, "c") == pytest.approx(30.0, abs=1e-6)
    assert held.plan_id != plain.plan_id
    # a margin the site cannot keep (the car needs more than 30 kW on average) costs the demand charge, not energy
    tight = solve_lp(replace(req, sessions=(replace(car, energy_kwh=150.0),),
                             sites=(replace(site, peak_margin_kw=10.0),)))
    assert tight is not None and energy(tight, "c") == pytest.approx(150.0, abs=1e-6)


def test_v2g_energy_goes_where_the_upper_bound_may_peak_when_the_running_peak_already_covers_the_forecast():
    # the month's running peak (125 kW) is above every forecast step: against the point forecast the 2.5 kWh the car
    # gives lower no peak, and the plan puts them anywhere (the last step). The upper prediction bound says the second
    # quarter hour may reach 150 kW: with the upper peak weighed the car's energy goes there
    base = np.array([120.0, 110.0, 110.0, 110.0])
    upper = (125.0, 150.0, 115.0, 115.0)
    car = PlanSession("v", T0, T0 + HOUR_MS, energy_kwh=-2.5, max_charge_kw=10.0, max_discharge_kw=10.0,
                      soc_kwh=20.0, capacity_kwh=60.0, reserve_kwh=17.5)
    req = replace(request([car], hours=1, base=base, exp=100.0, floor=125.0), upper_base_kw=upper)
    point_only = solve_lp(req)
    assert point_only is not None and point_only.schedules["v"][1] == pytest.approx(0.0, abs=1e-6)
    weighed = solve_lp(replace(req, weights=replace(req.weights, upper_peak_per_kw=30.0)))
    assert weighed is not None
    assert weighed.schedules["v"].tolist() == pytest.approx([0.0, -10.0, 0.0, 0.0], abs=1e-6)


def test_a_low_scenario_keeps_the_first_step_off_a_peak_that_may_not_come():
    # 10 kWh in 2 h (10 kW max) on a base of 100 kW then 105 kW: on the point forecast the car charges 7.5 kW through
    # the first hour (peak 107.5 kW). In the low scenario the second hour is 85 kW and the car would wait for it
    # (peak 100 kW). Weighted by a quarter, the first step (the one sent now, shared) waits: the point plan pays
    # 1/7 kW of peak per kW it defers (108.571 kW), the low scenario saves 1 kW; under an eighth it charges
    car = PlanSession("c1", T0, T0 + 2 * HOUR_MS, energy_kwh=10.0, max_charge_kw=10.0)
    point = [100.0] * 4 + [105.0] * 4
    low = (100.0,) * 4 + (85.0,) * 4

    def first_step(share: float) -> tuple[float, float]:
        req = request([car], hours=2, base=point)
        req = replace(req, scenario_base_kw=(low,), weights=replace(req.weights, scenario_share=share))
        plan = solve_lp(req)
        assert plan is not None and energy(plan, "c1") == pytest.approx(10.0, abs=1e-6)
        return float(plan.schedules["c1"][0]), plan.peak_kw

    assert first_step(0.0) == pytest.approx((7.5, 107.5), abs=1e-6)
    assert first_step(0.1) == pytest.approx((7.5, 107.5), abs=1e-6)
    assert first_step(0.25) == pytest.approx((0.0, 107.5 + 7.5 / 7), abs=1e-6)


def test_scenarios_change_the_plan_id_only_when_weighted():
    car = PlanSession("c1", T0, T0 + 2 * HOUR_MS, energy_kwh=10.0, max_charge_kw=10.0)
    req = request([car], hours=2)
    low = replace(req, scenario_base_kw=((1.0,) * req.n_steps,))
    assert plan_id_of(low) == plan_id_of(req)  # a scenario of no weight plans nothing
    weighted = replace(low, weights=replace(low.weights, scenario_share=0.25))
    assert plan_id_of(weighted) != plan_id_of(req)
