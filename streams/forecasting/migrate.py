"""Bring a forecaster restored from an older checkpoint to the current layout, keeping what it learned.

Checkpoints are object graphs (``streams/pipeline/statecodec.py``): a forecaster written by an earlier build comes
back with that build's attributes. Layouts this build reads:

* current (17 features, a history ring of 4 weeks): unchanged;
* before the smoothed day/week loads (``river-blr-v1`` or ``fls-v1`` default, 15 features, a ring of 1 week):
  the ring grows (the week it holds is kept, the older weeks fill as loads arrive), every horizon model gains
  the two features with zero weight (river's ``BayesianLinearRegression`` adds them at its prior; ``fls`` at its
  ridge prior), and a ``river-blr-v1`` model stays on its linear target: its config says ``river-blr-raw``;
* before the median correction by hour (no ``medians``): each horizon gains its hour-and-day-type median
  trackers, empty; a bin predicts the horizon-wide median learnt so far until its first residual, and starts
  from it;
* before the 15-minute correction (no ``short_term``): a learning model gains it with zero weights (no
  correction until it has learnt).
* before the interval bounds tracked in units of the running MAE (an ``OnlineQuantile`` without ``relative``):
  the bounds' trackers keep their estimate and move by relative steps from then on, the horizon-wide median
  keeps its absolute steps (the point forecast is unchanged). A bound an early transient pushed out stays as
  far out in units of the current MAE as it was: to drop it, delete the feeder's checkpoint.

Anything else (more features than this build knows, a ring of another size) raises :class:`CheckpointMismatch`;
the worker then starts that feeder afresh and counts it, as for a checkpoint that does not decode.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streams.forecasting.features import FEATURES, SMOOTH_WEEKS, FeatureState
from streams.forecasting.forecaster import MEDIAN_BINS, FeederForecaster
from streams.forecasting.models import ForgettingLeastSquares, RiverBayesLinear, RiverLinear
from streams.forecasting.quantiles import BinnedQuantile
from streams.forecasting.shortterm import ShortTermCorrection

__all__ = ["CheckpointMismatch", "migrate"]


class CheckpointMismatch(ValueError):
    """A restored forecaster whose layout this build cannot bring up to date."""


def migrate(fc: FeederForecaster) -> FeederForecaster:
    """``fc`` brought to the current layout, in place (a no-op for a current one); returns ``fc``."""
    if not isinstance(fc, FeederForecaster) or not isinstance(getattr(fc, "state", None), FeatureState):
        raise CheckpointMismatch("not a forecaster with a feature state")
    _grow_ring(fc.state)
    if "medians" not in fc.__dict__:
        fc.medians = BinnedQuantile(0.5, fc.config.horizon * MEDIAN_BINS, lr=fc.config.median_bin_lr)
    if "short_term" not in fc.__dict__:
        fc.short_term = ShortTermCorrection() if fc.model is not None else None
    for row in fc.quantiles:  # before 2026-12-04 every tracker moved by absolute steps: the bounds now track in
        for q in row[:-1]:  # units of the running MAE, the median (the hour medians' prior) keeps them
            q.__dict__.setdefault("relative", True)
        row[-1].__dict__.setdefault("relative", False)
    model = fc.model
    n = len(FEATURES)
    if isinstance(model, RiverBayesLinear):
        if "log_target" not in model.__dict__:  # before v2: the class said river-blr-v1, the target was linear
            model.log_target = False
            model.model_id = "river-blr-v1"
            fc.config = dataclasses.replace(fc.config, model="river-blr-raw")
        model.w = _widen(model.w, n, "river-blr")
        model.names = [f"x{j}" for j in range(n)]  # river adds new names at the prior on their first learn_one
    elif isinstance(model, ForgettingLeastSquares):
        old = model.w.shape[1]
        model.w = _widen(model.w, n, "fls")
        model.w0 = np.concatenate([model.w0, np.zeros(n - old)])
        g = model.a.shape[0]
        a = np.repeat(np.eye(n)[None] * model.ridge, g, 0)
        a[:, :old, :old] = model.a
        model.a = a
        model.b = np.concatenate([model.b, np.zeros((g, n - old))], axis=1)
    elif isinstance(model, RiverLinear):
        model.w = _widen(model.w, n, "river-linear")
        model.names = [f"x{j}" for j in range(1, n)]
    elif model is not None:
        raise CheckpointMismatch(f"unknown horizon model {type(model).__name__}")
    return fc


def _widen(w: np.ndarray, n: int, family: str) -> np.ndarray:
    if w.ndim != 2 or w.shape[1] > n:
        raise CheckpointMismatch(f"{family} weights of shape {w.shape}: this build has {n} features")
    return np.concatenate([w, np.zeros((w.shape[0], n - w.shape[1]))], axis=1)


def _grow_ring(st: FeatureState) -> None:
    ring = max((SMOOTH_WEEKS + 1) * st.week, st.horizon) + 1
    if st.ring == ring:
        return
    if st.ring > ring or len(st.hist) != st.ring:
        raise CheckpointMismatch(f"a history ring of {st.ring} intervals: this build keeps {ring}")
    hist = np.full(ring, np.nan)
    if st.t is not None:
        ts = np.arange(st.t - st.ring + 1, st.t + 1)
        hist[ts % ring] = st.hist[ts % st.ring]
    st.hist, st.ring = hist, ring
