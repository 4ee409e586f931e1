"""``river-ewa``: river's ``ensemble.EWARegressor`` per horizon, weighting the forecasts of horizon models online.

Members are horizon models (``models.py``), by default the log-space and the linear-target river
``BayesianLinearRegression`` families. Each horizon has its own ``EWARegressor`` whose experts are
:class:`MemberForecast` regressors: each reads its member's forecast from the row river passes it, so river's
own update (weights times ``exp(-learning_rate * loss)``, normalised) weights members by how well they forecast
that horizon. At each closed interval ``t``, every horizon's ensemble scores the members on the row that horizon
saw for ``t`` (issue-time features, members' weights before they learn ``t``), then the members learn ``t``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol

import numpy as np
from river import base, ensemble, optim

__all__ = ["EWAEnsemble", "Member", "MemberForecast"]


class Member(Protocol):
    """What a member needs: the ``HorizonModel`` methods of ``models.py`` (which builds ensembles)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scaled forecasts for rows of ``x``."""
        ...

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        """Learn scaled target ``y`` from the valid rows of ``x``."""
        ...


class MemberForecast(base.Regressor):
    """A river regressor that forecasts ``x[key]`` (a member's forecast) and learns nothing.

    >>> MemberForecast("m0").predict_one({"m0": 0.4, "m1": 0.5})
    0.4
    """

    def __init__(self, key: str) -> None:
        self.key = key

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"key": "f0"}

    def learn_one(self, x: dict[Hashable, Any], y: float) -> None:
        """Nothing to learn: the member learns on its own."""

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        """The member's forecast."""
        return float(x[self.key])


class EWAEnsemble:
    """One ``river.ensemble.EWARegressor`` per horizon over member horizon models.

    Parameters
    ----------
    members : list[Member]
        Horizon models, forecasting the same scaled target (load / running peak).
    horizon : int
        Forecast steps.
    learning_rate : float
        River's ``learning_rate`` of the exponential weights.
    loss : str
        ``"absolute"`` (river ``optim.losses.Absolute``, the loss MAE scores) or ``"squared"`` (river's default).
    """

    model_id = "river-ewa-v1"

    def __init__(self, members: list[Member], horizon: int, learning_rate: float = 5.0,
                 loss: str = "absolute") -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        losses = {"absolute": optim.losses.Absolute, "squared": optim.losses.Squared}
        if loss not in losses:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(losses)}")
        self.members = members
        self.keys = [f"m{k}" for k in range(len(members))]
        self.ewa = [ensemble.EWARegressor([MemberForecast(k) for k in self.keys], loss=losses[loss](),
                                          learning_rate=learning_rate) for _ in range(horizon)]
        self.weights = np.full((horizon, len(members)), 1.0 / len(members))

    def _forecasts(self, x: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(x) for m in self.members], axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scaled forecasts for rows of ``x`` (row i = horizon i + 1): the members' weighted mean."""
        return np.einsum("hm,hm->h", self._forecasts(x), self.weights[: len(x)])

    def learn(self, x: np.ndarray, y: float, valid: np.ndarray, t: int) -> None:
        """Each valid horizon's ensemble scores the members' forecasts of ``y``; then the members learn it."""
        p = self._forecasts(x)
        for i in np.flatnonzero(valid).tolist():
            ewa = self.ewa[i]
            ewa.learn_one(dict(zip(self.keys, p[i].tolist(), strict=True)), y)
            self.weights[i] = ewa.weights
        for m in self.members:
            m.learn(x, y, valid, t)
