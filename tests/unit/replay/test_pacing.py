"""Event-time pacing and the replay summary."""

from __future__ import annotations

import pytest

from streams.replay.pacing import EventPacer, ReplaySummary


def test_speed_scales_event_time() -> None:
    p = EventPacer(speed=10.0)
    assert p.delay(1_000_000, wall_s=50.0) == 0.0
    assert p.delay(1_010_000, wall_s=50.0) == pytest.approx(1.0)  # 10 s of event time at 10x
    assert p.delay(1_010_000, wall_s=50.4) == pytest.approx(0.6)
    assert p.delay(1_020_000, wall_s=60.0) == 0.0  # late: send at once


def test_backwards_event_time_is_not_delayed() -> None:
    p = EventPacer(speed=1.0)
    p.delay(10_000, 0.0)
    assert p.delay(5_000, 0.0) == 0.0


@pytest.mark.parametrize("speed", [None, 0.0, -1.0])
def test_as_fast_as_possible(speed: float | None) -> None:
    p = EventPacer(speed=speed)
    assert p.delay(0, 0.0) == 0.0 and p.delay(10**9, 0.0) == 0.0


def test_summary_figures() -> None:
    s = ReplaySummary(records=100, seconds=2.0, min_event_ms=1000, max_event_ms=61_000)
    assert s.rate == 50.0 and s.span_ms == 60_000
    assert s.to_dict()["rate_per_s"] == 50.0
    assert ReplaySummary().rate == 0.0 and ReplaySummary().span_ms == 0
