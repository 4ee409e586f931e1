"""The V2B building month (scenarios/month-v2b-building.yaml, month-smart-building.yaml): its inputs as shipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streams.backtest.inputs import from_scenario
from streams.replay.scenario import REPO_ROOT, load_scenario

DATA = REPO_ROOT / "scenarios" / "data"


def test_the_generator_rebuilds_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    sys.path.insert(0, str(DATA))
    try:
        import make_building_data
    finally:
        sys.path.pop(0)
    make_building_data.main(tmp_path)
    for name in ("month-building-load.csv", "month-building-sessions-v2b.csv", "month-building-sessions-smart.csv"):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


@pytest.mark.parametrize(("scenario", "bidirectional"),
                         [("month-v2b-building.yaml", 24), ("month-smart-building.yaml", 0)])
def test_one_non_exporting_building_with_its_meter_and_a_demand_charge(scenario: str, bidirectional: int) -> None:
    ins = from_scenario(load_scenario(REPO_ROOT / "scenarios" / scenario))
    regs = ins.registrations
    assert len(ins.sessions) == 954 and len(regs) == 47
    assert {r.site_id for r in regs.values()} == {"bld"} and set(ins.sites) == {"bld"}
    assert {r.interconnection_class for r in regs.values()} == {"parallel_non_exporting"}
    assert ins.sites["bld"].interconnection_class == "parallel_non_exporting"
    assert sum(r.bidirectional for r in regs.values()) == bidirectional
    own = [m for m in ins.readings if m.site_id == "bld"]
    start, end = ins.period()
    scored = [m for m in own if start < m.timestamp <= end]
    assert len(scored) == 31 * 96 - 4  # March 2019 in local time: 31 days less the DST hour, 15-minute readings
    assert max(m.active_power_kw for m in scored) > 300.0 > min(m.active_power_kw for m in scored) > 100.0
    assert ins.export_limit_kw == 0.0 and float(ins.settings["dispatch_site_demand_charge_per_kw"]) == 15.0
    (request,) = ins.signals
    assert request.import_limit_kw == 680.0 and request.valid_until - request.valid_from == 2 * 3_600_000


@pytest.mark.slow
def test_site_readings_of_the_warm_up_and_after_the_end_reach_the_worker_in_time() -> None:
    """A site meter's readings are held back to be given with the twins' power; before the twins start (the warm-up)
    and after they end they go in time order with the feeder's, not after them (then late: dead-lettered)."""
    import dataclasses

    from streams.backtest.closedloop import run_closed_loop, run_settings
    from streams.contracts.topics import METER_READINGS

    ins = from_scenario(load_scenario(REPO_ROOT / "scenarios" / "month-v2b-building.yaml"))
    start, _ = ins.period()
    day = dataclasses.replace(ins, end_ms=start + 24 * 3_600_000)
    run = run_closed_loop(day, run_settings(day))
    assert run.rejected == {}
    assert run.accepted[METER_READINGS] == len(ins.readings)  # the week before, the day, the rest of the month
