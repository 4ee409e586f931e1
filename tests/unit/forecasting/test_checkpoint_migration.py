"""Checkpoints of an older forecaster layout load through ``migrate`` and keep what they learned.

The fixtures ``tests/fixtures/forecaster_{river-blr,fls}_v1.bin`` were written by the build before the smoothed
day/week features (commit ``fcfa3a2^``: 15 features, a one-week history ring, ``river-blr-v1`` default) with that
build's codec, after 22 days of a synthetic 15-minute load (``git archive fcfa3a2^ streams`` into a directory,
then run the forecaster there and ``statecodec.encode`` it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streams.forecasting.features import FEATURES
from streams.forecasting.forecaster import MEDIAN_BINS, MEDIAN_BINS_PER_DAY, FeederForecaster, ForecasterConfig
from streams.forecasting.migrate import CheckpointMismatch, migrate
from streams.pipeline import statecodec
from tests.unit.forecasting.conftest import T0, Q, intervals, synthetic_load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
V1_CLOSED = 22 * 96  # intervals the v1 forecasters learned


def v1(model: str) -> FeederForecaster:
    fc = statecodec.decode((FIXTURES / f"forecaster_{model}_v1.bin").read_bytes())
    assert isinstance(fc, FeederForecaster)
    return fc


def test_a_v1_checkpoint_does_not_forecast_without_migration() -> None:
    fc = v1("river-blr")
    assert fc.model is not None and np.asarray(fc.model.w).shape[1] == 15 < len(FEATURES)  # type: ignore[attr-defined]
    with pytest.raises((AttributeError, ValueError)):  # attributes and matrices of another layout
        fc.update(intervals(synthetic_load(1), T0 + V1_CLOSED * Q)[0])


@pytest.mark.parametrize(("family", "model_id", "config_model"),
                         [("river-blr", "river-blr-v1", "river-blr-raw"), ("fls", "fls-v1", "fls")])
def test_a_v1_checkpoint_migrates_keeping_its_weights_history_and_quantiles(
        family: str, model_id: str, config_model: str) -> None:
    fc = v1(family)
    model = fc.model
    assert model is not None
    w_old = np.array(model.w)  # type: ignore[attr-defined]
    t_last = fc.state.t
    assert t_last is not None
    week = np.arange(t_last - fc.state.week + 1, t_last + 1)
    hist_old = fc.state.value(week)
    quant_old = [[q.predict_one({}) for q in row] for row in fc.quantiles]
    old_ring = fc.state.ring
    assert old_ring == fc.state.week + 1 and not np.isnan(hist_old).any()

    assert migrate(fc) is fc
    w = np.asarray(model.w)  # type: ignore[attr-defined]
    assert w.shape == (w_old.shape[0], len(FEATURES))
    assert np.array_equal(w[:, :15], w_old) and not w[:, 15:].any()
    assert fc.state.ring == 4 * fc.state.week + 1
    assert np.array_equal(fc.state.value(week), hist_old)
    assert np.isnan(fc.state.value(np.array([t_last - old_ring]))).all()  # older than the v1 ring held
    assert [[q.predict_one({}) for q in row] for row in fc.quantiles] == quant_old
    assert fc.model_id == model.model_id == model_id and fc.config.model == config_model
    assert fc.closed == V1_CLOSED
    assert fc.medians.bins == fc.config.horizon * MEDIAN_BINS and not fc.medians.n.any()  # hour medians: empty

    # it goes on learning and forecasting on the current features, within bounds
    more = synthetic_load(25, seed=7)[V1_CLOSED:]
    results = [fc.update(iv) for iv in intervals(more, T0 + V1_CLOSED * Q)]
    last = results[-1]
    assert np.isfinite(last.kw).all() and (last.kw >= 0).all() and (last.kw <= 2 * fc.peak_kw).all()
    assert np.asarray(model.w)[:, 15:].any()  # type: ignore[attr-defined]  # the new features are learned
    mae = np.mean([abs(r.kw[0] - v) for r, v in zip(results[:-1], more[1:], strict=True)])
    naive = np.mean(np.abs(more[96:] - more[:-96]))
    assert mae < naive

    # and the migrated forecaster is a current one: a checkpoint round trip is bit-identical and needs nothing
    back = migrate(statecodec.decode(statecodec.encode(fc)))
    nxt = intervals(synthetic_load(26, seed=7)[-96:], T0 + (V1_CLOSED + len(more)) * Q)
    for iv in nxt[:8]:
        assert np.array_equal(fc.update(iv).kw, back.update(iv).kw)


def learnt(seed: int, held_back: int) -> tuple[FeederForecaster, np.ndarray]:
    """A current forecaster that has learnt 9 synthetic days but their last ``held_back`` intervals, and the load."""
    fc = FeederForecaster(ForecasterConfig())
    load = synthetic_load(9, seed=seed)
    for iv in intervals(load[:-held_back]):
        fc.update(iv)
    return fc, load


def test_migrating_a_current_forecaster_changes_nothing() -> None:
    fc, load = learnt(seed=2, held_back=4)
    blob = statecodec.encode(fc)
    back = migrate(statecodec.decode(blob))
    assert statecodec.encode(back) == blob
    for iv in intervals(load, T0)[-4:]:
        assert np.array_equal(fc.update(iv).kw, back.update(iv).kw)


def test_a_checkpoint_before_the_hour_medians_forecasts_with_its_old_median_until_an_hour_has_residuals() -> None:
    fc, load = learnt(seed=4, held_back=1)
    old = statecodec.decode(statecodec.encode(fc))
    del old.__dict__["medians"]  # the layout before the hour medians
    with pytest.raises(AttributeError):
        old.update(intervals(load, T0)[-1])
    old = statecodec.decode(statecodec.encode(fc))
    del old.__dict__["medians"]
    migrate(old)
    assert old.medians.bins == old.config.horizon * MEDIAN_BINS and not old.medians.n.any()
    res = old.update(intervals(load, T0)[-1])
    st = old.state
    assert st.t is not None
    learned = int(st.time_bins(np.array([st.t]), MEDIAN_BINS_PER_DAY)[0])
    bins = st.time_bins(np.arange(st.t + 1, st.t + 1 + old.config.horizon), MEDIAN_BINS_PER_DAY)
    raw = old.issued_kw[st.t % (old.config.horizon + 1)].astype(float)
    prior = np.array([row[-1].predict_one({}) for row in old.quantiles]) * st.scale
    expected = np.clip(raw + prior, 0.0, 2 * st.peak)
    other = bins != learned  # hours no residual reached yet: the horizon-wide median, as before
    assert other.sum() > 80
    assert np.allclose(res.kw[other], expected[other], rtol=1e-6, atol=1e-6)
    # and the hour of the closed interval has started, at every horizon
    assert (old.medians.n[np.arange(old.config.horizon) * MEDIAN_BINS + learned] == 1).all()


def test_a_checkpoint_before_the_relative_bounds_keeps_its_quantiles_and_then_tracks_in_units_of_the_mae() -> None:
    fc, load = learnt(seed=6, held_back=4)
    old = statecodec.decode(statecodec.encode(fc))
    for row in old.quantiles:  # the layout before 2026-12-04: every tracker moved by absolute steps
        for q in row:
            del q.__dict__["relative"]
    before = [[q.predict_one({}) for q in row] for row in old.quantiles]
    migrate(old)
    assert [[q.predict_one({}) for q in row] for row in old.quantiles] == before
    assert all(q.relative for row in old.quantiles for q in row[:-1])
    assert not any(row[-1].relative for row in old.quantiles)  # the hour medians' prior: the point forecast is kept
    for iv in intervals(load, T0)[-4:]:  # and it goes on exactly as a forecaster of this build
        a, b = fc.update(iv), old.update(iv)
        assert np.array_equal(a.kw, b.kw)
        assert all(np.array_equal(a.bands[c][k], b.bands[c][k]) for c in a.bands for k in (0, 1))


def test_a_layout_this_build_does_not_know_is_refused() -> None:
    fc = FeederForecaster(ForecasterConfig())
    fc.update(intervals(synthetic_load(1))[0])
    assert fc.model is not None
    fc.model.w = np.zeros((8, len(FEATURES) + 2))  # type: ignore[attr-defined]  # a later build's features
    with pytest.raises(CheckpointMismatch, match="features"):
        migrate(fc)
    with pytest.raises(CheckpointMismatch):
        migrate("not a forecaster")  # type: ignore[arg-type]
