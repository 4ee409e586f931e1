"""Online horizon models: one linear model per horizon group, applied to a whole feature matrix at once.

Horizons are grouped (1, 2, 3-4, 5-8, 9-16, ...): a group's model learns from every horizon in it and
forecasts all of them, so a 96-step forecast is one matrix product. Families:

``river-blr``
    ``river.linear_model.BayesianLinearRegression`` with ``smoothing`` (an exact recursive update with
    forgetting) per group, learning a few valid rows of its group per interval; it learns the departure of
    the target from the daily profile, so before learning it forecasts the profile, in log space. The default.
``river-blr-raw``
    The same on the linear target (the former default).
``fls``
    Baseline: hand-written forgetting least squares (exponentially weighted ridge regression, solved exactly each
    step), ``forgetting`` 0.999 = a ~2-week memory at 15 minutes.
``river-linear``
    ``river.linear_model.LinearRegression`` (SGD, clipped gradients, no online scaling: load features are
    already divided by the running peak) per group, learning one row of its group per step; its weights are
    read and applied to the matrix.
``naive-day``, ``naive-week``
    Seasonal naive (no learning): the load one day / one week before the target.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["MODEL_FAMILIES", "ForgettingLeastSquares", "HorizonModel", "RiverBayesLinear", "RiverLinear",
           "horizon_groups", "make_model"]

MODEL_FAMILIES = ("river-blr", "river-blr-raw", "river-ewa", "fls", "river-linear", "naive-day", "naive-week")
PRIOR_FEATURE = 4  # profile_day: the prior forecast before any learning
LEVEL_FEATURES = (1, 2, 3, 4, 8, 15, 16)  # lag_day, lag_week, profiles, last, smooth_day/_week: loads
LOG_OFFSET = 0.05  # log(load / peak + 0.05): the log target's floor, a twentieth of the running peak


def horizon_groups(horizon: int) -> np.ndarray:
    """Group index of each horizon 1..``horizon``: groups start at 1, 2, 3, 5, 9, 17, 33, 65, ..."""
    starts = [1, 2]
    while starts[-1] < horizon:
        starts.append(2 * starts[-1] - 1)
    starts = [s for s in starts if s <= horizon]
    return np.searchsorted(np.array(starts), np.arange(1, horizon + 1), side="right") - 1


class HorizonModel(Protocol):
    """What the forecaster needs from a model family."""

    model_id: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scaled forecasts for rows of ``x`` (row i = horizon i + 1)."""
        ...

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        """Learn scaled target ``y`` from rows of ``x`` (row i = horizon i + 1) where ``valid``."""
        ...


