"""Calendar-month arithmetic: every period in a rulebook is counted in months.

A leaf module (standard library only) so that the engine, its cap rules and the measures share
one definition; :func:`credit.engine.add_months` is the same function.
"""

from __future__ import annotations

import calendar
from datetime import date
from functools import lru_cache


@lru_cache(maxsize=1 << 16)
def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the month's last day (Jan 31 + 1 → Feb 28).

    Monotone: ``a <= b`` implies ``add_months(a, n) <= add_months(b, n)``, which the rolling cap
    rule relies on (a later event's window never starts before an earlier event's).
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
