"""The cap rules on plain data (credit/engine_caps.py): hand-computed credits for the rolling rule
(window edges, ties, negative caps, repaired events) and the legacy calendar blocks."""

from __future__ import annotations

from datetime import date

import pytest

from credit.engine_caps import CapEntry, calendar_block_credits, rolling_credits
from credit.rulebook import Cap

CAP_50 = Cap(limit=50)  # 12-month window
FLOOR_60 = Cap(limit=-60)


def entry(event_id: str, on: date, points: int, released_on: date | None = None) -> CapEntry:
    return CapEntry(on, event_id, points, released_on)


def test_rolling_fills_in_date_order_whatever_the_input_order() -> None:
    # 20 + 20 = 40, then 10 of 20 fits, then nothing: 20, 20, 10, 0.
    entries = [
        entry("d", date(2026, 4, 1), 20),
        entry("b", date(2026, 2, 1), 20),
        entry("a", date(2026, 1, 1), 20),
        entry("c", date(2026, 3, 1), 20),
    ]
    assert rolling_credits(entries, CAP_50) == {"a": 20, "b": 20, "c": 10, "d": 0}


def test_rolling_window_excludes_its_first_day() -> None:
    # The window of 2027-01-01 is (2026-01-01, 2027-01-01]: the event of 2026-01-01 is out of it.
    entries = [
        entry("a", date(2026, 1, 1), 50),
        entry("b", date(2027, 1, 1), 50),
        entry("c", date(2027, 1, 2), 50),
    ]
    assert rolling_credits(entries, CAP_50) == {"a": 50, "b": 50, "c": 0}


def test_rolling_same_day_ties_go_by_event_id() -> None:
    entries = [entry("y", date(2026, 5, 1), 40), entry("x", date(2026, 5, 1), 40)]
    assert rolling_credits(entries, CAP_50) == {"x": 40, "y": 10}


def test_rolling_negative_cap_is_a_floor() -> None:
    # -10 × 12 cycles in one event, then -30: the floor -60 takes -60, then nothing.
    entries = [entry("a", date(2026, 1, 1), -120), entry("b", date(2026, 6, 1), -30)]
    assert rolling_credits(entries, FLOOR_60) == {"a": -60, "b": 0}


def test_rolling_repaired_event_occupies_only_until_its_repair_date() -> None:
    # a (-60) repaired on 2026-05-01: b (2026-03-01) sees it, c (2026-05-01, the repair day) does not.
    entries = [
        entry("a", date(2026, 1, 1), -60, released_on=date(2026, 5, 1)),
        entry("b", date(2026, 3, 1), -30),
        entry("c", date(2026, 5, 1), -30),
    ]
    assert rolling_credits(entries, FLOOR_60) == {"a": -60, "b": 0, "c": -30}


def test_rolling_credits_do_not_depend_on_later_events() -> None:
    early = [entry("a", date(2026, 1, 1), 30), entry("b", date(2026, 2, 1), 30)]
    later = [*early, entry("c", date(2026, 3, 1), 30), entry("d", date(2025, 12, 1), 5)]
    assert rolling_credits(early, CAP_50) == {"a": 30, "b": 20}
    # d comes before a and b in date order, so it changes them; c, after them, does not.
    assert rolling_credits(later, CAP_50) == {"d": 5, "a": 30, "b": 15, "c": 0}


@pytest.mark.parametrize(
    ("as_of", "credits"),
    [
        # Both in the block (2025-08-01, 2026-08-01]: 40, then 10.
        (date(2026, 8, 1), {"a": 40, "b": 10}),
        # a in block 1 (2024-09-01, 2025-09-01], b in block 0: each block its own 50.
        (date(2026, 9, 1), {"a": 40, "b": 40}),
    ],
)
def test_calendar_blocks_count_back_from_as_of(as_of: date, credits: dict[str, int]) -> None:
    entries = [entry("a", date(2025, 9, 1), 40), entry("b", date(2026, 2, 1), 40)]
    got, boundaries = calendar_block_credits(entries, CAP_50, as_of)
    assert got == credits
    assert all(day > as_of for day in boundaries)  # where an event moves to an older block next
