"""Running forecast accuracy: MAE, sMAPE, skill over the best seasonal naive, interval coverage."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["HorizonScore", "Scoreboard"]


@dataclass(frozen=True)
class HorizonScore:
    """Accuracy of one model at one horizon (or any other key).

    Attributes
    ----------
    n : int
        Scored forecasts (those where the target and both seasonal-naive forecasts were known).
    mae, smape : float
        Mean absolute error (kW) and symmetric MAPE (fraction, 0-2).
    mae_naive_day, mae_naive_week : float
        MAE of the same-time-yesterday / same-time-last-week forecasts on the same targets, kW.
    skill : float
        ``1 - mae / min(mae_naive_day, mae_naive_week)`` (fraction; > 0 beats the best seasonal naive).
    coverage : float
        Share of targets inside the prediction interval (NaN when no interval was given).
    """

    n: int
    mae: float
    smape: float
    mae_naive_day: float
    mae_naive_week: float
    skill: float
    coverage: float


class Scoreboard:
    """Sums of absolute errors per key; picklable and compact (seven floats per key)."""

    def __init__(self) -> None:
        self._sums: dict[Hashable, list[float]] = {}

    def add(self, key: Hashable, actual: float, pred: float, naive_day: float, naive_week: float,
            lower: float = math.nan, upper: float = math.nan) -> bool:
        """Score one forecast; skipped (returns False) when any of actual, pred or the naives is unknown."""
        if any(math.isnan(v) for v in (actual, pred, naive_day, naive_week)):
            return False
        s = self._sums.get(key)
        if s is None:
            s = self._sums[key] = [0.0] * 7
        err = abs(actual - pred)
        denom = abs(actual) + abs(pred)
        s[0] += 1
        s[1] += err
        s[2] += 2 * err / denom if denom > 0 else 0.0
        s[3] += abs(actual - naive_day)
        s[4] += abs(actual - naive_week)
        if not math.isnan(lower):
            s[5] += 1
            s[6] += float(lower <= actual <= upper)
        return True

    def summary(self) -> dict[Hashable, HorizonScore]:
        """Score per key."""
        out: dict[Hashable, HorizonScore] = {}
        for key, (n, err, smape, nd, nw, ni, inside) in self._sums.items():
            best = min(nd, nw)
            skill = 1.0 - err / best if best > 0 else (0.0 if err == 0 else -math.inf)
            out[key] = HorizonScore(int(n), err / n, smape / n, nd / n, nw / n, skill,
                                    inside / ni if ni else math.nan)
        return out
