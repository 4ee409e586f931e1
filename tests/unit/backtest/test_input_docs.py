"""docs/backtest.md documents every column the backtest's readers use (the table cannot drift from the code)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from streams.contracts import sessions
from streams.replay import importers

DOC = (Path(__file__).resolve().parents[3] / "docs" / "backtest.md").read_text(encoding="utf-8")


def _section(title: str) -> set[str]:
    part = DOC.split(title, 1)[1].split("\n### ", 1)[0]
    return {name for row in re.findall(r"^\| (.+?) \|", part, flags=re.M) for name in re.findall(r"`(\w+)`", row)}


def _columns(func: object) -> set[str]:
    """Column names a reader takes from a row: ``row["x"]``, ``row.get("x")`` and ``_pick(row, "x", "y")``."""
    src = inspect.getsource(func)  # type: ignore[arg-type]
    names = set(re.findall(r'row\["(\w+)"\]|row\.get\("(\w+)"', src))
    flat = {n for pair in names for n in pair if n}
    for args in re.findall(r"_pick\(row, ([^)]*)\)", src):
        flat |= set(re.findall(r'"(\w+)"', args))
    return flat


def test_sessions_columns_are_documented() -> None:
    used = _columns(sessions.read_acn_sessions) | set(sessions.ACN_REQUIRED)
    assert used <= _section("### `--sessions`"), used - _section("### `--sessions`")
    assert {"arrival_utc", "bidirectional", "capacity_kwh"} <= used


def test_load_columns_are_documented() -> None:
    used = _columns(importers.read_meter_readings)
    assert used <= _section("### `--load`"), used - _section("### `--load`")
    assert {"timestamp", "kw", "active_power_kw"} <= used


def test_weather_columns_are_documented() -> None:
    used = _columns(importers.read_weather_csv)
    assert used <= _section("### `--weather`"), used - _section("### `--weather`")
    assert {"temperature_c", "ghi_wm2"} <= used
