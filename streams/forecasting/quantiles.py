"""Online quantile of a stream of residuals, as a river regressor (river has no adaptive quantile tracker).

``OnlineQuantile`` follows the pinball-loss gradient (conformal PID-style tracking) on the residual measured in
units of its running mean absolute value ``mae``: it keeps ``q = z * mae`` and after each residual ``y`` moves
``z`` by ``max(lr, n ** -0.5) * (level - [y <= q])`` (larger over the first ``1 / lr ** 2`` residuals), then updates
``mae``. The band follows the scale of the residuals at once, and past the fast start the share of residuals at or
below the estimate held when each arrives stays, over any ``n`` of them, within ``|z_n - z_0| / (lr * n)`` of
``level`` whatever the residuals do, which keeps interval coverage near nominal when the model or the load drifts. With
``relative=False`` it moves ``q`` itself by ``max(lr, n ** -0.5) * mae * (level - [y <= q])`` (the former step,
kept for the forecaster's horizon-wide median, the prior its hour medians start from).

Before 2026-12-04 the tracker moved ``q`` itself by ``lr * mae * (level - [y <= q])``: a tail pushed out while
the residuals were large (a new feeder's first day, scaled by a running peak that had not grown yet; scaled
residuals 100 times the later ones) came back by ``lr * mae * (1 - level)`` per residual with the *later*, small
``mae``: about 0.0005 of the residual scale per step at 97.5 %, so it stayed out for years (``uci_aggregate``:
95 % intervals covering 98.2-100 %, the 4-hour pinball three times the others). In units of ``mae`` the same
tail comes back by itself as ``mae`` shrinks. ``BinnedQuantile`` (the point forecast's hour medians) and the
horizon-wide median they start from keep the former step: the point forecast is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river import base

__all__ = ["BinnedQuantile", "OnlineQuantile"]


def _step(q: float, mae: float, n: int, y: float, level: float, lr: float, memory: int) -> tuple[float, float]:
    """One stochastic step of a quantile tracker past its first target: the new ``(q, mae)`` after target ``y``
    (``n``: targets including ``y``; the step is ``lr`` times the running mean absolute target)."""
    mae += (abs(y) - mae) / min(n, memory)
    return q + lr * mae * (level - (1.0 if y <= q else 0.0)), mae


def _relative_step(q: float, mae: float, n: int, y: float, level: float, lr: float, memory: int) -> tuple[float, float]:
    """One step of a quantile tracker past its first target in units of the running mean absolute target: with
    ``q = z * mae``, ``z`` moves by ``lr * (level - [y <= q])``, then ``mae`` takes in ``y``; the new ``(q, mae)``."""
    z = q / mae if mae > 0.0 else 0.0
    z += lr * (level - (1.0 if y <= q else 0.0))
    mae += (abs(y) - mae) / min(n, memory)
    return z * mae, mae


class OnlineQuantile(base.Regressor):
    """Tracks the ``level`` quantile of the targets it learns; ``x`` is ignored.

    Parameters
    ----------
    level : float
        Quantile level in (0, 1).
    lr : float
        Step in units of the running mean absolute target (the estimate is kept as a multiple of it).
    memory : int
        The running mean absolute target averages about this many recent targets.
    fast_start : bool
        Step ``max(lr, n ** -0.5)`` instead of ``lr`` (a quick start; off for a slow, smooth estimate).
    relative : bool
        Track the quantile in units of the running mean absolute target (``q = z * mae``, ``z`` steps by
        ``lr``); False: ``q`` steps by ``lr * mae`` (a tail pushed out while the targets were large then comes back
        at the pace of the later, smaller ones).

    Examples
    --------
    >>> q = OnlineQuantile(0.9)
    >>> for i in range(2000):
    ...     q.learn_one({}, float(i % 10))
    >>> round(q.predict_one({}))
    9
    """

    def __init__(self, level: float, lr: float = 0.05, memory: int = 200, fast_start: bool = True,
                 relative: bool = True) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError("level must be in (0, 1)")
        if lr <= 0 or memory < 1:
            raise ValueError("lr must be > 0 and memory >= 1")
        self.level = level
        self.lr = lr
        self.memory = memory
        self.fast_start = fast_start
        self.relative = relative
        self.q = 0.0
        self.mae = 0.0
        self.n = 0

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"level": 0.9}

    def learn_one(self, x: dict[Any, Any], y: float) -> None:
        """Take in one target (a residual)."""
        del x
        self.n += 1
        if self.n == 1:
            self.mae = abs(y)
            if self.level != 0.5:  # a tail starts as wide as the first target; the median at 0
                self.q = abs(y) if self.level > 0.5 else -abs(y)
            return
        step = max(self.lr, self.n**-0.5) if self.fast_start else self.lr
        move = _relative_step if self.relative else _step
        self.q, self.mae = move(self.q, self.mae, self.n, y, self.level, step, self.memory)

    def predict_one(self, x: dict[Any, Any]) -> float:
        """The current quantile estimate (0 before any target)."""
        del x
        return self.q


class BinnedQuantile(base.Regressor):
    """Tracks the ``level`` quantile of its targets separately in each of ``bins`` bins: ``x = {"bin": b}``.

    Each bin moves as an :class:`OnlineQuantile` without fast start (its own ``q``, running mean absolute target
    and count); a bin that has seen no target yet predicts ``x.get("prior", 0.0)`` and starts from the prior its
    first target comes with. Used for the median of each
    horizon's residual by local time of day and day type (the models' bias depends on the hour).

    Parameters
    ----------
    level : float
        Quantile level in (0, 1).
    bins : int
        Number of bins.
    lr : float
        Step as a fraction of the bin's running mean absolute target.
    memory : int
        The running mean absolute target averages about this many recent targets of the bin.

    Examples
    --------
    >>> q = BinnedQuantile(0.5, bins=2)
    >>> for i in range(4000):
    ...     q.learn_one({"bin": i % 2}, float(i % 2) * 10.0 + (i % 3))
    >>> round(q.predict_one({"bin": 0})), round(q.predict_one({"bin": 1}))
    (1, 11)
    >>> q.predict_one({"bin": 1, "prior": 5.0}) == q.predict_one({"bin": 1})
    True
    """

    def __init__(self, level: float, bins: int, lr: float = 0.01, memory: int = 200) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError("level must be in (0, 1)")
        if bins < 1 or lr <= 0 or memory < 1:
            raise ValueError("bins and memory must be >= 1 and lr > 0")
        self.level = level
        self.bins = bins
        self.lr = lr
        self.memory = memory
        self.q = np.zeros(bins)
        self.mae = np.zeros(bins)
        self.n = np.zeros(bins, dtype=np.int64)

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"level": 0.5, "bins": 3}

    def _bin(self, x: dict[Any, Any]) -> int:
        b = int(x.get("bin", 0))
        if not 0 <= b < self.bins:
            raise ValueError(f"bin {b} outside 0..{self.bins - 1}")
        return b

    def learn_one(self, x: dict[Any, Any], y: float) -> None:
        """Take in one target (a residual) into bin ``x["bin"]``."""
        b = self._bin(x)
        self.n[b] += 1
        n = int(self.n[b])
        if n == 1:  # the bin starts where the prior left it
            self.mae[b] = abs(y)
            self.q[b] = float(x.get("prior", 0.0))
            return
        self.q[b], self.mae[b] = _step(float(self.q[b]), float(self.mae[b]), n, y, self.level, self.lr, self.memory)

    def predict_one(self, x: dict[Any, Any]) -> float:
        """The bin's quantile estimate (``x["prior"]``, default 0, before the bin's first target)."""
        b = self._bin(x)
        return float(self.q[b]) if self.n[b] else float(x.get("prior", 0.0))

    def predict_bins(self, bins: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """``predict_one`` for many rows at once: ``bins`` and ``prior`` per row."""
        return np.where(self.n[bins] > 0, self.q[bins], prior)
