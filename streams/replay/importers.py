"""Importers: engineers' files → the project's Avro records, as :class:`HistoryRecord` in event-time order.

Pure (no Kafka client, no clock). Every record is built as its pydantic contract model (so physical
validation applies) and encoded with the single-object codec; topic and key come from the topic table.

Formats
-------
* EV sessions, ACN-Data form (:func:`import_acn`): ``session_id, station_id, arrival_utc, departure_utc,
  estimated_departure_utc, requested_energy_kwh, max_power_kw`` and optional ``feeder_id, bidirectional,
  interconnection_class, export_limit_kw, initial_soc_pct, capacity_kwh, site_id, asset_type`` (a
  ``stationary_battery`` station is registered as a battery; its telemetry has no departure and no request).
* Meter readings, CSV or Parquet (:func:`import_meters`): ``timestamp, kw`` (one feeder-head meter) or
  ``timestamp, meter_id, feeder_id, kw`` (optional ``kvar, voltage_v, quality, site_id``).
* Weather, CSV (:func:`import_weather`): ``timestamp, temperature_c, ghi_wm2[, wind_ms, cloud_cover_pct]``,
  or a TMY3 file (pvlib ships one under ``pvlib/data``), mapped onto a chosen year.

What a session replay says (the choice for ACN sessions)
-------------------------------------------------------
A replay cannot know what the pipeline will decide, so telemetry never claims power or energy the
pipeline did not command. Per session: a **plug-in** record at arrival (``connected``, ``energy_delivered_kwh
= 0``, requested energy, departure, limits, initial SoC if given); **heartbeats** every ``step`` strictly
between arrival and departure on the epoch-aligned grid (``power_kw = 0.0``, ``energy_delivered_kwh =
null``: "still connected, still wants this"); a **plug-out** record at departure (``connected = false``,
``session_id = null``). Each station gets one ChargerRegistration at the start. At equal timestamps the
order is: registrations, grid signals, weather, meter readings, plug-outs, plug-ins, heartbeats.
"""

from __future__ import annotations

import csv
import itertools
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.contracts.codec import AvroCodec, default_codec
from streams.contracts.models import (
    ChargerRegistration,
    ChargerTelemetry,
    GridSignal,
    MeterReading,
    Record,
    WeatherObservation,
    encode_record,
)
from streams.contracts.sessions import (
    AcnSession,
    csv_rows,
    opt_float,
    read_acn_sessions,
    site_registrations,
)
from streams.contracts.timeparse import parse_timestamp_ms
from streams.contracts.topics import TOPICS
from streams.replay.files import HistoryRecord

__all__ = [
    "AcnSession",
    "acn_records",
    "acn_registrations",
    "grid_signal_records",
    "import_acn",
    "import_meters",
    "import_weather",
    "median_spacing",
    "meter_periods",
    "read_meter_readings",
    "read_tmy3",
    "read_weather_csv",
    "to_history",
]

RANK = {"SiteRegistration": 0, "ChargerRegistration": 0, "GridSignal": 1, "WeatherObservation": 2, "MeterReading": 3}
PLUG_OUT, PLUG_IN, HEARTBEAT = 4, 5, 6

_TOPIC_OF = {name: spec for spec in TOPICS.values() for name in spec.records}
_TIME_FIELD = {"ChargerRegistration": "registered_at", "SiteRegistration": "registered_at", "GridSignal": "issued_at"}


def _history(codec: AvroCodec, rec: Record) -> HistoryRecord:
    name = type(rec).__name__
    spec = _TOPIC_OF[name]
    key = getattr(rec, spec.key)
    ts = getattr(rec, _TIME_FIELD.get(name, "timestamp"))
    return HistoryRecord(spec.name, key.encode() if key is not None else None, encode_record(codec, rec), ts)


