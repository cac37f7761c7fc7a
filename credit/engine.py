"""The scoring engine: (events, rulebook, as-of date) → score, level, breakdown, lists, reasons.

A pure, deterministic function: no database, clock or randomness. The same inputs give the same
:class:`Assessment` everywhere, which is what lets a citizen or an auditor recompute any score
from the anchored ``credit_event`` records and the anchored rulebook (``trustledger credit
replay``). Workflow outcomes that change an event's effect (a repair, a correction that withdraws
it, a red-list decision) are inputs too, each with the date it takes effect.

Rules, in order (CREDIT-RULES.md):

1. An event counts from its fact date (or the end of the conduct, for financial defaults) for
   its tier's period or its own ``counts_months``; a black-list entry counts while listed plus
   ``counts_after_exit_months``. A withdrawn (corrected) event never counts again; a repaired
   one stops counting from the repair date but stays on record.
2. Points are ``points × quantity``. In a ``highest_only`` group only the largest counts.
3. A cap limits a group's points per rolling window, counted back from the as-of date; the
   earliest events fill the cap first.
4. The score is ``base + Σ``, clamped to the scale; any active black listing caps it.
5. Up to four reasons: the active negative events costing most, each with its expiry and repair
   route. "Score too low" is never a reason.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache

from credit.identifiers import SubjectKind
from credit.rulebook import Category, EventType, Rulebook

MAX_REASONS = 4


class EffectKind(StrEnum):
    """A workflow outcome that changes how an event counts."""

    REPAIRED = "repaired"  # 信用修复 approved: no effect on the score from this date
    WITHDRAWN = "withdrawn"  # corrected after an objection: as if it had never been


class RedListAction(StrEnum):
    """A person's confirmed red-list decision."""

    ENTER = "enter"
    EXIT = "exit"


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
    state: str  # counting | expired | repaired | withdrawn | superseded | capped | listing-exit


@dataclass(frozen=True)
class Repair:
    """How a negative event's effect can end."""

    route: str  # repair | list-exit | expiry
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


@lru_cache(maxsize=1 << 16)
def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the month's last day (Jan 31 + 1 → Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass
class _Live:
    event: Event
    et: EventType
    points: int
    expires_on: date | None
    counted: int
    state: str


def _listing_exits(events: Iterable[Event], rulebook: Rulebook, as_of: date) -> dict[str, date]:
    exits: dict[str, date] = {}
    for ev in events:
        et = rulebook.event_types.get(ev.type)
        if et is not None and et.ends_listing and ev.refers_to and ev.occurred_on <= as_of:
            earlier = exits.get(ev.refers_to)
            exits[ev.refers_to] = ev.occurred_on if earlier is None else min(earlier, ev.occurred_on)
    return exits


def evaluate(
    events: Iterable[Event],
    rulebook: Rulebook,
    as_of: date,
    *,
    effects: Iterable[Effect] = (),
    red_list: Iterable[RedListDecision] = (),
    subject: SubjectKind = SubjectKind.PERSON,
    explain: bool = True,
) -> Assessment:
    """Assess one subject at ``as_of`` (see the module docstring for the rules).

    Events of types the rulebook does not know are ignored (a later rulebook may drop a type);
    events dated after ``as_of`` do not count yet. ``explain=False`` leaves out the per-event
    ``contributions`` (bulk rescoring does not need them; everything else is the same).
    """
    events = [ev for ev in events if ev.occurred_on <= as_of]
    repaired: dict[str, date] = {}
    withdrawn: set[str] = set()
    for eff in effects:
        if eff.effective_on > as_of:
            continue
        if eff.kind is EffectKind.WITHDRAWN:
            withdrawn.add(eff.event_id)
        else:
            repaired[eff.event_id] = min(eff.effective_on, repaired.get(eff.event_id, eff.effective_on))
    exits = _listing_exits((ev for ev in events if ev.id not in withdrawn), rulebook, as_of)

    live: list[_Live] = []
    black: list[BlackListing] = []
    upcoming: list[date] = []
    last_negative: date | None = None
    for ev in sorted(events, key=lambda e: (e.occurred_on, e.id)):
        et = rulebook.event_types.get(ev.type)
        if et is None:
            continue
        if ev.id in withdrawn:
            live.append(_Live(ev, et, 0, None, 0, "withdrawn"))
            continue
        if et.ends_listing:
            live.append(_Live(ev, et, 0, None, 0, "listing-exit"))
            continue
        points = et.points * max(1, min(ev.quantity, et.max_quantity))
        if points < 0:
            last_negative = ev.occurred_on if last_negative is None else max(last_negative, ev.occurred_on)
        expires_on: date | None
        if et.black_list is not None:
            black_list = rulebook.black_lists[et.black_list]
            exit_due = min(exits.get(ev.id, date.max), add_months(ev.occurred_on, black_list.max_months))
            if exit_due > as_of:
                black.append(BlackListing(et.black_list, ev.id, ev.occurred_on, exit_due))
                upcoming.append(exit_due)
            expires_on = add_months(exit_due, et.counts_after_exit_months) if exit_due < date.max else None
        else:
            months = (
                et.counts_months
                if et.counts_months is not None
                else rulebook.tiers[et.tier or ""].counts_months
            )
            expires_on = add_months(_counts_from(et, ev, rulebook), months)
        if expires_on is not None and expires_on <= as_of:
            live.append(_Live(ev, et, points, expires_on, 0, "expired"))
            continue
        if expires_on is not None:
            upcoming.append(expires_on)
        if ev.id in repaired:
            live.append(_Live(ev, et, points, expires_on, 0, "repaired"))
            continue
        live.append(_Live(ev, et, points, expires_on, points, "counting"))

    _apply_highest_only(live)
    upcoming.extend(_apply_caps(live, rulebook, as_of))

    total = sum(item.counted for item in live)
    score = max(rulebook.scale.min, min(rulebook.scale.max, rulebook.scale.base + total))
    if black:
        score = min(score, rulebook.scale.black_list_cap)
    level = rulebook.level_of(score)
    breakdown = dict.fromkeys(Category, 0)
    for item in live:
        breakdown[item.et.category] += item.counted

    entered: date | None = None
    # A stable sort: decisions of the same day apply in the order they were recorded.
    for decision in sorted(red_list, key=lambda d: d.effective_on):
        if decision.effective_on <= as_of:
            entered = decision.effective_on if decision.action is RedListAction.ENTER else None
    # A serious event removes from the red list at once; a person then confirms the formal exit.
    removal = set(rulebook.red_list.removal_tiers)
    vetted_from = add_months(entered, -12 * rulebook.red_list.clean_years) if entered else date.min
    red_member = (
        entered is not None
        and not black  # any black listing ends red-list membership at once, like a serious event
        # …also one dated before the entry but reported later: the entry rested on incomplete facts.
        and not any(
            i.et.tier in removal and i.event.occurred_on >= vetted_from and i.state != "withdrawn"
            for i in live
        )
    )
    clean_since = add_months(last_negative, 12 * rulebook.red_list.clean_years) if last_negative else None
    if clean_since is not None and clean_since > as_of:
        upcoming.append(clean_since)
    red_eligible = (
        not black
        and score >= rulebook.level_min(rulebook.red_list.min_level)
        and (clean_since is None or clean_since <= as_of)
        and (
            subject is SubjectKind.PERSON
            or not rulebook.red_list.organization_needs_qualifier
            or any(item.et.red_list_qualifier and item.state == "counting" for item in live)
        )
    )
    lists = ListStatus(tuple(black), red_member, red_eligible)
    future = [d for d in upcoming if as_of < d < date.max]
    return Assessment(
        as_of=as_of,
        rulebook_version=rulebook.version,
        score=score,
        level=level,
        breakdown=breakdown,
        lists=lists,
        reasons=_reasons(live, rulebook, level),
        next_change_on=min(future) if future else None,
        contributions=_contributions(live) if explain else (),
    )


