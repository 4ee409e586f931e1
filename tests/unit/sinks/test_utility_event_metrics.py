"""Utility notices (issue 21) reach InfluxDB through the monitor as ``utility_events`` points."""

from __future__ import annotations

from streams.contracts.models import UtilityEvent
from streams.settings import Settings
from streams.sinks.metrics import MEASUREMENTS
from streams.sinks.monitor_state import MonitorConfig, MonitorState

T = 1_767_571_200_000


def test_a_utility_event_is_one_point_at_its_event_time() -> None:
    state = MonitorState(MonitorConfig.from_settings(Settings()))
    ev = UtilityEvent(event_id="e", kind="backup_ended", feeder_id="F1", site_id="S1", charger_id="C1", at=T,
                      duration_s=900.0, message="grid-connected again")
    (p,) = state.observe(ev)
    assert p.to_line() == f"utility_events,feeder=F1,kind=backup_ended,site=S1 count=1i,duration_s=900.0 {T}"
    tags, fields = MEASUREMENTS["utility_events"]
    assert {k for k, _ in p.tags} <= set(tags) and {k for k, _ in p.fields} <= set(fields)
