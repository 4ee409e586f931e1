"""Local calendar across daylight-saving changes, and CSV parsing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from streams.forecasting.calendar import LocalCalendar
from streams.forecasting.csvio import parse_timestamp, read_load_csv, read_weather_csv

Q = 900_000
BERLIN = ZoneInfo("Europe/Berlin")


def local_day_starts(day: str) -> np.ndarray:
    start = int(datetime.fromisoformat(f"{day}T00:00").replace(tzinfo=BERLIN).timestamp() * 1000)
    end = start + 26 * 3_600_000
    starts = np.arange(start, end, Q)
    days = [datetime.fromtimestamp(s / 1000, BERLIN).date().isoformat() for s in starts]
    return starts[np.array(days) == day]


def test_spring_forward_day_has_92_local_intervals_and_skips_2am() -> None:
    starts = local_day_starts("2019-03-31")
    assert len(starts) == 92
    block = LocalCalendar(Q, "Europe/Berlin", "DE").block(starts)
    assert set(range(96)) - set(block.slot.tolist()) == {8, 9, 10, 11}  # 02:00-02:59 does not exist
    assert (block.weekday == 6).all() and (block.daytype == 2).all()


def test_fall_back_day_has_100_local_intervals() -> None:
    starts = local_day_starts("2019-10-27")
    assert len(starts) == 100
    slots = LocalCalendar(Q, "Europe/Berlin", "DE").block(starts).slot.tolist()
    assert slots.count(8) == 2 and slots.count(7) == 1


def test_calendar_follows_local_time_across_the_change() -> None:
    cal = LocalCalendar(Q, "Europe/Berlin", "DE")
    before = cal.one(parse_timestamp("2019-03-30T17:00:00Z"))  # 18:00 CET
    after = cal.one(parse_timestamp("2019-04-01T16:00:00Z"))  # 18:00 CEST
    assert before.slot[0] == after.slot[0] == 72
    block = cal.block(np.arange(parse_timestamp("2019-03-30T20:00:00Z"), parse_timestamp("2019-04-01T00:00:00Z"), Q))
    assert block.slot[0] == 84 and block.slot[-1] == 7  # 23:45Z = 01:45 CEST on 1 April


def test_holidays_of_the_configured_country() -> None:
    labour_day = parse_timestamp("2019-05-01T08:00:00Z")
    assert LocalCalendar(Q, "Europe/Berlin", "DE").one(labour_day).holiday[0] == 1.0
    assert LocalCalendar(Q, "America/New_York", "US").one(labour_day).holiday[0] == 0.0
    assert LocalCalendar(Q, "UTC", None).one(parse_timestamp("2019-12-25T12:00:00Z")).holiday[0] == 0.0


@pytest.mark.parametrize("text,expected", [
    ("2019-03-31T00:15:00Z", 1_553_991_300_000),
    ("2019-03-31T01:15:00+01:00", 1_553_991_300_000),
    ("2019-03-31 00:15:00", 1_553_991_300_000),
    ("1553991300000", 1_553_991_300_000),
])
def test_parse_timestamp(text: str, expected: int) -> None:
    assert parse_timestamp(text) == expected


def test_read_load_csv_both_forms_sorted_gaps_skipped(tmp_path: Path) -> None:
    p = tmp_path / "load.csv"
    p.write_text("timestamp,kw\n1553992200000,2.5\n2019-03-31T00:00:00Z,1.0\n2019-03-31T00:15:00Z,\n")
    rows = read_load_csv(p)
    assert [(r.timestamp, r.kw) for r in rows] == [(1_553_990_400_000, 1.0), (1_553_992_200_000, 2.5)]


def test_read_csv_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("time,kw\n2019-01-01T00:00:00Z,1\n")
    with pytest.raises(ValueError, match="missing column"):
        read_load_csv(p)
    p.write_text("timestamp,kw\n2019-01-01T00:00:00Z,abc\n")
    with pytest.raises(ValueError, match="line 2"):
        read_load_csv(p)


def test_read_weather_csv_optional_columns(tmp_path: Path) -> None:
    p = tmp_path / "w.csv"
    p.write_text("timestamp,temperature_c,ghi_wm2,wind_ms\n2019-01-01T01:00:00Z,3.5,0,4\n"
                 "2019-01-01T00:00:00Z,3.0,-1,\n")
    rows = read_weather_csv(p)
    assert rows[0].temperature_c == 3.0 and rows[0].ghi_wm2 == 0.0 and rows[0].wind_ms is None
    assert rows[1].wind_ms == 4.0 and rows[1].cloud_cover_pct is None
