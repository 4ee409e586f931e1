"""Running forecast accuracy: MAE, sMAPE, skill over the best seasonal naive, interval coverage, pinball loss."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
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
    coverage_80, coverage_95 : float
        Share of targets inside the 80 % / 95 % prediction intervals (NaN when not given).
    pinball : float
        Mean pinball loss (kW) of the quantiles that bound the extra intervals (levels 0.025, 0.1, 0.9, 0.975
        for the 80 % and 95 % ones), averaged over levels and targets (NaN when not given).
    """

    n: int
    mae: float
    smape: float
    mae_naive_day: float
    mae_naive_week: float
    skill: float
    coverage: float
    coverage_80: float = math.nan
    coverage_95: float = math.nan
    pinball: float = math.nan


def pinball_loss(actual: float, quantile: float, level: float) -> float:
    """Pinball (quantile) loss of ``quantile`` at ``level`` for ``actual``."""
    diff = actual - quantile
    return level * diff if diff >= 0 else (level - 1.0) * diff


class Scoreboard:
    """Sums of absolute errors per key; picklable and compact (seven floats per key, three per extra band)."""

    def __init__(self) -> None:
        self._sums: dict[Hashable, list[float]] = {}
        self._bands: dict[Hashable, dict[float, list[float]]] = {}

    def add(self, key: Hashable, actual: float, pred: float, naive_day: float, naive_week: float,
            lower: float = math.nan, upper: float = math.nan,
            bands: Iterable[tuple[float, float, float]] = ()) -> bool:
        """Score one forecast; skipped (returns False) when any of actual, pred or the naives is unknown.

        ``bands`` are extra prediction intervals ``(coverage, lower, upper)``: their coverage and the pinball
        loss of their bounds (quantiles at ``(1 -+ coverage) / 2``) are summed per coverage.
        """
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
        for cov, lo, hi in bands:
            b = self._bands.setdefault(key, {}).setdefault(cov, [0.0, 0.0, 0.0])
            b[0] += 1
            b[1] += float(lo <= actual <= hi)
            b[2] += pinball_loss(actual, lo, (1 - cov) / 2) + pinball_loss(actual, hi, (1 + cov) / 2)
        return True

    def summary(self) -> dict[Hashable, HorizonScore]:
        """Score per key."""
        out: dict[Hashable, HorizonScore] = {}
        for key, (n, err, smape, nd, nw, ni, inside) in self._sums.items():
            best = min(nd, nw)
            skill = 1.0 - err / best if best > 0 else (0.0 if err == 0 else -math.inf)
            bands = self._bands.get(key, {})
            cov = {c: b[1] / b[0] for c, b in bands.items()}
            levels = sum(2 * b[0] for b in bands.values())
            pinball = sum(b[2] for b in bands.values()) / levels if levels else math.nan
            out[key] = HorizonScore(int(n), err / n, smape / n, nd / n, nw / n, skill,
                                    inside / ni if ni else math.nan, cov.get(0.8, math.nan),
                                    cov.get(0.95, math.nan), pinball)
        return out
