"""Relative date operators -> UTC instants, computed in the caller's time zone.

Implements the table in reference/dataverse.md §2 ("Date operators and time zones"):
local midnight today is T, now is N, the start of the current local hour is H, and
every range is half-open [start, end) except the `last-*` ranges that end at N, which
include N and so exclude the future. Weeks run Sunday to Saturday. Days, months and
years are counted on the local calendar and each boundary is a local midnight turned
into UTC, so a day across a DST change is 23 or 25 hours long, as it is for the user.

Pure: `now` is always passed in, so tests (and replays) are deterministic.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

NO_VALUE = (
    "today", "yesterday", "tomorrow",
    "this-week", "last-week", "next-week",
    "this-month", "last-month", "next-month",
    "this-year", "last-year", "next-year",
    "last-seven-days", "next-seven-days",
)  # fmt: skip
X_VALUE = (
    "last-x-hours", "next-x-hours",
    "last-x-days", "next-x-days",
    "last-x-weeks", "next-x-weeks",
    "last-x-months", "next-x-months",
    "last-x-years", "next-x-years",
    "olderthan-x-minutes", "olderthan-x-hours", "olderthan-x-days",
    "olderthan-x-weeks", "olderthan-x-months", "olderthan-x-years",
)  # fmt: skip
ON_DATE = ("on", "on-or-after", "on-or-before")


@dataclass(frozen=True)
class Range:
    """[start, end) in UTC; `end_inclusive` makes it [start, end]. None = unbounded."""

    start: datetime | None = None
    end: datetime | None = None
    end_inclusive: bool = False


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the month's last day (Mar 31 - 1 = Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of `day` in `tz`, as a UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def week_start(day: date) -> date:
    """The Sunday on or before `day` (Dataverse weeks start on Sunday)."""
    return day - timedelta(days=(day.weekday() + 1) % 7)


def relative(op: str, x: int | None, now: datetime, tz: ZoneInfo) -> Range:
    """The UTC range an operator of NO_VALUE or X_VALUE selects at `now` in `tz`.

    Raises ValueError or OverflowError when `x` moves outside the calendar.
    """
    local = now.astimezone(tz)
    today = local.date()
    n = x or 0
    d = timedelta(days=1)

    def t(day: date) -> datetime:
        return midnight(day, tz)

    hour = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    sunday = week_start(today)
    first = today.replace(day=1)
    jan1 = date(today.year, 1, 1)
    ranges = {
        "today": lambda: Range(t(today), t(today + d)),
        "yesterday": lambda: Range(t(today - d), t(today)),
        "tomorrow": lambda: Range(t(today + d), t(today + 2 * d)),
        "this-week": lambda: Range(t(sunday), t(sunday + 7 * d)),
        "last-week": lambda: Range(t(sunday - 7 * d), t(sunday)),
        "next-week": lambda: Range(t(sunday + 7 * d), t(sunday + 14 * d)),
        "this-month": lambda: Range(t(first), t(add_months(first, 1))),
        "last-month": lambda: Range(t(add_months(first, -1)), t(first)),
        "next-month": lambda: Range(t(add_months(first, 1)), t(add_months(first, 2))),
        "this-year": lambda: Range(t(jan1), t(add_months(jan1, 12))),
        "last-year": lambda: Range(t(add_months(jan1, -12)), t(jan1)),
        "next-year": lambda: Range(t(add_months(jan1, 12)), t(add_months(jan1, 24))),
        "last-seven-days": lambda: Range(t(today - 7 * d), now, True),
        "next-seven-days": lambda: Range(now, t(today + 8 * d)),
        "last-x-hours": lambda: Range(hour - timedelta(hours=n), now, True),
        "next-x-hours": lambda: Range(now, hour + timedelta(hours=n + 1)),
        "last-x-days": lambda: Range(t(today - n * d), now, True),
        "next-x-days": lambda: Range(now, t(today + (n + 1) * d)),
        "last-x-weeks": lambda: Range(t(today - 7 * n * d), now, True),
        "next-x-weeks": lambda: Range(now, t(today + d + 7 * n * d)),
        "last-x-months": lambda: Range(t(add_months(today, -n)), now, True),
        "next-x-months": lambda: Range(now, t(add_months(today + d, n))),
        "last-x-years": lambda: Range(t(add_months(today, -12 * n)), now, True),
        "next-x-years": lambda: Range(now, t(add_months(today + d, 12 * n))),
        "olderthan-x-minutes": lambda: Range(
            None, now.replace(second=0, microsecond=0) - timedelta(minutes=n)
        ),
        "olderthan-x-hours": lambda: Range(None, hour - timedelta(hours=n)),
        "olderthan-x-days": lambda: Range(None, t(today - n * d)),
        "olderthan-x-weeks": lambda: Range(None, t(today - 7 * n * d)),
        "olderthan-x-months": lambda: Range(None, t(add_months(today, -n))),
        "olderthan-x-years": lambda: Range(None, t(add_months(today, -12 * n))),
    }
    return ranges[op]()


def on(op: str, day: date, tz: ZoneInfo) -> Range:
    """`on`, `on-or-after`, `on-or-before` for the local calendar date `day`."""
    start, end = midnight(day, tz), midnight(day + timedelta(days=1), tz)
    if op == "on":
        return Range(start, end)
    return Range(start, None) if op == "on-or-after" else Range(None, end)
