"""A feeder's checkpoint depends on its fleet, not on elapsed time: 90 days in-process through FeederWorker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.backtest.inprocess import run_in_process
from streams.backtest.inputs import from_flags
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings
from tests.fixtures.long_sessions import write_sessions

DAY_MS = 86_400_000


@pytest.mark.slow
def test_checkpoint_stops_growing_after_the_arrival_window_over_90_days(tmp_path: Path) -> None:
    inputs = from_flags(write_sessions(tmp_path / "s.csv", days=90, chargers=12), step_ms=30 * 60_000)
    settings = Settings(interval_minutes=30)
    start = min(s.arrival for s in inputs.sessions) // DAY_MS * DAY_MS
    marks, sizes, held = [7, 35, 60, 86], {}, {}

    def observe(worker: FeederWorker, event_ms: int) -> None:
        while marks and event_ms >= start + marks[0] * DAY_MS:
            day = marks.pop(0)
            sizes[day], held[day] = max(worker.state_bytes.values()), worker.held_total()

    out = run_in_process(inputs, settings, batch=200, observe=observe, keep_outputs=False)
    assert len(out["evgrid.setpoints"]) > 1000 and set(sizes) == {7, 35, 60, 86}
    assert sizes[86] <= 1.08 * sizes[35] and sizes[60] <= 1.08 * sizes[35], sizes  # flat after the 28-day window
    assert sizes[86] < 64_000, sizes
    assert max(held.values()) < 50, held  # in memory too, telemetry is applied as it comes
