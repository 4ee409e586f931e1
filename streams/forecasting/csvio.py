"""Read ``timestamp,kw`` load CSVs and ``timestamp,temperature_c,ghi_wm2[,wind_ms,cloud_cover_pct]`` weather
CSVs. Timestamps are ISO 8601 (``Z``, an offset, or naive = UTC) or integer epoch milliseconds."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["LoadRow", "WeatherRow", "parse_timestamp", "read_load_csv", "read_weather_csv"]


@dataclass(frozen=True, slots=True)
class LoadRow:
    """One load value: average kW over the period starting at ``timestamp`` (epoch ms)."""

    timestamp: int
    kw: float


@dataclass(frozen=True, slots=True)
class WeatherRow:
    """One weather observation at ``timestamp`` (epoch ms)."""

    timestamp: int
    temperature_c: float
    ghi_wm2: float
    wind_ms: float | None = None
    cloud_cover_pct: float | None = None


def parse_timestamp(text: str) -> int:
    """UTC epoch ms from ISO 8601 (naive = UTC) or integer epoch milliseconds."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def _rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in required if c not in fields]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(fields)})")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _float(value: str, what: str, line: int) -> float:
    try:
        out = float(value)
    except ValueError:
        raise ValueError(f"line {line}: {what} {value!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"line {line}: {what} {value!r} is not finite")
    return out


def read_load_csv(path: str | Path) -> list[LoadRow]:
    """Load rows sorted by time; empty ``kw`` cells are skipped (gaps)."""
    out = []
    for i, row in enumerate(_rows(Path(path), ("timestamp", "kw")), start=2):
        if row["kw"] == "":
            continue
        out.append(LoadRow(parse_timestamp(row["timestamp"]), _float(row["kw"], "kw", i)))
    out.sort(key=lambda r: r.timestamp)
    return out


def read_weather_csv(path: str | Path) -> list[WeatherRow]:
    """Weather rows sorted by time."""
    out = []
    for i, row in enumerate(_rows(Path(path), ("timestamp", "temperature_c", "ghi_wm2")), start=2):
        wind = row.get("wind_ms", "")
        cloud = row.get("cloud_cover_pct", "")
        out.append(WeatherRow(parse_timestamp(row["timestamp"]), _float(row["temperature_c"], "temperature_c", i),
                              max(0.0, _float(row["ghi_wm2"], "ghi_wm2", i)),
                              _float(wind, "wind_ms", i) if wind else None,
                              _float(cloud, "cloud_cover_pct", i) if cloud else None))
    out.sort(key=lambda r: r.timestamp)
    return out