class ForgettingLeastSquares:
    """Exponentially weighted ridge regression per horizon group, regularised toward a prior.

    Each step: ``A = f A + sum_g w x x^T + (1 - f) r I``, ``b = f b + sum_g w x y + (1 - f) r w0`` with
    ``w = 1 / rows in the group``, then ``W = A^-1 b``. The ridge floor keeps ``A`` well conditioned when a
    feature stays constant (no wind-up) and pulls unused weights to the prior ``w0`` (= the daily profile).
    """

    model_id = "fls-v1"

    def __init__(self, n_features: int, horizon: int, forgetting: float = 0.999, ridge: float = 1.0) -> None:
        self.groups = horizon_groups(horizon)
        n_groups = int(self.groups.max()) + 1
        self.forgetting = forgetting
        self.ridge = ridge
        self.w0 = np.zeros(n_features)
        self.w0[PRIOR_FEATURE] = 1.0
        self.a = np.repeat(np.eye(n_features)[None] * ridge, n_groups, 0)
        self.b = np.repeat(self.w0[None] * ridge, n_groups, 0)
        self.w = np.repeat(self.w0[None], n_groups, 0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scaled forecasts for rows of ``x`` (row i = horizon i + 1)."""
        return np.einsum("ij,ij->i", x, self.w[self.groups[: len(x)]])

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        """One exponentially weighted update of every group from the valid rows."""
        del t
        g = self.groups[: len(x)]
        counts = np.bincount(g[valid], minlength=len(self.a)).astype(float)
        weight = np.where(valid, 1.0 / np.maximum(counts[g], 1.0), 0.0)
        xw = x * weight[:, None]
        f, r = self.forgetting, self.ridge
        n_groups, n_features = self.b.shape
        self.a *= f
        self.b *= f
        self.a += (1 - f) * r * np.eye(n_features)[None]
        self.b += (1 - f) * r * self.w0[None]
        onehot = np.zeros((len(x), n_groups))
        onehot[np.arange(len(x)), g] = 1.0
        self.a += np.einsum("ig,ij,ik->gjk", onehot, xw, x)
        self.b += onehot.T @ (xw * y)
        self.w = np.asarray(np.linalg.solve(self.a, self.b[..., None])[..., 0], dtype=np.float64)


class RiverLinear:
    """``river.linear_model.LinearRegression`` per horizon group; weights read back for matrix forecasts."""

    model_id = "river-linear-v1"

    def __init__(self, n_features: int, horizon: int, lr: float = 0.01, l2: float = 1e-4,
                 clip_gradient: float = 1.0) -> None:
        from river import linear_model, optim

        self.groups = horizon_groups(horizon)
        n_groups = int(self.groups.max()) + 1
        self.names = [f"x{j}" for j in range(1, n_features)]  # column 0 is the intercept
        self.models = []
        for _ in range(n_groups):
            model = linear_model.LinearRegression(
                optimizer=optim.SGD(lr), l2=l2, intercept_lr=lr, clip_gradient=clip_gradient,
                initializer=optim.initializers.Zeros())
            self.models.append(model)
        self.w = np.zeros((n_groups, n_features))
        self.w[:, PRIOR_FEATURE] = 1.0
        for model in self.models:
            model.learn_one(dict.fromkeys(self.names, 0.0), 0.0)  # materialise the weights
            model._weights[self.names[PRIOR_FEATURE - 1]] = 1.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scaled forecasts for rows of ``x`` (row i = horizon i + 1)."""
        return np.einsum("ij,ij->i", x, self.w[self.groups[: len(x)]])

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        """Each group learns one of its valid rows, cycling through its horizons with ``t``."""
        g = self.groups[: len(x)]
        for gi, model in enumerate(self.models):
            rows = np.flatnonzero((g == gi) & valid)
            if rows.size == 0:
                continue
            row = x[rows[t % rows.size]]
            model.learn_one(dict(zip(self.names, row[1:].tolist(), strict=True)), y)
            self.w[gi, 0] = model.intercept
            self.w[gi, 1:] = [model.weights.get(n, 0.0) for n in self.names]


class RiverBayesLinear:
    """``river.linear_model.BayesianLinearRegression`` with forgetting, one per horizon group.

    Each closed interval, a group learns ``rows_per_step`` of its valid rows with ``learn_one`` (evenly spaced
    over its horizons, the offset turning with ``t``), so its ``smoothing`` is ``forgetting ** (1 / rows)``:
    every group forgets at ``forgetting`` per interval. The target is the departure from the daily profile
    (feature ``PRIOR_FEATURE``), so the zero prior mean forecasts the profile. Forecasts use the posterior mean
    weights, read through ``predict_one`` on unit vectors after each update.

    With ``log_target`` the target and the load-level features (``LEVEL_FEATURES``) are ``log(x + LOG_OFFSET)``
    (load / running peak): effects become relative, and the back-transformed forecast is near the conditional
    median rather than the mean, which is what MAE rewards on skewed (household-like) loads.

    Parameters
    ----------
    n_features : int
        Columns of the feature matrices (column 0 is the intercept, always 1).
    horizon : int
        Forecast steps.
    forgetting : float
        Weight kept by the past per closed interval.
    alpha : float
        Prior variance of the weights (river's ``alpha``); large = a weak prior.
    rows_per_step : int
        Rows each group learns per closed interval (at most its number of horizons).
    log_target : bool
        Learn and forecast in log space (see above).
    """

    def __init__(self, n_features: int, horizon: int, forgetting: float = 0.999, alpha: float = 1000.0,
                 rows_per_step: int = 2, log_target: bool = True) -> None:
        from river import linear_model

        self.model_id = "river-blr-v2" if log_target else "river-blr-v1"
        self.log_target = log_target
        self.groups = horizon_groups(horizon)
        self.rows = np.minimum(np.bincount(self.groups), rows_per_step)
        self.names = [f"x{j}" for j in range(n_features)]
        self.models = [linear_model.BayesianLinearRegression(alpha=alpha, beta=1.0,
                                                             smoothing=forgetting ** (1.0 / int(k)))
                       for k in self.rows]
        self.w = np.zeros((len(self.rows), n_features))

    def _transform(self, x: np.ndarray) -> np.ndarray:
        if not self.log_target:
            return x
        z = x.copy()
        z[:, LEVEL_FEATURES] = np.log(np.maximum(z[:, LEVEL_FEATURES], 0.0) + LOG_OFFSET)
        return z

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scaled forecasts for rows of ``x`` (row i = horizon i + 1)."""
        z = self._transform(x)
        out = z[:, PRIOR_FEATURE] + np.einsum("ij,ij->i", z, self.w[self.groups[: len(x)]])
        return np.exp(out) - LOG_OFFSET if self.log_target else out

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        """Each group learns up to ``rows_per_step`` of its valid rows, then its weights are read back."""
        g = self.groups[: len(x)]
        target = float(np.log(max(y, 0.0) + LOG_OFFSET)) if self.log_target else y
        z = self._transform(x)
        for gi, model in enumerate(self.models):
            rows = np.flatnonzero((g == gi) & valid)
            if rows.size == 0:
                continue
            k = int(min(self.rows[gi], rows.size))
            picks = rows[(t + np.arange(k) * rows.size // k) % rows.size]
            for row in z[picks[::-1]].tolist():
                model.learn_one(dict(zip(self.names, row, strict=True)), target - row[PRIOR_FEATURE])
            self.w[gi] = [model.predict_one({n: 1.0}) for n in self.names]


def make_model(name: str, n_features: int, horizon: int, forgetting: float = 0.999) -> HorizonModel | None:
    """The learning model of family ``name``; None for the seasonal-naive families."""
    if name in ("river-blr", "river-blr-raw"):
        return RiverBayesLinear(n_features, horizon, forgetting=forgetting, log_target=name == "river-blr")
    if name == "river-ewa":
        from streams.forecasting.ensemble import EWAEnsemble

        return EWAEnsemble([RiverBayesLinear(n_features, horizon, forgetting=forgetting, log_target=log)
                            for log in (True, False)], horizon)
    if name == "fls":
        return ForgettingLeastSquares(n_features, horizon, forgetting=forgetting)
    if name == "river-linear":
        return RiverLinear(n_features, horizon)
    if name in ("naive-day", "naive-week"):
        return None
    raise ValueError(f"unknown forecast model {name!r}; choose one of {', '.join(MODEL_FAMILIES)}")
