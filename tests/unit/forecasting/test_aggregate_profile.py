"""benchmarks/forecast_eval_profiles.py's ``uci_aggregate``: many weeks of one house laid on each target week."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.unit.forecasting.conftest import benchmark


@pytest.fixture(scope="module")
def profiles() -> Any:
    return benchmark("forecast_eval_profiles")


def _house() -> pd.Series:
    """Per minute from Monday 2006-12-18 for three years: week k's minute m reads 1000 k + m (k from 0)."""
    idx = pd.date_range("2006-12-18", "2009-12-28", freq="min", inclusive="left")
    minute = np.arange(len(idx))
    kw = pd.Series(1000.0 * (minute // (7 * 1440)) + minute % (7 * 1440), index=idx)
    kw.iloc[10 * 7 * 1440 + 5: 10 * 7 * 1440 + 5 + 500] = np.nan  # week 10: 5 % missing, never used
    return kw


def test_each_target_week_sums_the_nearest_clean_weeks_by_season_weekday_aligned(profiles: Any) -> None:
    kw = _house()
    homes = 3
    total, used = profiles.season_aggregate(kw, 2008, homes=homes, seed=1)
    weeks = profiles.clean_weeks(kw)
    assert pd.Timestamp("2007-02-26") not in weeks  # week 10
    start = pd.Timestamp("2006-12-18")
    for target, sources in used.items():
        assert len(sources) == homes == len(set(sources))
        far = max(profiles.week_distance(w, target) for w in sources)
        assert all(profiles.week_distance(w, target) >= far for w in weeks if w not in sources)
        ids = [(w - start).days // 7 for w in sources]
        week = total[(total.index >= target) & (total.index < target + pd.Timedelta(days=7))]
        if len(week):
            m = ((week.index - target) // pd.Timedelta(minutes=1)).to_numpy()
            assert np.allclose(week.to_numpy(), 1000.0 * sum(ids) + homes * m)  # same minute of the week
    assert total.index.min() == pd.Timestamp("2008-01-01") and total.index.max() < pd.Timestamp("2009-01-01")
