"""The credit engine's inputs and outputs: plain, frozen data (see :mod:`credit.engine`).

Events, workflow effects and red-list decisions go in; an :class:`Assessment` with its per-event
:class:`Contribution` and :class:`Reason` codes comes out. The ``str`` enum values appear in
ledger records and API responses and must not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from credit.rulebook import Category

MAX_REASONS = 4


class EffectKind(StrEnum):
    """A workflow outcome that changes how an event counts."""

    REPAIRED = "repaired"  # 信用修复 approved: no effect on the score from this date
    WITHDRAWN = "withdrawn"  # corrected after an objection: as if it had never been


class RedListAction(StrEnum):
    """A person's confirmed red-list decision."""

    ENTER = "enter"
    EXIT = "exit"


class ContributionState(StrEnum):
    """What an event does at the as-of date (the values are part of the API and of stored views)."""

    COUNTING = "counting"  # counts in full
    CAPPED = "capped"  # counts, cut down by its cap (possibly to 0)
    EXPIRED = "expired"  # its period is over
    REPAIRED = "repaired"  # 信用修复 approved: on record, no effect on the score
    WITHDRAWN = "withdrawn"  # corrected after an objection: as if it had never been
    SUPERSEDED = "superseded"  # a larger event of its highest-only group counts instead
    LISTING_EXIT = "listing-exit"  # a source list's exit: ends a listing, no points of its own

    @property
    def counts(self) -> bool:
        """Whether the event adds its (possibly capped) points to the score."""
        return self in (ContributionState.COUNTING, ContributionState.CAPPED)


class RepairRoute(StrEnum):
    """How a negative event's effect can end."""

    REPAIR = "repair"  # 信用修复, from a date
    LIST_EXIT = "list-exit"  # when the source list removes the subject
    EXPIRY = "expiry"  # only when its period ends


@dataclass(frozen=True)
class Event:
    """A credit event as the engine sees it: plain data from its ``credit_event`` record."""

    id: str
    type: str
    occurred_on: date
    source: str = ""
    quantity: int = 1
    ended_on: date | None = None  # end of the conduct (financial defaults count from here)
    refers_to: str | None = None  # the listing a listing-exit event ends


@dataclass(frozen=True)
class Effect:
    """A workflow outcome on one event, effective from a date."""

    event_id: str
    kind: EffectKind
    effective_on: date


@dataclass(frozen=True)
class RedListDecision:
    """A confirmed red-list entry or exit, effective from a date."""

    action: RedListAction
    effective_on: date


@dataclass(frozen=True)
class Contribution:
    """What one event does to the score at the as-of date."""

    event_id: str
    type: str
    category: Category
    occurred_on: date
    source: str
    points: int  # points × quantity
    counted: int  # after highest-only and caps (0 when not counting)
    expires_on: date | None  # first day it no longer counts (None: while listed, no known end)
    state: ContributionState


@dataclass(frozen=True)
class Repair:
    """How a negative event's effect can end."""

    route: RepairRoute
    eligible_from: date | None


@dataclass(frozen=True)
class Reason:
    """One reason code: an event costing points against the next level."""

    code: str
    event_id: str
    occurred_on: date
    source: str
    points: int
    expires_on: date | None
    repair: Repair


@dataclass(frozen=True)
class BlackListing:
    """An active black-list entry, named by a lawful source list."""

    list: str
    event_id: str
    entered_on: date
    exit_due: date


@dataclass(frozen=True)
class ListStatus:
    """Black and red list status at the as-of date."""

    black: tuple[BlackListing, ...] = ()
    red_member: bool = False
    red_eligible: bool = False


@dataclass(frozen=True)
class Assessment:
    """A subject's credit at one date, under one rulebook version."""

    as_of: date
    rulebook_version: str
    score: int
    level: str
    breakdown: Mapping[Category, int]
    lists: ListStatus
    reasons: tuple[Reason, ...]
    next_change_on: date | None  # the next date at which the score, level or lists may change
    contributions: tuple[Contribution, ...] = field(default=(), repr=False)

    def summary(self) -> dict[str, object]:
        """The compact form recorded in ``credit_change`` records and compared on replay."""
        return {
            "score": self.score,
            "level": self.level,
            "black": sorted({b.list for b in self.lists.black}),
            "red": self.lists.red_member,
        }
