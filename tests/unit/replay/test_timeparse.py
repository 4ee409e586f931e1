"""Timestamp and duration parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.contracts.timeparse import iso_utc, parse_duration_ms, parse_timestamp_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-01T14:20:00Z", datetime(2019, 3, 1, 14, 20, tzinfo=UTC)),
        ("2019-03-01T15:20:00+01:00", datetime(2019, 3, 1, 14, 20, tzinfo=UTC)),
        ("2019-03-01 14:20:00", datetime(2019, 3, 1, 14, 20, tzinfo=UTC)),
        ("2019-03-01T14:20:00.123Z", datetime(2019, 3, 1, 14, 20, 0, 123_000, tzinfo=UTC)),
    ],
)
def test_iso_timestamps(text: str, expected: datetime) -> None:
    assert parse_timestamp_ms(text) == round(expected.timestamp() * 1000)


def test_epoch_ms_and_datetime() -> None:
    assert parse_timestamp_ms("1551450000000") == 1_551_450_000_000
    assert parse_timestamp_ms(1_551_450_000_000) == 1_551_450_000_000
    assert parse_timestamp_ms(datetime(1970, 1, 1, 0, 0, 1)) == 1000


@pytest.mark.parametrize(("text", "ms"), [("5m", 300_000), ("1h30m", 5_400_000), ("300s", 300_000),
                                          ("2d", 172_800_000), ("1w", 604_800_000), ("250ms", 250),
                                          ("15min", 900_000), ("90", 90_000), (60, 60_000)])
def test_durations(text: str | int, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["", "5x", "m5", "5m garbage"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(bad)


def test_iso_round_trip() -> None:
    for ms in (0, 1_551_450_000_000, 1_551_450_000_123):
        assert parse_timestamp_ms(iso_utc(ms)) == ms
