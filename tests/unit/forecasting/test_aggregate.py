"""Event-time interval aggregation: shares, duplicates, late data, gaps, grace, restarts."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from streams.forecasting.aggregate import IntervalAggregator

MIN = 60_000
Q = 15 * MIN
T0 = 1_700_000_100_000 // Q * Q  # an interval boundary


@dataclass(frozen=True)
class R:
    meter_id: str
    timestamp: int
    active_power_kw: float


def test_reading_counts_in_the_interval_its_period_ends_in() -> None:
    agg = IntervalAggregator(Q, 0)
    assert agg.add(R("m1", T0 + Q, 4.0)) == "accepted"  # period T0..T0+Q
    assert agg.add(R("m1", T0 + Q + 1, 8.0)) == "accepted"  # next interval opens
    closed = agg.advance()
    assert [(c.start, c.end, c.kw) for c in closed] == [(T0, T0 + Q, 4.0)]


def test_sum_of_meter_means_scaled_by_reporting_share() -> None:
    agg = IntervalAggregator(Q, 0)
    for m in ("a", "b", "c", "d"):
        agg.add(R(m, T0 + Q, 1.0))
    agg.add(R("a", T0 + 2 * Q, 2.0))  # a: 5-minute readings 2 and 4 -> mean 3
    agg.add(R("a", T0 + Q + 5 * MIN, 4.0))
    agg.add(R("b", T0 + 2 * Q, 1.0))
    agg.add(R("a", T0 + 3 * Q, 0.0))  # moves the watermark past interval 2
    first, second = agg.advance()
    assert first.kw == pytest.approx(4.0) and first.share == 1.0 and first.reported == 4 and first.known == 4
    # meters c, d missing: (3 + 1) / (2 / 4)
    assert second.reported == 2 and second.known == 4
    assert second.share == pytest.approx(0.5)
    assert second.kw == pytest.approx(8.0)


def test_duplicates_counted_once() -> None:
    agg = IntervalAggregator(Q, 0)
    assert agg.add(R("a", T0 + 5 * MIN, 2.0)) == "accepted"
    assert agg.add(R("a", T0 + 5 * MIN, 100.0)) == "duplicate"
    assert agg.add(R("a", T0 + 10 * MIN, 4.0)) == "accepted"
    agg.add(R("a", T0 + 2 * Q, 0.0))
    (c,) = agg.advance()
    assert c.kw == pytest.approx(3.0)


def test_late_readings_within_grace_count_and_after_grace_are_late() -> None:
    agg = IntervalAggregator(Q, 5 * MIN)
    agg.add(R("a", T0 + Q, 1.0))
    agg.add(R("b", T0 + Q, 1.0))
    agg.add(R("a", T0 + Q + 5 * MIN, 1.0))  # watermark at end + grace: interval still open
    assert agg.advance() == []
    assert agg.add(R("c", T0 + Q, 1.0)) == "accepted"  # late but within grace
    agg.add(R("a", T0 + Q + 6 * MIN, 1.0))  # watermark passes end + grace: closes
    (c,) = agg.advance()
    assert c.reported == 3 and c.kw == pytest.approx(3.0)
    assert agg.add(R("d", T0 + Q, 1.0)) == "late"
    assert agg.add(R("d", T0 + 1, 1.0)) == "late"


def test_lateness_does_not_depend_on_when_advance_is_called() -> None:
    agg = IntervalAggregator(Q, 0)
    agg.add(R("a", T0 + Q, 1.0))
    agg.add(R("a", T0 + 3 * Q, 1.0))  # watermark passes interval 1 and 2, advance not called yet
    assert agg.add(R("b", T0 + Q, 1.0)) == "late"
    assert agg.add(R("b", T0 + 2 * Q, 1.0)) == "late"


def test_gaps_are_emitted_as_missing_intervals() -> None:
    agg = IntervalAggregator(Q, 0)
    agg.add(R("a", T0 + Q, 1.0))
    agg.add(R("a", T0 + 4 * Q, 2.0))
    agg.add(R("a", T0 + 5 * Q, 2.0))
    closed = agg.advance()
    assert [c.start for c in closed] == [T0, T0 + Q, T0 + 2 * Q, T0 + 3 * Q]
    assert [c.missing for c in closed] == [False, True, True, False]
    assert closed[1].share == 0.0 and closed[1].kw is None and closed[1].known == 1


def test_long_gap_emits_at_most_max_gap_intervals() -> None:
    agg = IntervalAggregator(Q, 0, max_gap_intervals=3)
    agg.add(R("a", T0 + Q, 1.0))
    agg.add(R("a", T0 + 2 * Q, 1.0))
    assert [c.start for c in agg.advance()] == [T0]
    agg.add(R("a", T0 + 100 * Q, 1.0))
    agg.add(R("a", T0 + 101 * Q, 1.0))
    closed = agg.advance()
    assert [c.start for c in closed] == [T0 + k * Q for k in (1, 96, 97, 98, 99)]
    assert [c.missing for c in closed] == [False, True, True, True, False]


def test_meters_expire_from_the_known_set() -> None:
    agg = IntervalAggregator(Q, 0, meter_expiry_ms=2 * Q)
    agg.add(R("a", T0 + Q, 1.0))
    agg.add(R("b", T0 + Q, 1.0))
    for k in range(2, 6):
        agg.add(R("a", T0 + k * Q, 1.0))
    closed = agg.advance()
    assert [c.known for c in closed] == [2, 2, 1, 1]
    assert closed[-1].share == 1.0


def test_advance_is_deterministic_and_pickle_restores_state() -> None:
    readings = [R(f"m{i % 3}", T0 + 60_000 * (i + 1), float(i % 7)) for i in range(200)]
    one = IntervalAggregator(Q, 2 * MIN)
    out_one = []
    for r in readings:
        one.add(r)
        out_one += one.advance()
    two = IntervalAggregator(Q, 2 * MIN)
    out_two = []
    for i, r in enumerate(readings):
        two.add(r)
        if i == 120:
            two = pickle.loads(pickle.dumps(two))
        if i % 17 == 0:
            out_two += two.advance()
    out_two += two.advance()
    assert out_one == out_two
    assert len(out_one) == 200 // 15 - 1 or len(out_one) == 200 // 15


def test_rejects_interval_that_does_not_divide_a_day() -> None:
    with pytest.raises(ValueError):
        IntervalAggregator(7 * MIN, 0)


def test_a_meter_reading_less_often_than_the_interval_fills_every_interval_of_its_period() -> None:
    agg = IntervalAggregator(5 * MIN, 0)
    for k, kw in enumerate([10.0, 20.0, 30.0, 40.0], start=1):  # 15-minute means, stamped at each period's end
        assert agg.add(R("a", T0 + k * Q, kw)) == "accepted"
    closed = agg.advance()  # up to the interval ending at the watermark, which is still open
    # the meter's period is known from its third reading on: the first two count in their own intervals only
    assert [(c.start - T0) // MIN for c in closed] == list(range(10, 55, 5))
    assert [c.kw for c in closed] == [10.0, None, None, 20.0, 30.0, 30.0, 30.0, 40.0, 40.0]
    assert closed[-1].reported == 1 and closed[-1].share == 1.0
    assert agg.add(R("a", T0 + 4 * Q, 1.0)) == "duplicate"
    # after a silence longer than its spacing the meter's readings are missing: the gap stays a gap
    agg.add(R("a", T0 + 6 * Q, 50.0))
    agg.add(R("a", T0 + 7 * Q, 60.0))
    later = agg.advance()
    assert [c.kw for c in later] == [40.0, None, None, None, None, None, 50.0, 60.0, 60.0]
    # a checkpoint keeps the spacings (and one written before them reads back without)
    again = pickle.loads(pickle.dumps(agg))
    assert again.add(R("a", T0 + 8 * Q, 70.0)) == "accepted" and [c.kw for c in again.advance()] == [60.0, 70.0, 70.0]
