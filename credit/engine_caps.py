"""Category caps: how much of each event's points a cap group lets count.

Pure functions over plain data, used by :func:`credit.engine.evaluate` and by the incremental
:mod:`credit.subject_state`, which keeps each group's recent credits (:class:`Credited`) and
credits a new event with :func:`rolling_credit`. Two rules exist, selected by the
rulebook's ``cap_rule``:

``rolling`` (CREDIT-RULES.md; rulebook 2026.2 and later)
    No window of ``window_months`` earns more than the cap. Events are credited once, in date
    order (ties by event id), each at most what the cap leaves in the window before it — the
    events dated in ``(date − window, date]`` that come earlier in that order. What an event is
    credited depends only on events dated on or before it, so it stays fixed for its whole
    counting period: a score never moves on a day when no event starts or stops counting.

    * An expired event keeps occupying the windows it lies in: its credit is not handed to later
      events (with the shipped periods an event expires only after it has left every later
      event's window, except for the odd end-of-month clamp).
    * A withdrawn event never existed: the caller leaves it out.
    * A repaired event occupies the window of events dated *before* its repair date, whose credit
      was fixed while it counted, and not of events dated on or after the repair date. A repair
      says the event no longer affects the subject's credit; if its credit went on filling the cap,
      repairing one default would let the next defaults of the year count for nothing (a negative
      cap) or block later good conduct (a positive one).

``calendar-blocks`` (legacy; rulebooks that do not name a cap rule, e.g. 2026.1)
    Windows are blocks of ``window_months`` counted back from the evaluation date. This is wrong
    — as the date moves, events change blocks and escape the cap — and is kept only so that
    scores recorded under those rulebooks replay exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

from credit.months import add_months
from credit.rulebook import Cap


class CapEntry(NamedTuple):
    """One event of a cap group, as the cap rules see it (tuples sort in the rules' order)."""

    occurred_on: date
    event_id: str
    points: int  # points × quantity, the sign of the cap's limit
    released_on: date | None = None  # rolling rule: its repair date (see the module docstring)


def _in_order(entries: Iterable[CapEntry]) -> list[CapEntry]:
    """Date order, ties by event id (ids are unique, so the later fields never decide)."""
    return sorted(entries)


def _clip(points: int, room: int, limit: int) -> int:
    """``points`` limited to what ``room`` leaves, never past zero (the cap's sign is ``limit``'s)."""
    return min(points, max(room, 0)) if limit > 0 else max(points, min(room, 0))


class Credited(NamedTuple):
    """An event of a cap group with the credit the rolling rule gave it."""

    occurred_on: date
    event_id: str
    credit: int
    released_on: date | None  # its repair date (see the module docstring)


def rolling_credit(entry: CapEntry, earlier: Iterable[Credited], cap: Cap) -> int:
    """The credit of ``entry`` under the rolling rule, given the credited events before it.

    ``earlier``: events of the group that come before ``entry`` in date order (ties by event id),
    at least every one dated inside its window; those outside it are passed over.
    """
    day = entry.occurred_on
    start = add_months(day, -cap.window_months)
    used = 0
    for held in earlier:
        if held.occurred_on > start and (held.released_on is None or held.released_on > day):
            used += held.credit
    return _clip(entry.points, cap.limit - used, cap.limit)


def rolling_credits(entries: Iterable[CapEntry], cap: Cap, *, in_order: bool = False) -> dict[str, int]:
    """The credit of each event of one cap group under the rolling rule (module docstring).

    Give every event of the group that is not withdrawn — counting, expired or repaired — since
    expired and repaired events still occupy windows (``in_order``: they come in date order, ties
    by event id, already). The result does not depend on any evaluation date.
    """
    credits: dict[str, int] = {}
    window: deque[Credited] = deque()  # earlier events that may lie in the window
    for entry in entries if in_order else _in_order(entries):
        start = add_months(entry.occurred_on, -cap.window_months)
        # Entries come in date order and add_months is monotone: a window never starts earlier.
        while window and window[0].occurred_on <= start:
            window.popleft()
        credit = rolling_credit(entry, window, cap)
        credits[entry.event_id] = credit
        window.append(Credited(entry.occurred_on, entry.event_id, credit, entry.released_on))
    return credits


def calendar_block_credits(
    entries: Iterable[CapEntry], cap: Cap, as_of: date
) -> tuple[dict[str, int], list[date]]:
    """The legacy rule: blocks ``k`` of fact dates in ``(as_of − (k+1)w, as_of − kw]``, each capped.

    Give only the events counting at ``as_of``; the earliest fill a block first. Also returns the
    dates at which an event moves to an older block (where the capped credit may change).
    """
    credits: dict[str, int] = {}
    boundaries: list[date] = []
    used: dict[int, int] = {}
    for entry in _in_order(entries):
        block = 0
        while add_months(entry.occurred_on, cap.window_months * (block + 1)) <= as_of:
            block += 1
        boundaries.append(add_months(entry.occurred_on, cap.window_months * (block + 1)))
        room = cap.limit - used.get(block, 0)
        credit = min(entry.points, room) if cap.limit > 0 else max(entry.points, room)
        credits[entry.event_id] = credit
        used[block] = used.get(block, 0) + credit
    return credits, boundaries
