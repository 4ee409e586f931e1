"""The 15-minute correction from the latest loads (``streams/forecasting/shortterm.py``)."""

from __future__ import annotations

import numpy as np

from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig
from streams.forecasting.migrate import migrate
from streams.forecasting.shortterm import BLOCKS, SHORT_FEATURES, ShortTermCorrection
from streams.pipeline import statecodec
from tests.unit.forecasting.conftest import T0, intervals, synthetic_load


def test_it_learns_a_residual_that_follows_the_last_delta() -> None:
    rng = np.random.default_rng(0)
    st = ShortTermCorrection()
    errs_before, errs_after = [], []
    for t in range(6000):
        y0, y1, y2 = rng.normal(0.5, 0.05, 3)
        x = st.features(0.5, (y0, y1, y2), (0.5, 0.5), (0.5, 0.5))
        corr = st.correction(t + 1, t % BLOCKS, x, 0.5, 100.0)
        resid = 0.6 * (y0 - y1) + rng.laplace(0, 0.005)  # the next residual follows the last delta
        (errs_before if t < 500 else errs_after).append(abs(resid - corr))
        st.learn(t + 1, (0.5 + resid) * 100.0)
    assert set(x) == set(SHORT_FEATURES)
    assert np.mean(errs_after[-1000:]) < 0.5 * np.mean(errs_before)
    # learnt on the delta, not on noise features (the day / week deltas were 0 throughout)
    w = st.models[0].weights
    assert w["delta"] + w["delta_up"] / 2 > 0.3


def test_a_missing_or_unlearnt_target_learns_nothing_and_resets_the_last_error() -> None:
    st = ShortTermCorrection()
    x = st.features(0.5, (0.6, 0.5, 0.5), (0.5, 0.5), (0.5, 0.5))
    st.correction(10, 0, x, 0.5, 1.0)
    st.learn(10, 0.7)
    assert st.error_last == np.float64(0.7 - 0.5) and st.models[0].weights
    before = dict(st.models[1].weights)
    st.correction(11, 1, x, 0.5, 1.0)
    st.learn(12, 0.9)  # not the pending target
    assert st.error_last == 0.0 and dict(st.models[1].weights) == before
    st.correction(13, 1, x, 0.5, 1.0)
    st.learn(13, None)
    assert st.error_last == 0.0 and dict(st.models[1].weights) == before
    # unknown loads count as no change
    assert st.features(np.nan, (np.nan, np.nan, np.nan), (np.nan, 1.0), (1.0, np.nan)) == dict.fromkeys(
        SHORT_FEATURES, 0.0)


def test_it_corrects_only_the_15_minute_forecast_and_restores_bit_identically() -> None:
    load = synthetic_load(10, seed=5)
    fc = FeederForecaster(ForecasterConfig())
    plain = FeederForecaster(ForecasterConfig())
    plain.short_term = None
    for iv in intervals(load[:-2]):
        res = fc.update(iv)
        ref = plain.update(iv)
    assert fc.short_term is not None and any(m.weights for m in fc.short_term.models)
    assert np.array_equal(res.kw[1:], ref.kw[1:]) and res.kw[0] != ref.kw[0]
    back = statecodec.decode(statecodec.encode(fc))
    for iv in intervals(load, T0)[-2:]:
        assert np.array_equal(fc.update(iv).kw, back.update(iv).kw)


def test_a_checkpoint_before_the_correction_gains_it_with_zero_weights() -> None:
    load = synthetic_load(9, seed=6)
    fc = FeederForecaster(ForecasterConfig())
    for iv in intervals(load[:-1]):
        fc.update(iv)
    old = statecodec.decode(statecodec.encode(fc))
    del old.__dict__["short_term"]  # the layout before the 15-minute correction
    migrate(old)
    assert isinstance(old.short_term, ShortTermCorrection)
    assert not any(m.weights for m in old.short_term.models) and old.short_term.pending is None
    naive = FeederForecaster(ForecasterConfig(model="naive-day"))
    assert naive.short_term is None
    naive.__dict__.pop("short_term")
    assert migrate(naive).short_term is None
    without = statecodec.decode(statecodec.encode(fc))
    without.short_term = None
    iv = intervals(load, T0)[-1]
    assert np.array_equal(old.update(iv).kw, without.update(iv).kw)  # zero weights: no correction yet
    assert old.short_term.pending is not None
