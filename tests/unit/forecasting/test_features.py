"""Feature matrices: what a learning row may see, and the smoothed load features."""

from __future__ import annotations

import numpy as np

from streams.forecasting.calendar import LocalCalendar
from streams.forecasting.features import FEATURES, SMOOTH_SLOTS, FeatureState
from tests.unit.forecasting.conftest import T0, Q, synthetic_load

SMOOTH = [FEATURES.index("smooth_day"), FEATURES.index("smooth_week")]


def _state(values: np.ndarray) -> FeatureState:
    st = FeatureState(LocalCalendar(Q, "UTC", None), horizon=96)
    for i, v in enumerate(values):
        st.record(T0 // Q + i, float(v))
    return st


def test_learning_rows_smooth_only_loads_known_when_the_row_was_issued() -> None:
    load = synthetic_load(30, seed=3)
    a = _state(load)
    changed = load.copy()
    changed[-40:] *= 3.0  # the last 40 intervals differ
    b = _state(changed)
    t = T0 // Q + len(load)  # the next target; row h - 1 was issued at t - h
    xa, valid = a.learn_matrix(t)
    xb, _ = b.learn_matrix(t)
    h = np.arange(1, 97)
    blind = valid & (h > 40)  # issued before the changed intervals
    sees = valid & (h <= 40 - 96 + SMOOTH_SLOTS)  # nothing: every day window of a short horizon is older
    assert blind.sum() == 56 and not sees.any()
    assert np.allclose(xa[blind][:, SMOOTH] * a.scale, xb[blind][:, SMOOTH] * b.scale)


def test_smooth_day_is_the_mean_of_the_window_over_the_last_days() -> None:
    load = synthetic_load(30, seed=4)
    st = _state(load)
    targets, x = st.forecast_matrix()
    n = len(load)
    i = 10  # target n + 10 (step 11): the +-2 slot window, 1..7 days back
    expect = np.mean([load[n + i - 96 * k + j] for k in range(1, 8) for j in range(-2, 3)])
    assert np.isclose(x[i, SMOOTH[0]] * st.scale, expect)
    expect_w = np.mean([load[n + i - 672 * k + j] for k in range(1, 4) for j in range(-2, 3)])
    assert np.isclose(x[i, SMOOTH[1]] * st.scale, expect_w)
    assert targets[i] == T0 // Q + n + i
