"""Parsing of timestamps and durations in engineers' files (pure).

>>> parse_timestamp_ms("2019-03-01T14:20:00Z")
1551450000000
>>> parse_duration_ms("5m"), parse_duration_ms("1h30m"), parse_duration_ms(300)
(300000, 5400000, 300000)
>>> iso_utc(1551450000000)
'2019-03-01T14:20:00Z'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["iso_utc", "parse_duration_ms", "parse_timestamp_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000,
             "w": 604_800_000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)")


def parse_timestamp_ms(value: str | int | float | datetime) -> int:
    """UTC epoch milliseconds from ISO 8601 (``Z``/offset; naive = UTC), a datetime, or epoch ms.

    A bare integer (or numeric string) is taken as epoch *milliseconds*.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float):
        return int(value)
    else:
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # exact integer arithmetic (no float rounding of microseconds)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


def parse_duration_ms(value: str | int | float) -> int:
    """Milliseconds from ``"5m"``, ``"1h30m"``, ``"300s"``, ``"2d"``, ``"1w"``, ``"250ms"``.

    A bare number is taken as *seconds*.
    """
    if isinstance(value, int | float):
        return int(value * 1_000)
    text = value.strip().lower()
    try:
        return int(float(text) * 1_000)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if text[pos:m.start()].strip():
            break
        total += float(m.group(1)) * _UNITS_MS[m.group(2)]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"not a duration: {value!r} (use e.g. 5m, 1h, 300s, 7d)")
    return int(total)


def iso_utc(ms: int) -> str:
    """ISO 8601 UTC with ``Z`` (milliseconds only when non-zero)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
