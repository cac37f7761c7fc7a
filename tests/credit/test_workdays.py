"""The working-day calendar: hand-checked State Council schedules, counting properties, fallback years,
and a day-by-day cross-check against the independent ``chinese_calendar`` package.

Hand-checked facts (国务院办公厅关于2025年/2026年部分节假日安排的通知):

* 2025 National Day and Mid-Autumn: Oct 1-8 off; Sun Sep 28 and Sat Oct 11 are working days.
* 2026 New Year: Jan 1-3 off; Sun Jan 4 is a working day.
* 2026 Spring Festival: Feb 15-23 off; Sat Feb 14 and Sat Feb 28 are working days.
* 2026 Labour Day: May 1-5 off; Sat May 9 is a working day.
* 2026 National Day: Oct 1-7 off; Sun Sep 20 and Sat Oct 10 are working days.
"""

from __future__ import annotations

import logging
import sys
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit.errors import CalendarError
from credit.workdays import WorkingCalendar

CALENDAR = WorkingCalendar()
"""Shared across tests (and hypothesis examples) so each year is loaded once."""


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (date(2025, 10, 1), date(2025, 10, 8)),  # National Day + Mid-Autumn 2025
        (date(2026, 1, 1), date(2026, 1, 3)),  # New Year 2026
        (date(2026, 2, 15), date(2026, 2, 23)),  # Spring Festival 2026
        (date(2026, 4, 4), date(2026, 4, 6)),  # Qingming 2026
        (date(2026, 5, 1), date(2026, 5, 5)),  # Labour Day 2026
        (date(2026, 6, 19), date(2026, 6, 21)),  # Dragon Boat 2026
        (date(2026, 9, 25), date(2026, 9, 27)),  # Mid-Autumn 2026
        (date(2026, 10, 1), date(2026, 10, 7)),  # National Day 2026
        (date(2025, 3, 15), date(2025, 3, 16)),  # a plain weekend
    ],
)
def test_days_off(first: date, last: date) -> None:
    assert not any(CALENDAR.is_working_day(d) for d in days(first, last))


@pytest.mark.parametrize(
    "d",
    [
        date(2025, 9, 28),  # Sunday, 调休
        date(2025, 10, 11),  # Saturday, 调休
        date(2026, 1, 4),  # Sunday, 调休
        date(2026, 2, 14),  # Saturday, 调休
        date(2026, 2, 28),  # Saturday, 调休
        date(2026, 5, 9),  # Saturday, 调休
        date(2026, 9, 20),  # Sunday, 调休
        date(2026, 10, 10),  # Saturday, 调休
        date(2025, 9, 30),  # the Tuesday before National Day
        date(2025, 10, 9),  # the Thursday after
        date(2026, 2, 13),  # Friday before the Spring Festival
        date(2026, 2, 24),  # Tuesday after
    ],
)
def test_working_days(d: date) -> None:
    assert CALENDAR.is_working_day(d)


def test_plain_week() -> None:
    week = days(date(2025, 3, 10), date(2025, 3, 16))
    assert [CALENDAR.is_working_day(d) for d in week] == [True] * 5 + [False] * 2


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2025, 3, 10), 0, date(2025, 3, 10)),
        (date(2025, 3, 15), 0, date(2025, 3, 15)),  # n = 0 returns start even on a weekend
        (date(2025, 3, 10), 1, date(2025, 3, 11)),
        (date(2025, 3, 14), 1, date(2025, 3, 17)),  # Friday + 1 = Monday
        (date(2025, 3, 15), 1, date(2025, 3, 17)),  # Saturday + 1 = Monday
        (date(2025, 3, 10), 10, date(2025, 3, 24)),  # two plain weeks
        (date(2025, 9, 26), 1, date(2025, 9, 28)),  # Friday + 1 = the working Sunday
        (date(2025, 9, 30), 1, date(2025, 10, 9)),  # over the whole National Day week
        (date(2025, 9, 30), 3, date(2025, 10, 11)),  # ... to the working Saturday
        (date(2025, 9, 30), 4, date(2025, 10, 13)),
        # An objection on Thu 2026-02-12 must be verified within 10 working days: Feb 13, 14
        # (working Saturday), 24, 25, 26, 27, 28 (working Saturday), Mar 2, 3, 4.
        (date(2026, 2, 12), 10, date(2026, 3, 4)),
        # A repair decided within 3 working days of Wed 2026-09-30: Oct 8, 9, 10 (working Saturday).
        (date(2026, 9, 30), 3, date(2026, 10, 10)),
        # Across the year end: Wed 2025-12-31 + 1 skips the 2026 New Year holiday to Sun Jan 4.
        (date(2025, 12, 31), 1, date(2026, 1, 4)),
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert CALENDAR.add_working_days(start, n) == expected
    assert CALENDAR.working_days_between(start, expected) == n


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 9, 30), date(2025, 10, 12), 3),  # Oct 9, 10, 11
        (date(2025, 9, 30), date(2025, 10, 8), 0),
        (date(2025, 9, 27), date(2025, 9, 30), 3),  # Sep 28 (Sunday), 29, 30
        (date(2026, 2, 13), date(2026, 2, 28), 6),  # Feb 14, 24, 25, 26, 27, 28
        (date(2025, 3, 10), date(2025, 3, 10), 0),  # start itself does not count
        (date(2025, 3, 10), date(2025, 3, 3), 0),  # end before start
        # 2025: 261 weekdays − 18 weekday holidays + 5 working weekend days.
        (date(2024, 12, 31), date(2025, 12, 31), 248),
        # 2026: 261 weekdays − 19 weekday holidays + 6 working weekend days.
        (date(2025, 12, 31), date(2026, 12, 31), 248),
    ],
)
def test_working_days_between(start: date, end: date, expected: int) -> None:
    assert CALENDAR.working_days_between(start, end) == expected