def to_history(records: Iterable[Record], codec: AvroCodec | None = None, sort: bool = True) -> list[HistoryRecord]:
    """Encode contract models as history records (topic and key from the topic table).

    Parameters
    ----------
    records
        Models of input record types (MeterReading, ChargerTelemetry, ChargerRegistration,
        WeatherObservation, GridSignal, ...). The event time is ``timestamp`` (``registered_at`` for
        registrations, ``issued_at`` for grid signals).
    sort
        Stable-sort by (event time, record-type rank); otherwise keep the given order.
    """
    codec = codec or default_codec()
    recs = list(records)
    if sort:
        recs.sort(key=lambda r: (getattr(r, _TIME_FIELD.get(type(r).__name__, "timestamp")),
                                 RANK.get(type(r).__name__, 9)))
    return [_history(codec, r) for r in recs]


# --- CSV helpers ---------------------------------------------------------------------------------------

def _ts(v: Any) -> int:
    if isinstance(v, numbers.Integral):
        return int(v)
    return parse_timestamp_ms(v)


# --- ACN sessions ----------------------------------------------------------------------------------------

def acn_registrations(sessions: Sequence[AcnSession], registered_at: int, feeder_id: str = "feeder-1",
                      site_id: str | None = None) -> list[ChargerRegistration]:
    """One ChargerRegistration per station (sorted by station id).

    A station is bidirectional (and V2G-enrolled) if any of its rows says ``bidirectional``; its
    interconnection class is the first non-empty one given (default ``parallel_exporting`` for
    bidirectional stations, ``non_parallel`` otherwise); export limit the first given (default its max
    power when exporting, capped by its site's ``site_export_limit_kw``, else 0); rating = the largest
    ``max_power_kw`` of its rows; site = the ``site_id`` of its rows, else ``site_id``, else its own. A station
    on two feeders or at two sites is an error. A station with a ``stationary_battery`` row is a battery:
    bidirectional, discharge rating = its rating, capacity = the largest ``capacity_kwh`` of its rows.
    """
    by_station: dict[str, list[AcnSession]] = {}
    for s in sessions:
        by_station.setdefault(s.station_id, []).append(s)
    regs = []
    for station, rows in sorted(by_station.items()):
        feeders = {r.feeder_id or feeder_id for r in rows}
        if len(feeders) > 1:
            raise ValueError(f"station {station} appears on several feeders: {sorted(feeders)}")
        feeder = feeders.pop()
        battery = any(r.is_battery for r in rows)
        bidir = battery or any(r.bidirectional for r in rows)
        rating = max(r.max_power_kw for r in rows)
        icls = next((r.interconnection_class for r in rows if r.interconnection_class),
                    "parallel_exporting" if bidir else "non_parallel")
        site_export = min((r.site_export_limit_kw for r in rows if r.site_export_limit_kw is not None), default=None)
        export = next((r.export_limit_kw for r in rows if r.export_limit_kw is not None),
                      (rating if site_export is None else min(rating, site_export))
                      if bidir and icls == "parallel_exporting" else 0.0)
        sites = {r.site_id for r in rows if r.site_id}
        if len(sites) > 1:
            raise ValueError(f"station {station} appears at several sites: {sorted(sites)}")
        regs.append(ChargerRegistration(
            charger_id=station, feeder_id=feeder, site_id=sites.pop() if sites else site_id or station,
            customer_id=f"customer-{station}",
            bidirectional=bidir, inverter_location="offboard",
            interconnection_class=icls,  # type: ignore[arg-type]
            export_limit_kw=export, v2g_enrolled=bidir, max_charge_kw=rating,
            max_discharge_kw=rating if bidir else 0.0, registered_at=registered_at,
            asset_type="stationary_battery" if battery else "ev_charger",
            battery_capacity_kwh=(max(r.capacity_kwh or 0.0 for r in rows) or None) if battery else None,
        ))
    return regs


