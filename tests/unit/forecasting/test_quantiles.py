"""``OnlineQuantile`` after a transient: the tracker works in units of the running mean absolute residual."""

from __future__ import annotations

import numpy as np
import pytest

from streams.forecasting.quantiles import OnlineQuantile


@pytest.mark.parametrize("level", [0.025, 0.1, 0.9, 0.975])
def test_a_tail_pushed_out_by_large_early_residuals_comes_back_when_they_shrink(level: float) -> None:
    # a new feeder's first half-day: residuals scaled by a running peak that has not grown yet are ~100 times the
    # later ones. Before 2026-12-04 the tails jumped with the large running MAE and came back by
    # lr * MAE * (1 - level) per residual with the later, small one: the 2.5 % and 97.5 % bounds stayed out for
    # the whole run (coverage 100 %; uci_aggregate's 95 % intervals covered 98-100 %).
    rng = np.random.default_rng(7)
    early = rng.normal(0.0, 1.0, 48)
    later = rng.normal(0.0, 0.01, 20_000)
    q = OnlineQuantile(level)
    for y in early:
        q.learn_one({}, float(y))
    below = []
    for y in later:
        below.append(float(y) <= q.predict_one({}))
        q.learn_one({}, float(y))
    share = float(np.mean(below[-10_000:]))
    assert abs(share - level) < 0.005, share
    # and the bound sits at the later residuals' quantile, not at the transient's
    z = {0.025: -1.96, 0.1: -1.2816, 0.9: 1.2816, 0.975: 1.96}[level]
    assert q.predict_one({}) == pytest.approx(0.01 * z, rel=0.25)


def test_the_tracker_follows_a_shrinking_scale_at_once() -> None:
    # the estimate is a multiple of the running mean absolute residual: when the residuals shrink tenfold the
    # 90 % bound shrinks with them within the MAE's memory, without waiting for lr-sized steps
    rng = np.random.default_rng(11)
    q = OnlineQuantile(0.9, lr=0.02, memory=200)
    for y in rng.normal(0.0, 1.0, 5_000):
        q.learn_one({}, float(y))
    assert q.predict_one({}) == pytest.approx(1.2816, rel=0.2)
    for y in rng.normal(0.0, 0.1, 1_000):
        q.learn_one({}, float(y))
    assert q.predict_one({}) == pytest.approx(0.12816, rel=0.25)
