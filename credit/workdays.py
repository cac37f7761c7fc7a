"""Working days under the Chinese public-holiday calendar, including adjusted working weekends (调休).

Deadlines in the credit workflows are counted in working days (CREDIT-RULES.md, "Workflows": an
objection is verified within 10 working days, a repair decided within 3). A working day is a
Monday-Friday that is not a public holiday or a holiday substituted for a weekend day, or a
Saturday or Sunday that the State Council's yearly notice (国务院办公厅关于部分节假日安排的通知)
declares a working day.

The data comes from the maintained ``holidays`` package (``holidays.China``), which encodes every
yearly notice since 2001 — the holidays, the days off moved from weekends and the weekend days
that became working days — and computes the statutory holidays by rule for other years. The
State Council publishes the next year's schedule around November; until an updated ``holidays``
release carries it, that year is served from the rule-based holidays (statutory days plus a
shift of those falling on a weekend to the next working day) and plain weekends, with no
adjusted working weekends. :meth:`WorkingCalendar.covers` tells whether a year has official
data, and the first use of a year without it logs a warning.

Pure: dates are arguments; nothing here reads the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from types import ModuleType
from typing import Final

from credit.errors import CalendarError

__all__ = ["WorkingCalendar"]

_logger = logging.getLogger(__name__)

_FIRST_OFFICIAL_YEAR: Final = 2001
"""The first year whose State Council notice the ``holidays`` package encodes."""
_SATURDAY: Final = 5
_ONE_DAY: Final = timedelta(days=1)


def _import_holidays() -> ModuleType:
    try:
        import holidays
    except ImportError as e:
        raise CalendarError(
            "the 'holidays' package is not installed; working days cannot be computed",
            reason="calendar-unavailable",
        ) from e
    return holidays


@dataclass(frozen=True, slots=True)
class _Year:
    """One year of the calendar: its non-weekend days off and its weekend working days."""

    days_off: frozenset[date]
    weekend_workdays: frozenset[date]
    official: bool


class WorkingCalendar:
    """The mainland-China working-day calendar (national public holidays and 调休).

    Construction is cheap: a year's data is loaded on first use and cached in the instance, so
    one long-lived instance (injected where needed) is the intended use. Years without official
    data in the installed ``holidays`` release are served by rule (see the module docstring) and
    logged once per instance and year at WARNING.

    Raises :class:`~credit.errors.CalendarError` when the ``holidays`` package is not importable.
    """

    def __init__(self) -> None:
        """Check that the data package is importable; load nothing yet."""
        self._holidays = _import_holidays()
        self._years: dict[int, _Year] = {}

    def covers(self, year: int) -> bool:
        """Whether the installed data has the State Council's official schedule for ``year``.

        ``False`` for years before 2001 and for years whose notice the installed ``holidays``
        release does not carry yet (upgrade the package when a new notice is published).
        """
        return self._year(year).official

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day: a weekday that is not a day off, or an adjusted working weekend."""
        year = self._year(d.year)
        if d.weekday() >= _SATURDAY:
            return d in year.weekend_workdays
        return d not in year.days_off

    def add_working_days(self, start: date, n: int) -> date:
        """The date ``n`` working days after ``start`` (``start`` itself does not count).

        ``add_working_days(start, 0)`` is ``start``, even when ``start`` is not a working day;
        for ``n > 0`` the result is always a working day. ``n`` must not be negative
        (:class:`ValueError`).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        d = start
        remaining = n
        while remaining:
            d += _ONE_DAY
            if self.is_working_day(d):
                remaining -= 1
        return d

    def working_days_between(self, start: date, end: date) -> int:
        """The number of working days ``d`` with ``start < d <= end`` (0 when ``end <= start``)."""
        count = 0
        d = start + _ONE_DAY
        while d <= end:
            if self.is_working_day(d):
                count += 1
            d += _ONE_DAY
        return count

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        loaded = self._load(year)
        self._years[year] = loaded
        if not loaded.official:
            _logger.warning(
                "no official holiday schedule for %d in holidays %s; using rule-based holidays "
                "without adjusted working weekends",
                year,
                getattr(self._holidays, "__version__", "?"),
                extra={"calendar_year": year},
            )
        return loaded

    def _load(self, year: int) -> _Year:
        table = self._holidays.country_holidays("CN", years=year)
        days_off = frozenset(d for d in table if d.year == year and d.weekday() < _SATURDAY)
        weekend_workdays = frozenset(
            d for d in table.weekend_workdays if d.year == year and d.weekday() >= _SATURDAY
        )
        # The yearly notices are the package's per-year "special" holidays: a year has official
        # data exactly when the package carries that year's notice.
        notices = getattr(table, "special_public_holidays", {})
        official = year >= _FIRST_OFFICIAL_YEAR and year in notices
        return _Year(days_off=days_off, weekend_workdays=weekend_workdays, official=official)