def _contributions(live: list[_Live]) -> tuple[Contribution, ...]:
    return tuple(
        Contribution(
            i.event.id,
            i.event.type,
            i.et.category,
            i.event.occurred_on,
            i.event.source,
            i.points,
            i.counted,
            i.expires_on,
            i.state,
        )
        for i in live
    )


def _apply_highest_only(live: list[_Live]) -> None:
    best: dict[str, _Live] = {}
    for item in live:
        group = item.et.highest_only
        if group is None or item.state != "counting":
            continue
        held = best.get(group)
        if held is None or abs(item.points) > abs(held.points):
            if held is not None:
                held.counted, held.state = 0, "superseded"
            best[group] = item
        else:
            item.counted, item.state = 0, "superseded"


def _apply_caps(live: list[_Live], rulebook: Rulebook, as_of: date) -> list[date]:
    """Clip each cap group per window (window k: fact dates in (as_of − (k+1)w, as_of − kw]).

    Returns the dates at which an event moves to an older window (the caps may then change).
    """
    boundaries: list[date] = []
    used: dict[tuple[str, int], int] = {}
    for item in live:  # in fact-date order, so the earliest events fill the cap first
        if item.et.cap is None or item.state != "counting":
            continue
        cap = rulebook.caps[item.et.cap]
        window = 0
        while add_months(item.event.occurred_on, cap.window_months * (window + 1)) <= as_of:
            window += 1
        boundaries.append(add_months(item.event.occurred_on, cap.window_months * (window + 1)))
        key = (item.et.cap, window)
        room = cap.limit - used.get(key, 0)
        counted = min(item.points, room) if cap.limit > 0 else max(item.points, room)
        if counted != item.points:
            item.state = "capped"
        item.counted = counted
        used[key] = used.get(key, 0) + counted
    return boundaries


def repair_route(et: EventType, event: Event, rulebook: Rulebook) -> Repair:
    """How the effect of a negative event can end: repair (from a date), list exit, or only expiry."""
    if et.black_list is not None:
        return Repair("list-exit", None)
    tier = rulebook.tiers.get(et.tier or "")
    if tier is None or tier.repair_after_months is None:
        return Repair("expiry", None)
    return Repair("repair", add_months(_counts_from(et, event, rulebook), tier.repair_after_months))


def _counts_from(et: EventType, event: Event, rulebook: Rulebook) -> date:
    """The start of an event's period: the end of the conduct for tiers that say so (financial
    defaults, 征信业管理条例 art. 16), otherwise the fact date."""
    tier = rulebook.tiers.get(et.tier or "")
    if tier is not None and tier.from_end_of_conduct and event.ended_on is not None:
        return event.ended_on
    return event.occurred_on


def _reasons(live: list[_Live], rulebook: Rulebook, level: str) -> tuple[Reason, ...]:
    if level == rulebook.levels[0].name:
        return ()
    costly = sorted(
        (i for i in live if i.counted < 0),
        key=lambda i: (i.counted, -i.event.occurred_on.toordinal(), i.event.id),
    )
    return tuple(
        Reason(
            code=i.event.type,
            event_id=i.event.id,
            occurred_on=i.event.occurred_on,
            source=i.event.source,
            points=i.counted,
            expires_on=i.expires_on,
            repair=repair_route(i.et, i.event, rulebook),
        )
        for i in costly[:MAX_REASONS]
    )
