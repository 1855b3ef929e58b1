"""dates.py, patterns.py and date grouping: the pure parts, at exact boundaries."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailsignal.fetchxml import dates
from mailsignal.fetchxml.aggregate import part_of, sqlite_datepart
from mailsignal.fetchxml.conditions import SUPPORTED, UNSUPPORTED, sdk_name
from mailsignal.fetchxml.patterns import translate

LA, AKL = ZoneInfo("America/Los_Angeles"), ZoneInfo("Pacific/Auckland")
NOW = datetime(2026, 3, 11, 12, 30, tzinfo=UTC)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_today_differs_by_zone() -> None:
    assert dates.relative("today", None, NOW, ZoneInfo("UTC")) == dates.Range(
        z("2026-03-11T00:00"), z("2026-03-12T00:00")
    )
    assert dates.relative("today", None, NOW, LA) == dates.Range(
        z("2026-03-11T07:00"), z("2026-03-12T07:00")
    )
    assert dates.relative("today", None, NOW, AKL) == dates.Range(
        z("2026-03-11T11:00"), z("2026-03-12T11:00")
    )


def test_a_day_across_dst_is_23_or_25_hours() -> None:
    spring = datetime(2026, 3, 8, 12, tzinfo=UTC)  # LA springs forward at 02:00 local
    today = dates.relative("today", None, spring, LA)
    assert today.start and today.end and today.end - today.start == timedelta(hours=23)
    autumn = datetime(2026, 4, 5, 0, tzinfo=UTC)  # Auckland falls back at 03:00 local, 5 April
    today = dates.relative("today", None, autumn, AKL)
    assert today.start and today.end and today.end - today.start == timedelta(hours=25)


def test_a_missing_local_midnight_is_the_first_instant_of_the_day() -> None:
    santiago = ZoneInfo("America/Santiago")  # 2026-09-06 00:00 does not exist there
    start = dates.midnight(date(2026, 9, 6), santiago)
    assert start == z("2026-09-06T04:00")
    assert start.astimezone(santiago).date() == date(2026, 9, 6)


def test_weeks_start_on_sunday() -> None:
    assert dates.week_start(date(2026, 3, 11)) == date(2026, 3, 8)
    assert dates.week_start(date(2026, 3, 8)) == date(2026, 3, 8)
    assert dates.week_start(date(2026, 3, 7)) == date(2026, 3, 1)
    week = dates.relative("this-week", None, NOW, LA)
    assert week == dates.Range(z("2026-03-08T08:00"), z("2026-03-15T07:00"))  # PST -> PDT
    assert dates.relative("last-week", None, NOW, LA).end == week.start
    assert dates.relative("next-week", None, NOW, LA).start == week.end


def test_last_x_days_ends_at_now_inclusive() -> None:
    """dataverse.md: run at Mon 13:00, last-x-days 4 starts Thu 00:00 and excludes the future."""
    monday = datetime(2026, 3, 9, 13, tzinfo=UTC)
    span = dates.relative("last-x-days", 4, monday, ZoneInfo("UTC"))
    assert span == dates.Range(z("2026-03-05T00:00"), monday, end_inclusive=True)
    assert z("2026-03-05T00:00").strftime("%A") == "Thursday"


RELATIVE: list[tuple[str, int | None, str | None, str, bool]] = [
    ("yesterday", None, "2026-03-10", "2026-03-11", False),
    ("tomorrow", None, "2026-03-12", "2026-03-13", False),
    ("this-month", None, "2026-03-01", "2026-04-01", False),
    ("last-month", None, "2026-02-01", "2026-03-01", False),
    ("next-month", None, "2026-04-01", "2026-05-01", False),
    ("this-year", None, "2026-01-01", "2027-01-01", False),
    ("last-year", None, "2025-01-01", "2026-01-01", False),
    ("next-year", None, "2027-01-01", "2028-01-01", False),
    ("last-seven-days", None, "2026-03-04", "NOW", True),
    ("next-seven-days", None, "NOW", "2026-03-19", False),
    ("last-x-hours", 2, "2026-03-11T10:00", "NOW", True),
    ("next-x-hours", 2, "NOW", "2026-03-11T15:00", False),
    ("next-x-days", 2, "NOW", "2026-03-14", False),
    ("last-x-weeks", 2, "2026-02-25", "NOW", True),
    ("next-x-weeks", 2, "NOW", "2026-03-26", False),
    ("last-x-months", 1, "2026-02-11", "NOW", True),
    ("next-x-months", 1, "NOW", "2026-04-12", False),
    ("last-x-years", 1, "2025-03-11", "NOW", True),
    ("next-x-years", 1, "NOW", "2027-03-12", False),
    ("olderthan-x-minutes", 45, None, "2026-03-11T11:45", False),
    ("olderthan-x-hours", 1, None, "2026-03-11T11:00", False),
    ("olderthan-x-days", 3, None, "2026-03-08", False),
    ("olderthan-x-weeks", 1, None, "2026-03-04", False),
    ("olderthan-x-months", 2, None, "2026-01-11", False),
    ("olderthan-x-years", 1, None, "2025-03-11", False),
]


@pytest.mark.parametrize(("op", "x", "start", "end", "inclusive"), RELATIVE)
def test_every_relative_operator_in_utc(
    op: str, x: int | None, start: str | None, end: str, inclusive: bool
) -> None:
    def instant(text: str | None) -> datetime | None:
        return None if text is None else NOW if text == "NOW" else z(text)

    assert dates.relative(op, x, NOW, ZoneInfo("UTC")) == dates.Range(
        instant(start), instant(end), inclusive
    )


def test_every_relative_operator_is_tested_above() -> None:
    tested = {row[0] for row in RELATIVE}
    tested |= {"today", "this-week", "last-week", "next-week", "last-x-days"}
    assert set(dates.NO_VALUE) | set(dates.X_VALUE) == tested


def test_hours_start_at_the_local_hour() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # +05:30: the local hour starts at :30 UTC
    assert dates.relative("last-x-hours", 0, NOW, kolkata).start == z("2026-03-11T12:30")
    assert dates.relative("olderthan-x-hours", 1, NOW, kolkata).end == z("2026-03-11T11:30")


def test_months_clamp_to_the_last_day() -> None:
    assert dates.add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert dates.add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert dates.add_months(date(2026, 1, 31), 13) == date(2027, 2, 28)
    assert dates.add_months(date(2026, 1, 15), -13) == date(2024, 12, 15)
    end_of_march = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert dates.relative("last-x-months", 1, end_of_march, ZoneInfo("UTC")).start == z(
        "2026-02-28T00:00"
    )


def test_on_operators_use_the_local_date() -> None:
    day = date(2026, 3, 12)
    assert dates.on("on", day, AKL) == dates.Range(z("2026-03-11T11:00"), z("2026-03-12T11:00"))
    assert dates.on("on-or-after", day, AKL) == dates.Range(z("2026-03-11T11:00"), None)
    assert dates.on("on-or-before", day, AKL) == dates.Range(None, z("2026-03-12T11:00"))


def test_out_of_calendar_values_raise() -> None:
    with pytest.raises((OverflowError, ValueError)):
        dates.relative("last-x-years", 10_000, NOW, ZoneInfo("UTC"))


def _datepart_week(day: date) -> int:
    """SQL Server's DATEPART(week) with DATEFIRST 7, counted the slow way."""
    jan1 = date(day.year, 1, 1)
    # Week 2 starts on the first Sunday after 1 January (a week later if that is a Sunday).
    first_sunday_after = jan1 + timedelta(days=(6 - jan1.weekday()) % 7 or 7)
    if day < first_sunday_after:
        return 1
    return 2 + (day - first_sunday_after).days // 7


