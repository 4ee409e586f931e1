"""Synthetic feeder loads for the forecasting tests, and the benchmark scripts they test."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import numpy as np
import pytest

from streams.forecasting.aggregate import ClosedInterval
from streams.replay.scenario import REPO_ROOT

Q = 900_000
T0 = 1_546_300_800_000  # 2019-01-01T00:00Z, a Tuesday


def synthetic_load(days: int, seed: int = 0, noise: float = 0.08) -> np.ndarray:
    """15-minute load, kW: evening peak, weekend shape, AR(1) noise."""
    rng = np.random.default_rng(seed)
    n = days * 96
    t = np.arange(n)
    tod = (t % 96) / 96
    weekday = ((t // 96) + 1) % 7  # T0 is a Tuesday
    base = 30 + 20 * np.exp(-((tod - 0.8) ** 2) / 0.005) + 8 * np.exp(-((tod - 0.3) ** 2) / 0.01)
    base = base * np.where(weekday >= 5, 1.15, 1.0)
    ar = np.zeros(n)
    e = rng.normal(0, noise, n)
    for i in range(1, n):
        ar[i] = 0.8 * ar[i - 1] + e[i]
    return base * (1 + ar)


def intervals(values: np.ndarray, start: int = T0) -> list[ClosedInterval]:
    """Closed intervals of a load array (NaN = missing)."""
    out = []
    for i, v in enumerate(values):
        s = start + i * Q
        if np.isnan(v):
            out.append(ClosedInterval(s, s + Q, None, 0.0, 0, 10))
        else:
            out.append(ClosedInterval(s, s + Q, float(v), 1.0, 10, 10))
    return out


@pytest.fixture(scope="session")
def load_21d() -> np.ndarray:
    return synthetic_load(21)


def benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` imported as a module (the folder is not a package)."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)
