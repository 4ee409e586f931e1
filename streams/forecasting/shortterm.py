"""Next-interval correction: river linear models on the most recent loads, for the 15-minute forecast only.

The horizon models see the recent level (``last`` and its deviation from the profile) but not its momentum. This
stage learns, per 3-hour block of the target's local time of day, a ``river.linear_model.LinearRegression`` with
absolute loss (MAE is the score, and the load's jumps are heavy-tailed) of the next interval's residual of the
model's forecast, scaled by the running peak, from: the gap between that forecast and the last load, the last two
load deltas (and the positive part of the last: upward jumps partly revert, downward ones do not), the
residual of the previous 15-minute forecast, and the same-slot deltas one day and one week back. It starts at
zero weights (no correction) and learns each row when its target closes.
"""

from __future__ import annotations

import math

from river import linear_model, optim

__all__ = ["BLOCKS", "SHORT_FEATURES", "ShortTermCorrection"]

SHORT_FEATURES = ("gap", "delta", "delta_up", "delta_prev", "error_last", "delta_day", "delta_week")
BLOCKS = 8  # 3-hour blocks of the target's local time of day


def _num(v: float) -> float:
    return 0.0 if math.isnan(v) else float(v)


class ShortTermCorrection:
    """One river linear model per 3-hour block; ``correction`` before issuing, ``learn`` when the target closes.

    Parameters
    ----------
    lr : float
        SGD step of the absolute-loss models (the features are loads divided by the running peak).

    State: ``models`` (river ``LinearRegression``), the row of the last 15-minute forecast awaiting its target
    (``pending``: target interval, block, features, the model's scaled forecast, the scale) and the scaled
    residual of the last one learnt (``error_last``, 0 after a missing interval).
    """

    def __init__(self, lr: float = 0.02) -> None:
        self.lr = lr
        self.models = [linear_model.LinearRegression(
            optimizer=optim.SGD(lr), loss=optim.losses.Absolute(), intercept_lr=0.0, l2=0.0,
            initializer=optim.initializers.Zeros()) for _ in range(BLOCKS)]
        self.pending: tuple[int, int, dict[str, float], float, float] | None = None
        self.error_last = 0.0

    def features(self, forecast: float, loads: tuple[float, float, float], day: tuple[float, float],
                 week: tuple[float, float]) -> dict[str, float]:
        """Features of the next interval, all scaled: the model's ``forecast``; the last three ``loads`` (newest
        first); the loads at the target's slot and the slot before it one ``day`` and one ``week`` back (NaN:
        unknown, counts as no change)."""
        y0, y1, y2 = loads
        delta = _num(y0 - y1)
        return {"gap": _num(forecast - y0), "delta": delta, "delta_up": max(delta, 0.0), "delta_prev": _num(y1 - y2),
                "error_last": self.error_last, "delta_day": _num(day[0] - day[1]),
                "delta_week": _num(week[0] - week[1])}

    def correction(self, target: int, block: int, x: dict[str, float], forecast: float, scale: float) -> float:
        """Correction (scaled by ``scale``, the running peak) of the model's forecast for interval ``target`` in
        local 3-hour ``block``; the row is kept until its target closes."""
        self.pending = (target, block, x, forecast, scale)
        return float(self.models[block].predict_one(x))

    def learn(self, t: int, kw: float | None) -> None:
        """Learn the pending row if its target is ``t`` (``kw``: its load; None: missing or not to learn from)."""
        pending, self.pending = self.pending, None
        if pending is None or pending[0] != t or kw is None:
            self.error_last = 0.0
            return
        _, block, x, forecast, scale = pending
        self.error_last = kw / scale - forecast
        self.models[block].learn_one(x, self.error_last)
