"""How far any function of the recent loads and the calendar can take the 15-minute forecast (an upper bound).

Gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``, absolute loss, extra ``eval``) predict the
next 15-minute load's change from the last load, from inputs all known at issue time: the last 16 changes, their
mean absolute size over the last hour and two hours, the local hour, slot and day type (working day, Saturday,
Sunday or holiday), the load and the change at the same slot one day and one week back, their means over the last
7 days and 4 weeks, and the last load against those means. Each calendar month is predicted by a model fitted on
the other eleven: the trees see the year's other months, after as well as before, which no online forecaster
can, so the skill printed is a ceiling, not a forecaster. Skill as ``evgrid forecast-eval``: MAE reduction
against the better seasonal naive (same slot yesterday / last week) after a 14-day warm-up.

    python benchmarks/forecast_nonlinear_ceiling.py .run/profiles/lv_semiurb4.csv
    python benchmarks/forecast_nonlinear_ceiling.py .run/profiles/uci_household.csv --timezone Europe/Paris \
        --country FR

(``benchmarks/forecast_eval_profiles.py`` writes the profiles.) Prints the ceiling and, for scale, persistence.
``--with-forecast`` runs the default forecaster over the file first (about a minute a year), prints its own skill
and gives the trees its 15- and 30-minute forecasts as two more inputs: the ceiling of any correction on top of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import warnings
from zoneinfo import ZoneInfo

import numpy as np

from streams.forecasting.aggregate import ClosedInterval
from streams.forecasting.calendar import LocalCalendar
from streams.forecasting.csvio import read_load_csv
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig

Q = 900_000  # 15 minutes, ms
DAY, WEEK = 96, 672
WARMUP = 14 * DAY
LAGS = 16


def running_peak(kw: np.ndarray) -> np.ndarray:
    """The largest load up to each interval (1 where none is positive yet): the forecaster's scale."""
    peak = np.fmax.accumulate(np.nan_to_num(kw))
    return np.where(peak > 0, peak, 1.0)


def features(kw: np.ndarray, t0: int, cal: LocalCalendar, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows for issue after each interval ``i`` (target ``i + 1``), and the calendar month of each target."""
    n = len(kw)

    def at(k: int) -> np.ndarray:  # load k intervals before the last one (NaN before the start)
        out = np.full(n, np.nan)
        if k < n:
            out[k:] = kw[:n - k]
        return out

    last, scale = at(0), running_peak(kw)
    deltas = [(at(k) - at(k + 1)) / scale for k in range(LAGS)]
    cols = [*deltas, np.mean(np.abs(deltas[:4]), axis=0), np.mean(np.abs(deltas[:8]), axis=0)]
    starts = (t0 + np.arange(1, n + 1, dtype=np.int64)) * Q  # the targets' starts
    block = cal.block(starts)
    cols += [block.slot // 4, block.slot, block.daytype]
    zone = ZoneInfo(tz)
    months = np.array([dt.datetime.fromtimestamp(int(s) / 1000, zone).month for s in starts[::DAY]])
    months = np.repeat(months, DAY)[:n]  # a day's targets in one month (a boundary slot may fall either side)
    for back in (DAY, WEEK):  # the target's slot one day / week back, and its change then
        cols += [(at(back - 1) - last) / scale, (at(back - 1) - at(back)) / scale]
    for back, count in ((DAY, 7), (WEEK, 4)):
        with warnings.catch_warnings():  # NaN where none of the days / weeks is known yet
            warnings.simplefilter("ignore", RuntimeWarning)
            level = np.nanmean([at(j * back - 1) for j in range(1, count + 1)], axis=0)
            step = np.nanmean([at(j * back - 1) - at(j * back) for j in range(1, count + 1)], axis=0)
        cols += [(level - last) / scale, step / scale]
    return np.column_stack(cols), months


def default_forecasts(rows: dict[int, float], t0: int, t1: int, tz: str, country: str) -> np.ndarray:
    """The default forecaster's 15- and 30-minute point forecasts issued after each interval, in kW."""
    fc = FeederForecaster(ForecasterConfig(timezone=tz, holiday_country=country))
    out = np.full((t1 - t0 + 1, 2), np.nan)
    for t in range(t0, t1 + 1):
        kw = rows.get(t)
        res = fc.update(ClosedInterval(t * Q, (t + 1) * Q, kw, 1.0 if kw is not None else 0.0, int(kw is not None), 1))
        out[t - t0] = res.kw[:2]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--country", default="DE")
    ap.add_argument("--with-forecast", action="store_true", help="add the default forecaster's forecasts as inputs")
    args = ap.parse_args()
    from sklearn.ensemble import HistGradientBoostingRegressor

    rows = {r.timestamp // Q: r.kw for r in read_load_csv(args.csv)}
    t0, t1 = min(rows), max(rows)
    kw = np.array([rows.get(t, np.nan) for t in range(t0, t1 + 1)], dtype=float)
    cal = LocalCalendar(Q, args.timezone, args.country)
    with np.errstate(invalid="ignore", divide="ignore"):
        x, months = features(kw, t0, cal, args.timezone)
    target = np.append(kw[1:], np.nan)  # the next interval's load
    shown = [("persistence (last load)", kw)]
    if args.with_forecast:
        fcs = default_forecasts(rows, t0, t1, args.timezone, args.country)
        x = np.column_stack([x, (fcs[:, 0] - kw) / running_peak(kw), (fcs[:, 1] - kw) / running_peak(kw)])
        shown.append(("the default forecaster (river-blr)", fcs[:, 0]))
    last = kw
    naive_day = np.concatenate([np.full(DAY - 1, np.nan), kw[:-DAY + 1]])  # the target's slot yesterday
    naive_week = np.concatenate([np.full(WEEK - 1, np.nan), kw[:-WEEK + 1]])
    ok = ~(np.isnan(target) | np.isnan(last) | np.isnan(naive_day) | np.isnan(naive_week))
    ok[:WARMUP] = False
    for _, p in shown:
        ok &= np.isfinite(p)
    scale = running_peak(kw)
    change = (target - last) / scale
    pred = np.full(len(kw), np.nan)
    for m in np.unique(months[ok]):
        fit, test = ok & (months != m), ok & (months == m)
        model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=400, learning_rate=0.03,
                                              max_leaf_nodes=31, min_samples_leaf=50, early_stopping=False,
                                              random_state=0)
        model.fit(x[fit], change[fit])
        pred[test] = last[test] + model.predict(x[test]) * scale[test]
    best = min(np.mean(np.abs(target[ok] - naive_day[ok])), np.mean(np.abs(target[ok] - naive_week[ok])))
    for name, p in [*shown, ("ceiling: trees fitted on the other months", pred)]:
        print(f"{name:<45} 15-minute skill {100 * (1 - np.mean(np.abs(target[ok] - p[ok])) / best):6.2f} %")


if __name__ == "__main__":
    main()
