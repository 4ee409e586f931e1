"""Importers: ACN sessions, meter readings, weather (CSV and TMY3)."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import MODELS, ChargerRegistration, ChargerTelemetry
from streams.contracts.sessions import read_acn_sessions
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, WEATHER
from streams.replay.files import HistoryRecord
from streams.replay.importers import (
    acn_records,
    import_acn,
    import_meters,
    import_weather,
    read_tmy3,
)

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("EVGRID_SHARED_DATA") or REPO / "streams" / "simulate" / "data")  # copy of shared/data
ACN = SHARED / "acn" / "caltech_2019-03_sessions.csv"
CODEC = default_codec()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) * 1000


def _decode(r: HistoryRecord):  # type: ignore[no-untyped-def]
    assert r.value is not None
    name, raw = CODEC.decode(r.value)
    return MODELS[name].model_validate(raw)


@pytest.fixture(scope="module")
def acn_rows() -> list[dict[str, str]]:
    if not ACN.exists():
        pytest.skip(f"shared data not found at {ACN}")
    with open(ACN, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def acn_history(acn_rows: list[dict[str, str]]) -> list[HistoryRecord]:
    return import_acn(ACN, feeder_id="caltech", step_ms=300_000)


def test_acn_registrations_one_per_station_at_start(acn_rows, acn_history) -> None:  # type: ignore[no-untyped-def]
    regs = [_decode(r) for r in acn_history if r.topic == CHARGER_REGISTRY]
    stations = {row["station_id"] for row in acn_rows}
    assert len(acn_rows) == 954
    assert sorted(r.charger_id for r in regs) == sorted(stations)
    assert len(regs) == len(stations) == 47
    first_arrival = min(_ms(row["arrival_utc"]) for row in acn_rows)
    assert {r.registered_at for r in regs} == {first_arrival // 300_000 * 300_000}
    assert all(isinstance(r, ChargerRegistration) and not r.bidirectional and r.max_charge_kw == 6.6 for r in regs)
    assert all(r.key == b"caltech" for r in acn_history)
    # registrations come before any telemetry
    assert acn_history[: len(regs)] == [r for r in acn_history if r.topic == CHARGER_REGISTRY]


def test_acn_plug_in_and_out_exact(acn_rows, acn_history) -> None:  # type: ignore[no-untyped-def]
    tele = [(r, _decode(r)) for r in acn_history if r.topic == CHARGER_TELEMETRY]
    plug_ins = {t.session_id: (r, t) for r, t in tele if t.energy_delivered_kwh == 0.0}
    assert len(plug_ins) == len(acn_rows)
    total_requested = 0.0
    for row in acn_rows:
        rec, t = plug_ins[row["session_id"]]
        assert rec.timestamp == t.timestamp == _ms(row["arrival_utc"])
        assert t.charger_id == row["station_id"] and t.connected and t.power_kw == 0.0
        assert t.departure_time == _ms(row["estimated_departure_utc"])
        assert t.requested_energy_kwh == float(row["requested_energy_kwh"])
        assert t.max_charge_kw == float(row["max_power_kw"])
        total_requested += t.requested_energy_kwh
    csv_total = sum(float(row["requested_energy_kwh"]) for row in acn_rows)
    assert total_requested == pytest.approx(csv_total, abs=1e-9)
    outs = defaultdict(list)
    for r, t in tele:
        if not t.connected:
            outs[t.charger_id].append(r.timestamp)
    expected = defaultdict(list)
    for row in acn_rows:
        expected[row["station_id"]].append(_ms(row["departure_utc"]))
    assert {k: sorted(v) for k, v in outs.items()} == {k: sorted(v) for k, v in expected.items()}


def test_acn_event_time_order_and_heartbeats(acn_rows, acn_history) -> None:  # type: ignore[no-untyped-def]
    stamps = [r.timestamp for r in acn_history]
    assert stamps == sorted(stamps)
    by_charger: dict[str, list[ChargerTelemetry]] = defaultdict(list)
    for r in acn_history:
        if r.topic == CHARGER_TELEMETRY:
            t = _decode(r)
            by_charger[t.charger_id].append(t)
    n_heartbeats = 0
    for seq in by_charger.values():
        session = None
        for t in seq:  # a charger's stream alternates plug-in, heartbeats, plug-out
            if t.energy_delivered_kwh == 0.0:
                assert session is None, "plug-in while another session is open"
                session = t
            elif t.connected:
                assert session is not None and t.session_id == session.session_id
                assert t.power_kw == 0.0 and t.energy_delivered_kwh is None
                assert t.timestamp % 300_000 == 0 and session.timestamp < t.timestamp
                n_heartbeats += 1
            else:
                assert session is not None and t.session_id is None
                session = None
        assert session is None
    expected = 0
    for row in acn_rows:
        a, d = _ms(row["arrival_utc"]), _ms(row["departure_utc"])
        expected += len(range((a // 300_000 + 1) * 300_000, d, 300_000))
    assert n_heartbeats == expected


def test_acn_back_to_back_sessions_unplug_before_plug_in(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "session_id,station_id,arrival_utc,departure_utc,estimated_departure_utc,requested_energy_kwh,max_power_kw\n"
        "s2,C1,2019-03-01T10:00:00Z,2019-03-01T11:00:00Z,2019-03-01T11:00:00Z,3,7.2\n"
        "s1,C1,2019-03-01T09:00:00Z,2019-03-01T10:00:00Z,,5,7.2\n"
    )
    out = [_decode(r) for r in import_acn(path, heartbeats=False)]
    tele = [(t.timestamp, t.connected, t.session_id) for t in out if isinstance(t, ChargerTelemetry)]
    assert tele == [(_ms("2019-03-01T09:00:00Z"), True, "s1"), (_ms("2019-03-01T10:00:00Z"), False, None),
                    (_ms("2019-03-01T10:00:00Z"), True, "s2"), (_ms("2019-03-01T11:00:00Z"), False, None)]
    # an empty estimated departure falls back to the departure
    assert out[1].departure_time == _ms("2019-03-01T10:00:00Z")  # type: ignore[union-attr]


def test_acn_v2g_columns(tmp_path: Path) -> None:
    path = tmp_path / "v2g.csv"
    path.write_text(
        "session_id,station_id,arrival_utc,departure_utc,estimated_departure_utc,requested_energy_kwh,max_power_kw,"
        "feeder_id,bidirectional,interconnection_class,export_limit_kw,initial_soc_pct,capacity_kwh\n"
        "a,C1,2019-03-01T08:00:00Z,2019-03-01T17:00:00Z,2019-03-01T17:00:00Z,10,11,f2,true,,5,40,60\n"
        "b,C2,2019-03-01T08:00:00Z,2019-03-01T09:00:00Z,2019-03-01T09:00:00Z,2,7,f1,false,,,,\n"
    )
    out = [_decode(r) for r in import_acn(path, step_ms=3_600_000)]
    regs = {r.charger_id: r for r in out if isinstance(r, ChargerRegistration)}
    assert regs["C1"].bidirectional and regs["C1"].v2g_enrolled and regs["C1"].may_export
    assert regs["C1"].interconnection_class == "parallel_exporting" and regs["C1"].export_limit_kw == 5.0
    assert regs["C1"].max_discharge_kw == 11.0 and regs["C1"].feeder_id == "f2"
    assert not regs["C2"].bidirectional and regs["C2"].interconnection_class == "non_parallel"
    plug_in = next(t for t in out if isinstance(t, ChargerTelemetry) and t.session_id == "a")
    assert plug_in.soc_pct == 40.0 and plug_in.battery_capacity_kwh == 60.0 and plug_in.max_discharge_kw == 11.0


def test_acn_stationary_battery_row(tmp_path: Path) -> None:
    path = tmp_path / "bat.csv"
    path.write_text(
        "session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw,bidirectional,"
        "interconnection_class,initial_soc_pct,capacity_kwh,site_id,asset_type\n"
        "b,BAT,2019-03-01T00:00:00Z,2019-03-02T00:00:00Z,0,5,,parallel_non_exporting,60,10,s1,stationary_battery\n"
        "a,C1,2019-03-01T08:00:00Z,2019-03-01T17:00:00Z,10,7,true,parallel_non_exporting,40,60,s1,\n"
    )
    sessions = {s.session_id: s for s in read_acn_sessions(path)}
    assert sessions["b"].is_battery and sessions["a"].asset_type == "ev_charger" and not sessions["a"].is_battery
    out = [_decode(r) for r in import_acn(path, step_ms=3_600_000)]
    regs = {r.charger_id: r for r in out if isinstance(r, ChargerRegistration)}
    bat = regs["BAT"]  # bidirectional without saying so: a battery discharges
    assert bat.asset_type == "stationary_battery" and bat.bidirectional and bat.battery_capacity_kwh == 10.0
    assert bat.max_charge_kw == bat.max_discharge_kw == 5.0 and bat.export_limit_kw == 0.0
    assert regs["C1"].asset_type == "ev_charger" and regs["C1"].battery_capacity_kwh is None
    tel = [t for t in out if isinstance(t, ChargerTelemetry) and t.charger_id == "BAT" and t.connected]
    assert len(tel) > 20 and all(t.departure_time is None and t.requested_energy_kwh is None for t in tel)
    assert tel[0].soc_pct == 60.0 and tel[0].max_discharge_kw == 5.0
    car = next(t for t in out if isinstance(t, ChargerTelemetry) and t.session_id == "a")
    assert car.requested_energy_kwh == 10.0 and car.departure_time == _ms("2019-03-01T17:00:00Z")


@pytest.mark.parametrize(("cells", "match"), [
    ("battery", r"bad\.csv:2: asset_type must be one of ev_charger, stationary_battery, not 'battery'"),
    ("stationary_battery", r"bad\.csv:2: a stationary_battery needs capacity_kwh > 0"),
])
def test_acn_bad_asset_type(tmp_path: Path, cells: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw,asset_type\n"
                    f"a,C1,2019-03-01T08:00:00Z,2019-03-01T09:00:00Z,0,7,{cells}\n")
    with pytest.raises(ValueError, match=match):
        read_acn_sessions(path)


def test_acn_station_on_two_feeders_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw,feeder_id\n"
        "a,C1,2019-03-01T08:00:00Z,2019-03-01T09:00:00Z,1,7,f1\n"
        "b,C1,2019-03-02T08:00:00Z,2019-03-02T09:00:00Z,1,7,f2\n"
    )
    with pytest.raises(ValueError, match="several feeders"):
        import_acn(path)


@pytest.mark.parametrize(("row", "match"), [
    ("a,C1,2019-03-01T09:00:00Z,2019-03-01T08:00:00Z,1,7", r"bad\.csv:2: departure"),
    ("a,C1,not-a-time,2019-03-01T08:00:00Z,1,7", r"bad\.csv:2"),
    ("a,C1,2019-03-01T08:00:00Z,2019-03-01T09:00:00Z,-1,7", "requested_energy_kwh"),
])
def test_acn_bad_rows_name_the_line(tmp_path: Path, row: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw\n" + row + "\n")
    with pytest.raises(ValueError, match=match):
        read_acn_sessions(path)


def test_acn_meter_readings_option(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw\n"
                    "a,C1,2019-03-01T08:00:00Z,2019-03-01T09:00:00Z,1,7\n")
    out = acn_records(read_acn_sessions(path), step_ms=900_000, meter_kw=12.5, heartbeats=False)
    meters = [_decode(r) for r in out if r.topic == METER_READINGS]
    assert [m.timestamp for m in meters] == [_ms("2019-03-01T08:00:00Z") + k * 900_000 for k in (1, 2, 3, 4)]
    assert {m.active_power_kw for m in meters} == {12.5}


def test_meters_csv_both_forms(tmp_path: Path) -> None:
    feeder = tmp_path / "feeder.csv"
    feeder.write_text("timestamp,kw\n2019-03-01T00:30:00Z,10.5\n2019-03-01T00:15:00Z,-2\n")
    out = [(r.key, _decode(r)) for r in import_meters(feeder, feeder_id="f9")]
    # a row's timestamp starts its 15-minute period; the reading is stamped at the period's end (the contract)
    assert [(k, m.meter_id, m.timestamp, m.active_power_kw) for k, m in out] == [
        (b"f9", "f9-head", _ms("2019-03-01T00:30:00Z"), -2.0), (b"f9", "f9-head", _ms("2019-03-01T00:45:00Z"), 10.5)]
    per_meter = tmp_path / "meters.csv"
    per_meter.write_text("timestamp,meter_id,feeder_id,kw,quality\n1551399600000,m1,fA,1.25,estimated\n"
                         "1551399600000,m2,fB,2,\n")
    out2 = [(r.topic, r.key, _decode(r)) for r in import_meters(per_meter)]
    assert [(t, k, m.meter_id, m.quality) for t, k, m in out2] == [
        (METER_READINGS, b"fA", "m1", "estimated"), (METER_READINGS, b"fB", "m2", "good")]


def test_meters_parquet(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "m.parquet"
    pd.DataFrame({"timestamp": pd.to_datetime(["2019-03-01T00:15:00Z", "2019-03-01T00:30:00Z"]),
                  "meter_id": ["m1", "m1"], "feeder_id": ["f1", "f1"], "kw": [1.0, 2.0]}).to_parquet(path)
    out = [_decode(r) for r in import_meters(path)]
    assert [(m.timestamp, m.active_power_kw) for m in out] == [(_ms("2019-03-01T00:30:00Z"), 1.0),
                                                                (_ms("2019-03-01T00:45:00Z"), 2.0)]


def test_meters_bad_value_names_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("timestamp,kw\n2019-03-01T00:15:00Z,1\n2019-03-01T00:30:00Z,abc\n")
    with pytest.raises(ValueError, match=r"m\.csv:3"):
        import_meters(path)


def test_weather_csv(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("timestamp,temperature_c,ghi_wm2,wind_ms,cloud_cover_pct\n"
                    "2019-03-01T01:00:00Z,4.5,0,3.2,80\n2019-03-01T00:00:00Z,5,0,,\n")
    out = [(r.topic, r.key, _decode(r)) for r in import_weather(path, station_id="ws")]
    assert [(t, k, o.timestamp, o.air_temperature_c, o.wind_speed_ms, o.cloud_cover_pct) for t, k, o in out] == [
        (WEATHER, b"ws", _ms("2019-03-01T00:00:00Z"), 5.0, None, None),
        (WEATHER, b"ws", _ms("2019-03-01T01:00:00Z"), 4.5, 3.2, 80.0)]


TMY_HEAD = ("Date (MM/DD/YYYY),Time (HH:MM),GHI (W/m^2),TotCld (tenths),Dry-bulb (C),Wspd (m/s)\n")


def test_tmy3_mapped_onto_year(tmp_path: Path) -> None:
    path = tmp_path / "tmy.csv"
    path.write_text('999999,"TEST STATION",CA,-8.0,34.1,-118.1,200\n' + TMY_HEAD
                    + "01/01/1988,01:00,0,3,10.5,2.0\n02/29/1996,12:00,500,0,20,1\n12/31/2004,24:00,0,10,8,0\n")
    obs = read_tmy3(path, 2019)
    # hour-ending local standard time UTC-8 → +8 h; Feb 29 dropped on a non-leap year; 24:00 → next day
    assert [o.timestamp for o in obs] == [_ms("2019-01-01T09:00:00Z"), _ms("2020-01-01T08:00:00Z")]
    assert obs[0].station_id == "tmy3-999999" and obs[0].cloud_cover_pct == 30.0 and obs[1].cloud_cover_pct == 100.0
    leap = read_tmy3(path, 2020, station_id="x")
    assert len(leap) == 3 and leap[1].timestamp == _ms("2020-02-29T20:00:00Z") and leap[1].ghi_wm2 == 500.0
    with pytest.raises(ValueError, match="TMY3"):
        import_weather(path)
    assert [r.timestamp for r in import_weather(path, year=2019)] == [o.timestamp for o in obs]


def test_pvlib_tmy3_file_matches_pvlib_reader() -> None:
    pvlib = pytest.importorskip("pvlib")
    path = Path(pvlib.__file__).parent / "data" / "703165TY.csv"
    data, _meta = pvlib.iotools.read_tmy3(path, map_variables=True)
    obs = read_tmy3(path, 2019)
    assert len(obs) == len(data) == 8760
    # pvlib's index is hour-ending local standard time; same instants modulo the year
    first = data.index[0].tz_convert("UTC")
    assert obs[0].timestamp == _ms(first.replace(year=2019).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert [o.air_temperature_c for o in obs[:48]] == list(data["temp_air"].iloc[:48])
    assert [o.ghi_wm2 for o in obs[:48]] == list(data["ghi"].iloc[:48].astype(float))
    stamps = [o.timestamp for o in obs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