def _session_telemetry(s: AcnSession, feeder: str, step_ms: int, heartbeats: bool
                       ) -> Iterator[tuple[int, int, ChargerTelemetry]]:
    discharge = s.max_power_kw if s.bidirectional or s.is_battery else 0.0
    common: dict[str, Any] = {  # a battery stays and wants nothing: no departure, no request
        "charger_id": s.station_id, "feeder_id": feeder, "connected": True, "session_id": s.session_id,
        "power_kw": 0.0, "max_charge_kw": s.max_power_kw, "max_discharge_kw": discharge,
        "departure_time": None if s.is_battery else s.estimated_departure,
        "requested_energy_kwh": None if s.is_battery else s.requested_energy_kwh,
        "battery_capacity_kwh": s.capacity_kwh,
    }
    yield s.arrival, PLUG_IN, ChargerTelemetry(timestamp=s.arrival, soc_pct=s.initial_soc_pct,
                                               energy_delivered_kwh=0.0, **common)
    if heartbeats:
        t = (s.arrival // step_ms + 1) * step_ms
        while t < s.departure:
            yield t, HEARTBEAT, ChargerTelemetry(timestamp=t, **common)
            t += step_ms
    yield s.departure, PLUG_OUT, ChargerTelemetry(
        charger_id=s.station_id, feeder_id=feeder, timestamp=s.departure, connected=False, power_kw=0.0,
        max_charge_kw=s.max_power_kw, max_discharge_kw=discharge)


def acn_records(sessions: Sequence[AcnSession], *, feeder_id: str = "feeder-1", site_id: str | None = None,
                step_ms: int = 300_000, heartbeats: bool = True, start_ms: int | None = None,
                meter_kw: float | None = None, codec: AvroCodec | None = None) -> list[HistoryRecord]:
    """Registrations + session telemetry (+ optional constant feeder-head meter readings), event-time ordered.

    Parameters
    ----------
    sessions
        From :func:`read_acn_sessions`.
    feeder_id
        Feeder of rows without a ``feeder_id`` column value.
    site_id
        Site of stations whose rows name none (default: each station is its own site, so a file without
        ``site_id`` keeps each station's own interconnection class).
    step_ms
        Heartbeat (and meter) period; heartbeats sit on the epoch-aligned grid.
    heartbeats
        Emit connected heartbeats between plug-in and plug-out.
    start_ms
        Registration time; default: the first arrival floored to ``step_ms``.
    meter_kw
        If given, a MeterReading of this constant feeder-head load (meter ``<feeder>-head``) at every
        step from ``start_ms`` to the last departure, per feeder: a stand-in for non-EV load.
    """
    if not sessions:
        return []
    codec = codec or default_codec()
    start = start_ms if start_ms is not None else min(s.arrival for s in sessions) // step_ms * step_ms
    items: list[tuple[int, int, str, int, Record]] = []
    regs = acn_registrations(sessions, start, feeder_id, site_id)
    feeder_of = {r.charger_id: r.feeder_id for r in regs}
    for site in site_registrations(sessions, start, feeder_id):
        items.append((start, RANK["SiteRegistration"], "", 0, site))
    for r in regs:
        items.append((start, RANK["ChargerRegistration"], r.charger_id, 0, r))
    seq = 0
    for s in sessions:
        for ts, rank, rec in _session_telemetry(s, feeder_of[s.station_id], step_ms, heartbeats):
            items.append((ts, rank, s.station_id, seq, rec))
            seq += 1
    if meter_kw is not None:
        end = max(s.departure for s in sessions)
        for feeder in sorted(set(feeder_of.values())):
            t = start + step_ms
            while t <= end:
                items.append((t, RANK["MeterReading"], feeder, 0, MeterReading(
                    meter_id=f"{feeder}-head", feeder_id=feeder, timestamp=t, active_power_kw=meter_kw)))
                t += step_ms
    items.sort(key=lambda it: it[:4])
    return [_history(codec, it[4]) for it in items]


def import_acn(path: str | Path, **options: Any) -> list[HistoryRecord]:
    """:func:`read_acn_sessions` then :func:`acn_records` (keyword options as there)."""
    return acn_records(read_acn_sessions(path), **options)


# --- Meter readings ----------------------------------------------------------------------------------------

def _table(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if str(path).lower().endswith((".parquet", ".pq")):
        import pandas as pd  # optional: needs pyarrow or fastparquet

        frame = pd.read_parquet(path)
        for i, rec in enumerate(frame.to_dict("records"), start=1):
            yield i, {str(k): v for k, v in rec.items()}
    else:
        yield from csv_rows(path)


def _pick(row: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if n in row and row[n] is not None and row[n] != "":
            return row[n]
    return None


def median_spacing(times: Iterable[int]) -> int:
    """The median gap between a meter's distinct reading times (its usual period; a gap in the data does not
    lengthen it), the lower one of an even count; 0 for fewer than two readings.

    >>> median_spacing([0, 900, 1800, 5400]), median_spacing([7])
    (900, 0)
    """
    ts = sorted(set(times))
    gaps = sorted(b - a for a, b in itertools.pairwise(ts))
    return gaps[(len(gaps) - 1) // 2] if gaps else 0


def meter_periods(readings: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Each meter's metering period, its :func:`median_spacing`, from ``(meter, time)`` pairs."""
    by_meter: dict[str, list[int]] = {}
    for meter, t in readings:
        by_meter.setdefault(meter, []).append(t)
    return {meter: median_spacing(ts) for meter, ts in by_meter.items()}


def read_meter_readings(path: str | Path, feeder_id: str = "feeder-1") -> list[MeterReading]:
    """Meter readings from CSV or Parquet, in file order.

    Columns: ``timestamp`` and ``kw`` (alias ``active_power_kw``); optional ``meter_id`` (default
    ``<feeder>-head``), ``feeder_id`` (default ``feeder_id``), ``kvar``, ``voltage_v``, ``quality``, ``site_id``.
    A row's ``timestamp`` is the *start* of the period its value averages over (as load files are written); the
    reading is stamped at the period's *end*, as the ``MeterReading`` contract says (the end is the start plus the
    meter's median spacing, :func:`meter_periods`), so a replay delivers it when the period is over.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "load.csv"
    >>> rows = ["timestamp,kw", "2024-01-01T00:00Z,10", "2024-01-01T00:15Z,20", "2024-01-01T01:00Z,30"]
    >>> _ = f.write_text(chr(10).join(rows))
    >>> [(r.timestamp - 1704067200000) // 60000 for r in read_meter_readings(f)]
    [15, 30, 75]
    """
    rows: list[MeterReading] = []
    for line, row in _table(path):
        try:
            feeder = str(_pick(row, "feeder_id") or feeder_id)
            kw = _pick(row, "kw", "active_power_kw")
            if kw is None or _pick(row, "timestamp") is None:
                raise ValueError("needs timestamp and kw")
            rows.append(MeterReading(
                meter_id=str(_pick(row, "meter_id") or f"{feeder}-head"), feeder_id=feeder,
                timestamp=_ts(row["timestamp"]), active_power_kw=float(kw),
                reactive_power_kvar=opt_float(_pick(row, "kvar", "reactive_power_kvar")),
                voltage_v=opt_float(_pick(row, "voltage_v")), quality=_pick(row, "quality") or "good",
                site_id=_pick(row, "site_id"),
            ))
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from exc
    period = meter_periods((r.meter_id, r.timestamp) for r in rows)  # a meter with one row: no period, end = start
    return [r.model_copy(update={"timestamp": r.timestamp + period[r.meter_id]}) for r in rows]


def import_meters(path: str | Path, feeder_id: str = "feeder-1", codec: AvroCodec | None = None
                  ) -> list[HistoryRecord]:
    """Meter readings as history records in event-time order (stable for equal times)."""
    return to_history(read_meter_readings(path, feeder_id), codec)


# --- Weather -------------------------------------------------------------------------------------------------

def read_weather_csv(path: str | Path, station_id: str = "weather-1") -> list[WeatherObservation]:
    """``timestamp, temperature_c, ghi_wm2[, wind_ms, cloud_cover_pct]`` (optional ``station_id`` column).

    Aliases: ``air_temperature_c``, ``wind_speed_ms``.
    """
    out = []
    for line, row in csv_rows(path):
        try:
            temp = _pick(row, "temperature_c", "air_temperature_c")
            ghi = _pick(row, "ghi_wm2")
            if temp is None or ghi is None or not row.get("timestamp"):
                raise ValueError("needs timestamp, temperature_c and ghi_wm2")
            out.append(WeatherObservation(
                station_id=row.get("station_id") or station_id, timestamp=_ts(row["timestamp"]),
                air_temperature_c=float(temp), ghi_wm2=float(ghi),
                wind_speed_ms=opt_float(_pick(row, "wind_ms", "wind_speed_ms")),
                cloud_cover_pct=opt_float(_pick(row, "cloud_cover_pct")),
            ))
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from exc
    return out


def _is_tmy3(path: str | Path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        f.readline()
        return f.readline().startswith("Date (MM/DD/YYYY)")


def read_tmy3(path: str | Path, year: int, station_id: str | None = None) -> list[WeatherObservation]:
    """A TMY3 file (as ``pvlib.iotools.read_tmy3`` reads) mapped onto ``year``.

    TMY3 rows are hour-ending local standard time (``01:00`` … ``24:00``) with the station's fixed UTC
    offset in the header; each becomes an observation stamped at the end of its hour in UTC. Months come
    from different years in TMY, so only month/day/hour are kept. Feb 29 rows are dropped when ``year`` is
    not a leap year. Cloud cover: ``TotCld`` tenths × 10 %. Station id: ``tmy3-<USAF>`` unless given.
    """
    with open(path, encoding="utf-8-sig") as f:
        head = next(csv.reader([f.readline()]))
        usaf, tz_hours = head[0].strip(), float(head[3])
        rows = csv.reader(f)
        cols = {name: i for i, name in enumerate(next(rows))}
        i_date, i_time = cols["Date (MM/DD/YYYY)"], cols["Time (HH:MM)"]
        i_ghi, i_temp, i_wind = cols["GHI (W/m^2)"], cols["Dry-bulb (C)"], cols["Wspd (m/s)"]
        i_cld = cols.get("TotCld (tenths)")
        sid = station_id or f"tmy3-{usaf}"
        offset = timedelta(hours=tz_hours)
        out = []
        for row in rows:
            if not row:
                continue
            month, day, _ = (int(x) for x in row[i_date].split("/"))
            hh, mm = (int(x) for x in row[i_time].split(":"))
            try:
                local = datetime(year, month, day, tzinfo=UTC) + timedelta(hours=hh, minutes=mm)
            except ValueError:  # Feb 29 onto a non-leap year
                continue
            wind = opt_float(row[i_wind])
            cld = opt_float(row[i_cld]) if i_cld is not None else None
            out.append(WeatherObservation(
                station_id=sid, timestamp=parse_timestamp_ms(local - offset),
                air_temperature_c=float(row[i_temp]), ghi_wm2=max(0.0, float(row[i_ghi])),
                wind_speed_ms=wind if wind is not None and wind >= 0 else None,
                cloud_cover_pct=min(100.0, cld * 10.0) if cld is not None and cld >= 0 else None,
            ))
    return out


def import_weather(path: str | Path, station_id: str | None = None, year: int | None = None,
                   codec: AvroCodec | None = None) -> list[HistoryRecord]:
    """Weather CSV or TMY3 file (auto-detected; TMY3 needs ``year``) as history records, event-time order."""
    if _is_tmy3(path):
        if year is None:
            raise ValueError(f"{path} is a TMY3 file: give the year to map it onto")
        obs = read_tmy3(path, year, station_id)
    else:
        obs = read_weather_csv(path, station_id or "weather-1")
    return to_history(obs, codec)


def grid_signal_records(signals: Iterable[GridSignal], codec: AvroCodec | None = None) -> list[HistoryRecord]:
    """Grid signals as history records at their ``issued_at``."""
    return to_history(signals, codec)

