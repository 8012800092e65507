"""Cron expressions with a time zone: described in words, the next fire times, errors naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jupyter_ext.errors import CellpipeError
from jupyter_ext.services.cron import describe, fire_times_between

START = datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC).timestamp()  # a Monday, 08:00:30 UTC


def test_describe_says_when_in_words_and_lists_the_next_five_times() -> None:
    described = describe("30 6 * * MON-FRI", "Europe/Berlin", now=START)
    assert described["description"] == "At 06:30, Monday through Friday (Europe/Berlin)"
    # Monday 08:00 UTC is 09:00 in Berlin: Tuesday is next; the weekend is skipped
    assert described["next_fire_times"] == [
        "2026-03-03T06:30:00+01:00", "2026-03-04T06:30:00+01:00", "2026-03-05T06:30:00+01:00",
        "2026-03-06T06:30:00+01:00", "2026-03-09T06:30:00+01:00",
    ]  # fmt: skip


def test_describe_follows_daylight_saving_time() -> None:
    # Berlin moves to summer time on 2026-03-29: 03:00 local stays 03:00 local, the UTC offset changes
    times = describe("0 3 * * *", "Europe/Berlin", now=datetime(2026, 3, 27, tzinfo=UTC).timestamp())
    assert times["next_fire_times"][:3] == [
        "2026-03-27T03:00:00+01:00", "2026-03-28T03:00:00+01:00", "2026-03-29T03:00:00+02:00",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("cron", "timezone", "field", "text"),
    [
        ("0 25 * * *", "UTC", "cron", "field 2 (hour) must be 0-23, got 25"),
        ("0 3 * *", "UTC", "cron", "expected 5 fields, got 4"),
        ("", "UTC", "cron", "no cron expression"),
        ("0 0 30 2 *", "UTC", "cron", "never fires"),
        ("0 3 * * *", "Mars/Olympus", "timezone", "unknown time zone 'Mars/Olympus'"),
        ("0 3 * * *", "", "timezone", "no time zone"),
    ],
)
def test_describe_names_the_bad_field(cron: str, timezone: str, field: str, text: str) -> None:
    with pytest.raises(CellpipeError) as caught:
        describe(cron, timezone)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_macros_and_the_fire_times_between_two_instants() -> None:
    assert describe("@daily", now=START)["description"] == "At 00:00 (UTC)"
    hours = fire_times_between("@hourly", "UTC", START, START + 3 * 3600)
    assert [datetime.fromtimestamp(t, UTC).hour for t in hours] == [9, 10, 11]
    assert fire_times_between("0 3 * * *", "UTC", START, START + 60) == []
