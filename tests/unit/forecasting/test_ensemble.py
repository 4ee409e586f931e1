"""``river-ewa``: river's EWARegressor per horizon weights member horizon models by their errors."""

from __future__ import annotations

import numpy as np
import pytest

from streams.forecasting.ensemble import EWAEnsemble
from streams.forecasting.features import FEATURES
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig
from streams.forecasting.models import PRIOR_FEATURE, RiverBayesLinear
from streams.pipeline import statecodec
from tests.unit.forecasting.conftest import intervals, synthetic_load


class Biased:
    """A member that forecasts the prior feature plus a constant bias and never learns."""

    model_id = "biased"

    def __init__(self, bias: float) -> None:
        self.bias = bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x[:, PRIOR_FEATURE] + self.bias

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        del x, y, valid, t


def test_weights_go_to_the_member_that_forecasts_each_horizon_better() -> None:
    horizon = 4
    rng = np.random.default_rng(5)
    ens = EWAEnsemble([Biased(0.3), Biased(0.0), Biased(-0.1)], horizon, learning_rate=5.0)
    assert np.allclose(ens.weights, 1 / 3)
    valid = np.array([True, True, True, False])  # horizon 4 never valid: its weights stay where they began
    for t in range(500):
        x = rng.uniform(0, 1, size=(horizon, len(FEATURES)))
        ens.learn(x, float(x[0, PRIOR_FEATURE]), valid, t)
    assert (ens.weights[:3, 1] > 0.99).all()
    assert np.allclose(ens.weights[3], 1 / 3)
    x = rng.uniform(0, 1, size=(horizon, len(FEATURES)))
    assert np.allclose(ens.predict(x)[:3], x[:3, PRIOR_FEATURE], atol=0.01)


def test_ensemble_needs_two_members_and_a_known_loss() -> None:
    one = [RiverBayesLinear(len(FEATURES), 4)]
    with pytest.raises(ValueError, match="two members"):
        EWAEnsemble(one, 4)
    with pytest.raises(ValueError, match="unknown loss"):
        EWAEnsemble(one * 2, 4, loss="huber")


def test_river_ewa_forecaster_checkpoints_bit_identically() -> None:
    fc = FeederForecaster(ForecasterConfig(model="river-ewa", horizon=16))
    load = synthetic_load(9, seed=4)
    for iv in intervals(load[:-6]):
        fc.update(iv)
    assert fc.model_id == "river-ewa-v1"
    back = statecodec.decode(statecodec.encode(fc))
    for iv in intervals(load)[-6:]:
        assert np.array_equal(fc.update(iv).kw, back.update(iv).kw)
