"""The contract every forecasting estimator passes.

River estimators (the project's ``OnlineQuantile`` and the river model the default family is built from) pass
river's own estimator checks. Every learning horizon family learns a linear target from the feature matrices,
is deterministic, survives a pickle round trip bit-identically, and depends only on its constructor arguments.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from river import checks, ensemble, linear_model, optim
from river.checks import common

from streams.forecasting.ensemble import MemberForecast
from streams.forecasting.features import FEATURES
from streams.forecasting.models import MODEL_FAMILIES, PRIOR_FEATURE, make_model
from streams.forecasting.quantiles import BinnedQuantile, OnlineQuantile

GENERAL_CHECKS = [
    common.check_repr, common.check_str, common.check_tags, common.check_clone_same_class,
    common.check_clone_is_idempotent, common.check_init_has_default_params_for_tests,
    common.check_init_default_params_are_not_mutable, common.check_doc, common.check_clone_changes_memory_addresses,
    common.check_mutate_can_be_idempotent, common.check_pickling_supports_roundtrip,
    common.check_repr_roundtrips_clone, common.check_clone_with_new_params_applies,
    common.check_get_params_matches_signature,
]
DATASET_CHECKS = [
    common.check_learn_one, common.check_pickling, common.check_shuffle_features_no_impact,
    common.check_predict_one_pure, common.check_predict_one_before_any_learn,
    common.check_no_state_aliasing_with_input, common.check_clone_is_independent,
]
RIVER_ESTIMATORS: dict[str, Callable[[], Any]] = {
    "OnlineQuantile": lambda: OnlineQuantile(0.9),
    "BinnedQuantile": lambda: BinnedQuantile(0.5, bins=3),
    "BayesianLinearRegression(smoothing)": lambda: linear_model.BayesianLinearRegression(
        alpha=1000.0, smoothing=0.999),
    "MemberForecast": lambda: MemberForecast("f0"),
    "EWARegressor(MemberForecast)": lambda: ensemble.EWARegressor(
        [MemberForecast("f0"), MemberForecast("f2")], loss=optim.losses.Absolute(), learning_rate=5.0),
}
LEARNING_FAMILIES = [f for f in MODEL_FAMILIES if not f.startswith("naive")]


def _regression_rows(n: int = 300, seed: int = 0) -> list[tuple[dict[str, float], float]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = x @ np.array([0.5, -1.0, 2.0, 0.1]) + rng.normal(0, 0.1, n)
    return [({f"f{j}": float(v) for j, v in enumerate(row)}, float(t)) for row, t in zip(x, y, strict=True)]


def _takes_a_dataset(check: Callable[..., None]) -> bool:
    return "dataset" in inspect.signature(getattr(check, "func", check)).parameters


def test_river_yields_no_check_we_skip() -> None:
    """Our lists hold every model-only check river yields for these estimators (river grows; we follow). The checks
    river runs on its datasets (yielded only where scikit-learn is installed) are ours to choose: DATASET_CHECKS, on
    our own rows."""
    for make in RIVER_ESTIMATORS.values():
        yielded = []
        try:
            for check in checks.yield_checks(make()):
                yielded.append(check)
        except ModuleNotFoundError:  # river's dataset checks load scikit-learn datasets; we pass our own rows
            pass
        model_only = {c.__name__ for c in yielded if not _takes_a_dataset(c)}
        assert model_only and model_only <= {c.__name__ for c in GENERAL_CHECKS}


@pytest.mark.parametrize("name", list(RIVER_ESTIMATORS))
@pytest.mark.parametrize("check", GENERAL_CHECKS + DATASET_CHECKS, ids=lambda c: c.__name__)
def test_river_estimator_passes_river_checks(name: str, check: Callable[..., None]) -> None:
    model = RIVER_ESTIMATORS[name]()
    if check in DATASET_CHECKS:
        check(model, _regression_rows())
    else:
        check(model)


def test_online_quantile_coverage_tracks_level_under_drift() -> None:
    rng = np.random.default_rng(3)
    for level in (0.025, 0.1, 0.9, 0.975):
        q = OnlineQuantile(level)
        below = 0
        n = 20_000
        for i in range(n):
            scale = 1.0 if i < n // 2 else 4.0  # the residuals' spread jumps half-way
            y = float(rng.normal(0, scale))
            below += y <= q.predict_one({})
            q.learn_one({}, y)
        assert abs(below / n - level) < 0.01, (level, below / n)


def test_online_quantile_rejects_bad_level() -> None:
    with pytest.raises(ValueError):
        OnlineQuantile(1.0)


def test_binned_quantile_tracks_each_bins_median_and_starts_from_the_prior() -> None:
    rng = np.random.default_rng(5)
    q = BinnedQuantile(0.5, bins=3, lr=0.02)
    assert q.predict_one({"bin": 2, "prior": 0.7}) == 0.7  # no target yet: the prior
    centres = (-1.0, 0.0, 3.0)
    for i in range(30_000):
        b = i % 2  # bin 2 never learns
        q.learn_one({"bin": b, "prior": 0.25}, float(centres[b] + rng.exponential(1.0) - 1.0))
    # the medians of exp(1) - 1 + centre: centre + ln 2 - 1 (not the mean, the centre)
    for b in (0, 1):
        assert abs(q.predict_one({"bin": b}) - (centres[b] + np.log(2) - 1)) < 0.08, b
    assert q.predict_one({"bin": 2, "prior": 0.7}) == 0.7
    assert np.array_equal(q.predict_bins(np.array([0, 2]), np.array([9.0, 9.0])),
                          [q.predict_one({"bin": 0}), 9.0])
    first = BinnedQuantile(0.5, bins=2)
    first.learn_one({"bin": 1, "prior": 0.4}, 5.0)  # a bin's first target: it starts at the prior
    assert first.predict_one({"bin": 1}) == 0.4
    with pytest.raises(ValueError):
        first.learn_one({"bin": 2}, 1.0)
    with pytest.raises(ValueError):
        BinnedQuantile(0.5, bins=0)


def _matrices(n: int, horizon: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, horizon, len(FEATURES)))
    x[:, :, 0] = 1.0
    true = np.zeros(len(FEATURES))
    true[[0, 1, 2, PRIOR_FEATURE]] = (0.1, 0.3, 0.2, 0.4)
    y = x[:, 0, :] @ true
    return x, y


def _run(model: Any, x: np.ndarray, y: np.ndarray, start: int = 0) -> list[np.ndarray]:
    valid = np.ones(x.shape[1], dtype=bool)
    out = []
    for i in range(start, len(x)):
        model.learn(x[i], float(y[i]), valid, i)
        out.append(model.predict(x[i]))
    return out


@pytest.mark.parametrize("family", LEARNING_FAMILIES)
def test_horizon_model_learns_a_linear_target(family: str) -> None:
    horizon = 8
    x, y = _matrices(3000, horizon)
    x[:] = x[:, :1, :]  # every horizon sees the same row: the target is a function of it
    model = make_model(family, len(FEATURES), horizon, forgetting=0.999)
    assert model is not None and isinstance(model.model_id, str)
    before = np.abs(model.predict(x[0]) - y[0]).mean()
    preds = _run(model, x, y)
    assert all(p.shape == (horizon,) and np.isfinite(p).all() for p in preds)
    after = np.mean([np.abs(p - t).mean() for p, t in zip(preds[-200:], y[-200:], strict=True)])
    assert after < 0.2 * before, (family, before, after)


@pytest.mark.parametrize("family", LEARNING_FAMILIES)
def test_horizon_model_is_deterministic_and_restores_bit_identically(family: str) -> None:
    x, y = _matrices(400, 16)
    a = make_model(family, len(FEATURES), 16)
    b = make_model(family, len(FEATURES), 16)
    _run(a, x[:200], y[:200])
    _run(b, x[:200], y[:200])
    restored = pickle.loads(pickle.dumps(a))
    for p, q, r in zip(_run(a, x, y, 200), _run(b, x, y, 200), _run(restored, x, y, 200), strict=True):
        assert np.array_equal(p, q) and np.array_equal(p, r)


@pytest.mark.parametrize("family", LEARNING_FAMILIES)
def test_horizon_model_ignores_the_environment(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _matrices(100, 4)
    plain = _run(make_model(family, len(FEATURES), 4, forgetting=0.99), x, y)
    for var in ("EVGRID_FORECAST_FORGETTING", "EVGRID_FORECAST_MODEL", "EVGRID_FORECAST_COVERAGE"):
        monkeypatch.setenv(var, "0.5")
    env = _run(make_model(family, len(FEATURES), 4, forgetting=0.99), x, y)
    assert all(np.array_equal(p, q) for p, q in zip(plain, env, strict=True))
