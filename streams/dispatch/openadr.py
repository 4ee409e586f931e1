"""OpenADR 3 events to ``GridSignal`` s (see ``docs/openadr.md`` for the mapping).

Pure: the event's own ``modificationDateTime`` / ``createdDateTime`` give ``issued_at``; nothing reads the
clock. Supported payload types: ``IMPORT_CAPACITY_LIMIT``, ``EXPORT_CAPACITY_LIMIT`` (kW after unit
scaling) and ``PRICE`` (per kWh after unit scaling). One signal per (interval, target site or feeder).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from streams.contracts.models import MAX_TS, GridSignal

__all__ = ["SUPPORTED_PAYLOADS", "OpenADRError", "iso_duration_ms", "openadr_event_to_signals"]

SUPPORTED_PAYLOADS = ("IMPORT_CAPACITY_LIMIT", "EXPORT_CAPACITY_LIMIT", "PRICE")
_POWER_TO_KW = {"KW": 1.0, "W": 0.001, "MW": 1000.0, "KVA": 1.0}
_PRICE_PER_KWH = {"KWH": 1.0, "WH": 1000.0, "MWH": 0.001}
_FEEDER_TYPES = ("FEEDER_ID", "FEEDER")
_SITE_TYPES = ("SITE_ID", "POWER_SERVICE_LOCATION")
_DUR = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                  r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


class OpenADRError(ValueError):
    """The event cannot be mapped (no feeder, bad time or duration)."""


def iso_duration_ms(text: str) -> int | None:
    """Milliseconds of an ISO 8601 duration (``PT1H``, ``P1DT30M``; a year = 365 d, a month = 30 d);
    ``None`` for OpenADR's open-ended ``P9999Y``."""
    m = _DUR.match(text.strip()) if text else None
    if m is None or text.strip() in ("P", "PT"):
        raise OpenADRError(f"bad ISO 8601 duration {text!r}")
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    if y >= 9999:
        return None
    days = y * 365 + mo * 30 + w * 7 + d
    return round(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000)


def _ms(text: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise OpenADRError(f"bad date-time {text!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _targets(event: dict[str, Any], types: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for t in event.get("targets") or []:
        if isinstance(t, dict) and t.get("type") in types:
            out += [str(v) for v in t.get("values") or []]
        elif isinstance(t, dict) and t.get("type") == "GROUP":
            prefix = "feeder:" if types is _FEEDER_TYPES else "site:"
            out += [str(v)[len(prefix):] for v in t.get("values") or [] if str(v).startswith(prefix)]
    return out


def openadr_event_to_signals(event: dict[str, Any], feeder_id: str | None = None) -> list[GridSignal]:
    """``GridSignal`` s for one OpenADR 3 event object (JSON as a dict).

    The feeder comes from a target of type ``FEEDER_ID`` (or ``GROUP`` value ``feeder:<id>``), else
    ``feeder_id``; targets of type ``SITE_ID`` / ``POWER_SERVICE_LOCATION`` (or ``GROUP`` ``site:<id>``)
    make site-scoped signals, one per site. Each interval becomes one signal (``signal_id`` =
    ``oadr:<event id>:<interval id>[:<site>]``, ``dr_event_id`` = the event id) valid over the interval's
    period (its own ``intervalPeriod``, else the event's shifted by the interval index × duration).
    Intervals without a supported payload give nothing; an event without one gives ``[]``.
    """
    if not isinstance(event, dict):
        raise OpenADRError("event is not a JSON object")
    feeders = _targets(event, _FEEDER_TYPES) or ([feeder_id] if feeder_id else [])
    if not feeders:
        raise OpenADRError("no feeder: give a FEEDER_ID target or feeder_id")
    sites: list[str | None] = list(_targets(event, _SITE_TYPES)) or [None]
    event_id = str(event.get("id") or event.get("eventName") or "event")
    units: dict[str, tuple[str, str]] = {}
    for d in event.get("payloadDescriptors") or []:
        if isinstance(d, dict) and d.get("payloadType"):
            units[d["payloadType"]] = (str(d.get("units") or "").upper(), str(d.get("currency") or "USD"))
    period = event.get("intervalPeriod") or {}
    stamp = event.get("modificationDateTime") or event.get("createdDateTime")
    out: list[GridSignal] = []
    for idx, interval in enumerate(event.get("intervals") or []):
        own = interval.get("intervalPeriod") or {}
        start_txt = own.get("start") or period.get("start")
        dur_txt = own.get("duration") or period.get("duration")
        if not start_txt or not dur_txt:
            raise OpenADRError(f"interval {interval.get('id', idx)} has no intervalPeriod start/duration")
        dur = iso_duration_ms(dur_txt)
        start = _ms(start_txt)
        if not own.get("start") and dur is not None:
            start += idx * dur
        end = MAX_TS - 1 if dur is None else start + dur
        fields: dict[str, Any] = {}
        for pl in interval.get("payloads") or []:
            kind, values = pl.get("type"), pl.get("values") or []
            if kind not in SUPPORTED_PAYLOADS or not values or values[0] is None:
                continue
            unit, currency = units.get(kind, ("", "USD"))
            v = float(values[0])
            if kind == "PRICE":
                fields["price_per_kwh"] = v * _PRICE_PER_KWH.get(unit, 1.0)
                fields["currency"] = currency
            else:
                key = "import_limit_kw" if kind == "IMPORT_CAPACITY_LIMIT" else "export_limit_kw"
                fields[key] = max(0.0, v * _POWER_TO_KW.get(unit, 1.0))
        if not fields:
            continue
        issued = _ms(stamp) if stamp else start
        iid = interval.get("id", idx)
        for fid in feeders:
            for site in sites:
                sid = f"oadr:{event_id}:{iid}" + (f":{site}" if site else "") + (f"@{fid}" if len(feeders) > 1 else "")
                out.append(GridSignal(signal_id=sid, feeder_id=fid, site_id=site, issued_at=issued, valid_from=start,
                                      valid_until=end, dr_event_id=event_id, **fields))
    return out