def test_negative_n_is_refused() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        CALENDAR.add_working_days(date(2025, 3, 10), -1)


official_dates = st.dates(min_value=date(2001, 1, 1), max_value=date(2026, 11, 30))


@given(official_dates, st.integers(min_value=0, max_value=40))
def test_add_then_count_round_trips(start: date, n: int) -> None:
    end = CALENDAR.add_working_days(start, n)
    assert CALENDAR.working_days_between(start, end) == n
    if n > 0:
        assert end > start
        assert CALENDAR.is_working_day(end)
        assert CALENDAR.working_days_between(start, end - timedelta(1)) == n - 1


@given(official_dates, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_counting_is_additive(start: date, a: int, b: int) -> None:
    middle = start + timedelta(a)
    end = middle + timedelta(b)
    total = CALENDAR.working_days_between(start, end)
    assert total == CALENDAR.working_days_between(start, middle) + CALENDAR.working_days_between(middle, end)


def test_covers_official_years_only() -> None:
    assert CALENDAR.covers(2025)
    assert CALENDAR.covers(2026)
    assert CALENDAR.covers(2001)
    assert not CALENDAR.covers(2000)
    assert not CALENDAR.covers(2099)


def test_future_year_falls_back_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    calendar = WorkingCalendar()
    with caplog.at_level(logging.WARNING, logger="credit.workdays"):
        assert not calendar.covers(2099)
        # Rule-based statutory holidays still apply; weekends are days off.
        assert not calendar.is_working_day(date(2099, 10, 1))
        assert not calendar.is_working_day(date(2099, 1, 1))
        assert not calendar.is_working_day(date(2099, 3, 7))  # a Saturday
        assert calendar.is_working_day(date(2099, 3, 9))  # a plain Monday
        assert calendar.add_working_days(date(2099, 3, 6), 1) == date(2099, 3, 9)
    warnings = [r for r in caplog.records if r.name == "credit.workdays" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2099" in warnings[0].getMessage()


def test_official_years_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    calendar = WorkingCalendar()
    with caplog.at_level(logging.WARNING, logger="credit.workdays"):
        calendar.is_working_day(date(2025, 10, 1))
        calendar.is_working_day(date(2026, 10, 1))
    assert not [r for r in caplog.records if r.name == "credit.workdays"]


def test_missing_package_is_a_calendar_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "holidays", None)  # makes `import holidays` raise ImportError
    with pytest.raises(CalendarError) as info:
        WorkingCalendar()
    assert info.value.reason == "calendar-unavailable"


def test_matches_chinese_calendar_day_by_day() -> None:
    """Every day of every year both packages know officially must agree.

    2005-12-31 is left out: the two packages disagree on it (``holidays`` has it as a working
    Saturday moved for the 2006 New Year, ``chinese_calendar`` as a day off), and it predates any
    record this system will hold.
    """
    chinese_calendar = pytest.importorskip("chinese_calendar")
    checked = 0
    year = 2004
    while CALENDAR.covers(year):
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            break
        for d in days(date(year, 1, 1), date(year, 12, 31)):
            if d != date(2005, 12, 31):
                assert CALENDAR.is_working_day(d) == chinese_calendar.is_workday(d), d
                checked += 1
        year += 1
    assert year > 2026
    assert checked > 8000