def test_week_numbers_match_datepart_for_ten_years() -> None:
    day = date(2020, 1, 1)
    while day.year < 2031:
        local = datetime(day.year, day.month, day.day, 12)
        assert part_of(local, "week") == _datepart_week(day), day
        day += timedelta(days=1)


def test_sqlite_datepart_reads_stored_utc_text() -> None:
    assert sqlite_datepart("year", "Pacific/Auckland", "2025-12-31 23:00:00.000000") == 2026
    assert sqlite_datepart("month", "UTC", "2025-12-31 23:00:00.000000") == 12
    assert sqlite_datepart("quarter", "UTC", "2026-04-01 00:00:00.000000") == 2
    assert sqlite_datepart("day", "America/Los_Angeles", "2026-03-11 06:00:00.000000") == 10
    assert sqlite_datepart("week", "UTC", None) is None


@pytest.mark.parametrize(
    ("tsql", "like", "regex"),
    [
        ("abc", "abc", None),
        ("%a_b%", "%a_b%", None),
        ("100[%]", "100\\%", None),
        ("[_]x", "\\_x", None),
        ("[[]x]", "[x]", None),
        ("a\\b", "a\\\\b", None),
        ("a[", "a[", None),
        ("[]x", "[]x", None),
        ("[ab]%", None, "(?s)^[ab].*\\Z"),
        ("[^a-f]_", None, "(?s)^[^a-f].\\Z"),
        ("x.[*+]?", None, "(?s)^x\\.[\\*\\+]\\?\\Z"),
        ("[a-]", None, "(?s)^[a\\-]\\Z"),
    ],
)
def test_tsql_patterns(tsql: str, like: str | None, regex: str | None) -> None:
    pattern = translate(tsql)
    assert (pattern.like, pattern.regex) == (like, regex)


@pytest.mark.parametrize(
    ("tsql", "text", "matches"),
    [
        ("[ab]%", "banana", True),
        ("[ab]%", "cab", False),
        ("[^a-f]_", "zz", True),
        ("[^a-f]_", "cz", False),
        ("[^a-f]_", "z", False),
        ("x.[*+]?", "x.*?", True),
        ("x.[*+]?", "xa*?", False),
        ("%[%]%[0-9]", "50% off 2", True),
        ("[0-9]%", "line\nbreak", False),
        ("[l]%k", "line\nbreak", True),
    ],
)
def test_regex_patterns_match_like_tsql(tsql: str, text: str, matches: bool) -> None:
    pattern = translate(tsql)
    if pattern.regex is None:
        pattern = translate(tsql + "[xX]")  # force the regex path for the like-only cases
        text += "x"
    assert pattern.regex is not None
    assert bool(re.search(pattern.regex, text)) is matches


def test_sdk_names_in_messages() -> None:
    assert sdk_name("ne") == "NotEqual"
    assert sdk_name("olderthan-x-months") == "OlderThanXMonths"
    assert sdk_name("on-or-after") == "OnOrAfter"
    assert sdk_name("not-begin-with") == "DoesNotBeginWith"
    assert not SUPPORTED & UNSUPPORTED
    assert "contains" not in SUPPORTED | UNSUPPORTED
