"""benchmarks/forecast_nonlinear_ceiling.py: its inputs for a forecast are known when the forecast is issued."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streams.forecasting.calendar import LocalCalendar
from tests.unit.forecasting.conftest import benchmark

Q = 900_000
T0 = 1_704_067_200_000 // Q  # 2024-01-01 00:00 UTC, a Monday and a holiday in Germany


@pytest.fixture(scope="module")
def ceiling() -> Any:
    return benchmark("forecast_nonlinear_ceiling")


def _load(n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    slot = np.arange(n) % 96
    return 50 + 30 * np.sin(2 * np.pi * slot / 96) + rng.normal(0, 3, n)


def test_a_forecasts_inputs_do_not_change_when_later_loads_do(ceiling: Any) -> None:
    kw = _load(5 * 672)
    cal = LocalCalendar(Q, "Europe/Berlin", "DE")
    x, _ = ceiling.features(kw, T0, cal, "Europe/Berlin")
    issue = 4 * 672 + 37  # the target is interval issue + 1
    later = kw.copy()
    later[issue + 1:] += 100.0  # the target and everything after it
    y, _ = ceiling.features(later, T0, cal, "Europe/Berlin")
    np.testing.assert_array_equal(x[: issue + 1], y[: issue + 1])
    assert not np.allclose(x[issue + 1], y[issue + 1], equal_nan=True)  # the next issue sees the changed load


def test_the_same_slot_a_week_back_is_the_targets_slot_not_the_issues(ceiling: Any) -> None:
    kw = np.arange(3 * 672, dtype=float)  # load = interval number: every difference is exact
    x, _ = ceiling.features(kw, T0, LocalCalendar(Q, "UTC", None), "UTC")
    i = 2 * 672 + 10
    cols = ceiling.LAGS + 2 + 3  # after the changes, their two sizes and hour, slot, day type
    scale = kw[: i + 1].max()
    # one day back: the target's slot (i + 1 - 96) against the last load (i), then that slot's own change
    assert x[i, cols] == pytest.approx((kw[i + 1 - 96] - kw[i]) / scale)
    assert x[i, cols + 1] == pytest.approx((kw[i + 1 - 96] - kw[i - 96]) / scale)
    assert x[i, cols + 2] == pytest.approx((kw[i + 1 - 672] - kw[i]) / scale)


def test_day_type_and_slot_are_the_targets_local_ones(ceiling: Any) -> None:
    kw = _load(672)
    x, months = ceiling.features(kw, T0, LocalCalendar(Q, "Europe/Berlin", "DE"), "Europe/Berlin")
    hour, slot, daytype = x[:, ceiling.LAGS + 2], x[:, ceiling.LAGS + 3], x[:, ceiling.LAGS + 4]
    # issue after 2024-01-01 00:00-00:15 UTC: the target starts 00:15 UTC = 01:15 Berlin, New Year's Day
    assert (hour[0], slot[0], daytype[0]) == (1, 5, 2)
    tuesday = 96 - 4 - 1 + 8  # the target 2024-01-02 02:00 Berlin = 01:00 UTC, interval 100
    assert (hour[tuesday], slot[tuesday], daytype[tuesday]) == (2, 8, 0)
    assert set(months.tolist()) == {1}
