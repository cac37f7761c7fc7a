"""The scoring engine: (events, rulebook, as-of date) → score, level, breakdown, lists, reasons.

A pure, deterministic function: no database, clock or randomness. The same inputs give the same
:class:`Assessment` everywhere, which is what lets a citizen or an auditor recompute any score
from the anchored ``credit_event`` records and the anchored rulebook (``trustledger credit
replay``). Workflow outcomes that change an event's effect (a repair, a correction that withdraws
it, a red-list decision) are inputs too, each with the date it takes effect.

Rules, in order (CREDIT-RULES.md):

1. Effects: a withdrawn (corrected) event never counts; a repaired one stops counting from the
   repair date but stays on record.
2. Classification, per event: it counts from its fact date (or the end of the conduct, for
   financial defaults) for its tier's period or its own ``counts_months``; a listing (black or
   watch list) counts while listed plus ``counts_after_exit_months``. Points are
   ``points × quantity``.
3. Credit: in a ``highest_only`` group only the largest counts; a cap limits a group's points
   per window under the rulebook's cap rule (:mod:`credit.engine_caps`).
4. Totals: the score is ``base + Σ``, clamped to the scale; any active black listing caps it.
5. Lists: active black listings; red-list membership (confirmed decisions) and eligibility.
6. Up to four reasons: the active negative events costing most, each with its expiry and repair
   route. "Score too low" is never a reason.

Each step is a small pure function below; :func:`evaluate` runs them in this order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from credit.engine_caps import CapEntry, calendar_block_credits, rolling_credits
from credit.engine_types import (
    MAX_REASONS,
    Assessment,
    BlackListing,
    Contribution,
    ContributionState,
    Effect,
    EffectKind,
    Event,
    ListStatus,
    Reason,
    RedListAction,
    RedListDecision,
    Repair,
    RepairRoute,
)
from credit.identifiers import SubjectKind
from credit.months import add_months
from credit.rulebook import CapRule, Category, EventType, Rulebook, SourceList

__all__ = [
    "MAX_REASONS",
    "Assessment",
    "BlackListing",
    "Contribution",
    "ContributionState",
    "Effect",
    "EffectKind",
    "Event",
    "ListStatus",
    "Reason",
    "RedListAction",
    "RedListDecision",
    "Repair",
    "RepairRoute",
    "add_months",
    "evaluate",
    "repair_route",
]


@dataclass(frozen=True)
class _Outcomes:
    """The workflow outcomes in force at the as-of date."""

    repaired: Mapping[str, date]  # event id → the earliest repair date
    withdrawn: frozenset[str]


class _Item(NamedTuple):
    """One event, classified at the as-of date (a tuple: the engine makes millions of these)."""

    event: Event
    et: EventType
    points: int  # points × quantity (0 for withdrawn events and listing exits)
    expires_on: date | None
    state: ContributionState
    counted: int
    exit_due: date | None = None  # listings: the day the listing ends


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
    known = sorted(
        (ev for ev in events if ev.occurred_on <= as_of and ev.type in rulebook.event_types),
        key=lambda ev: (ev.occurred_on, ev.id),
    )
    outcomes = _outcomes(effects, as_of)
    exits = _listing_exits(known, rulebook, outcomes.withdrawn)
    items = [_classify(ev, rulebook, as_of, outcomes, exits) for ev in known]
    items, boundaries = _credit(items, rulebook, as_of, outcomes)
    black = _black_listings(items, as_of)
    breakdown = _breakdown(items)
    score = _score(breakdown, rulebook, black)
    level = rulebook.level_of(score)
    clean_since = _clean_since(items, rulebook)
    lists = ListStatus(
        black=black,
        red_member=_red_member(items, rulebook, black, red_list, as_of),
        red_eligible=_red_eligible(items, rulebook, black, score, clean_since, subject, as_of),
    )
    return Assessment(
        as_of=as_of,
        rulebook_version=rulebook.version,
        score=score,
        level=level,
        breakdown=breakdown,
        lists=lists,
        reasons=_reasons(items, rulebook, level),
        next_change_on=_next_change(items, black, boundaries, clean_since, as_of),
        contributions=tuple(_contribution(i) for i in items) if explain else (),
    )


# --- 1. effects -----------------------------------------------------------------------------------


def _outcomes(effects: Iterable[Effect], as_of: date) -> _Outcomes:
    """Repairs (the earliest date wins) and withdrawals in force at ``as_of``."""
    repaired: dict[str, date] = {}
    withdrawn: set[str] = set()
    for eff in effects:
        if eff.effective_on > as_of:
            continue
        if eff.kind is EffectKind.WITHDRAWN:
            withdrawn.add(eff.event_id)
        else:
            repaired[eff.event_id] = min(eff.effective_on, repaired.get(eff.event_id, eff.effective_on))
    return _Outcomes(repaired, frozenset(withdrawn))


def _listing_exits(events: Iterable[Event], rulebook: Rulebook, withdrawn: frozenset[str]) -> dict[str, date]:
    """Listing id → the earliest exit event that refers to it (withdrawn exits do not count)."""
    exits: dict[str, date] = {}
    for ev in events:
        if ev.id in withdrawn or not rulebook.event_types[ev.type].ends_listing or not ev.refers_to:
            continue
        earlier = exits.get(ev.refers_to)
        exits[ev.refers_to] = ev.occurred_on if earlier is None else min(earlier, ev.occurred_on)
    return exits


# --- 2. classification ----------------------------------------------------------------------------


def _classify(
    ev: Event, rulebook: Rulebook, as_of: date, outcomes: _Outcomes, exits: Mapping[str, date]
) -> _Item:
    """The event's state, period and points at ``as_of``, before highest-only groups and caps."""
    et = rulebook.event_types[ev.type]
    if ev.id in outcomes.withdrawn:
        return _Item(ev, et, 0, None, ContributionState.WITHDRAWN, 0)
    if et.ends_listing:
        return _Item(ev, et, 0, None, ContributionState.LISTING_EXIT, 0)
    points = et.points * max(1, min(ev.quantity, et.max_quantity))
    exit_due: date | None = None
    expires_on: date | None
    if et.black_list is None and et.watch_list is None:
        months = et.counts_months or rulebook.tiers[et.tier or ""].counts_months
        expires_on = add_months(_counts_from(et, ev, rulebook), months)
    else:
        exit_due, expires_on = _listing_period(ev, et, rulebook, exits)
    if expires_on is not None and expires_on <= as_of:
        return _Item(ev, et, points, expires_on, ContributionState.EXPIRED, 0, exit_due)
    if ev.id in outcomes.repaired:
        return _Item(ev, et, points, expires_on, ContributionState.REPAIRED, 0, exit_due)
    return _Item(ev, et, points, expires_on, ContributionState.COUNTING, points, exit_due)


def _listing_period(
    ev: Event, et: EventType, rulebook: Rulebook, exits: Mapping[str, date]
) -> tuple[date, date | None]:
    """A listing's end (its exit event or the list's longest term) and its expiry after that."""
    if et.black_list is not None:
        source_list: SourceList = rulebook.black_lists[et.black_list]
    else:
        source_list = rulebook.watch_lists[et.watch_list or ""]
    exit_due = min(exits.get(ev.id, date.max), add_months(ev.occurred_on, source_list.max_months))
    expires_on = add_months(exit_due, et.counts_after_exit_months) if exit_due < date.max else None
    return exit_due, expires_on


def _counts_from(et: EventType, event: Event, rulebook: Rulebook) -> date:
    """The start of an event's period: the end of the conduct for tiers that say so (financial
    defaults, 征信业管理条例 art. 16), otherwise the fact date."""
    tier = rulebook.tiers.get(et.tier or "")
    if tier is not None and tier.from_end_of_conduct and event.ended_on is not None:
        return event.ended_on
    return event.occurred_on


# --- 3. credit: highest-only groups and caps --------------------------------------------------------


def _credit(
    items: list[_Item], rulebook: Rulebook, as_of: date, outcomes: _Outcomes
) -> tuple[list[_Item], list[date]]:
    """Apply highest-only groups, then caps; also the dates at which a legacy cap may change."""
    items = _highest_only(items)
    if rulebook.cap_rule is CapRule.ROLLING:
        return _rolling_caps(items, rulebook, outcomes), []
    return _calendar_block_caps(items, rulebook, as_of)


def _highest_only(items: list[_Item]) -> list[_Item]:
    """In each group only the counting event with the largest points counts (ties: the earliest)."""
    best: dict[str, _Item] = {}
    for item in items:  # in date order
        group = item.et.highest_only
        if group is not None and item.state is ContributionState.COUNTING:
            held = best.get(group)
            if held is None or abs(item.points) > abs(held.points):
                best[group] = item
    if not best:
        return items
    return [
        item._replace(counted=0, state=ContributionState.SUPERSEDED)
        if item.et.highest_only is not None
        and item.state is ContributionState.COUNTING
        and best[item.et.highest_only] is not item
        else item
        for item in items
    ]


def _with_credits(items: list[_Item], credits: Mapping[str, int]) -> list[_Item]:
    """Counting items of a cap group take their credit; cut down, they are shown as capped."""
    if not credits:
        return items
    out = []
    for item in items:
        credit = credits.get(item.event.id, item.points)
        if credit != item.points and item.state is ContributionState.COUNTING:
            item = item._replace(counted=credit, state=ContributionState.CAPPED)
        out.append(item)
    return out


def _rolling_caps(items: list[_Item], rulebook: Rulebook, outcomes: _Outcomes) -> list[_Item]:
    """The rolling rule: every event of a cap group that is not withdrawn is credited once, by date.

    Expired, repaired and counting events all take part, since the credit of an event depends
    only on the events before it (:func:`credit.engine_caps.rolling_credits`).
    """
    groups: dict[str, list[CapEntry]] = {}
    for item in items:
        if item.et.cap is None or item.state is ContributionState.WITHDRAWN:
            continue
        entry = CapEntry(
            item.event.occurred_on, item.event.id, item.points, outcomes.repaired.get(item.event.id)
        )
        groups.setdefault(item.et.cap, []).append(entry)
    credits: dict[str, int] = {}
    for key, entries in groups.items():
        credits |= rolling_credits(entries, rulebook.caps[key])
    return _with_credits(items, credits)


def _calendar_block_caps(
    items: list[_Item], rulebook: Rulebook, as_of: date
) -> tuple[list[_Item], list[date]]:
    """The legacy rule (rulebooks without ``cap_rule``): only events counting at ``as_of`` take part."""
    groups: dict[str, list[CapEntry]] = {}
    for item in items:
        if item.et.cap is not None and item.state is ContributionState.COUNTING:
            groups.setdefault(item.et.cap, []).append(
                CapEntry(item.event.occurred_on, item.event.id, item.points)
            )
    credits: dict[str, int] = {}
    boundaries: list[date] = []
    for key, entries in groups.items():
        group_credits, group_boundaries = calendar_block_credits(entries, rulebook.caps[key], as_of)
        credits |= group_credits
        boundaries.extend(group_boundaries)
    return _with_credits(items, credits), boundaries


# --- 4. totals --------------------------------------------------------------------------------------


def _breakdown(items: Iterable[_Item]) -> dict[Category, int]:
    """Σ counted per category (every category present)."""
    breakdown = dict.fromkeys(Category, 0)
    for item in items:
        if item.counted:
            breakdown[item.et.category] += item.counted
    return breakdown


def _score(breakdown: Mapping[Category, int], rulebook: Rulebook, black: Sequence[BlackListing]) -> int:
    """``base + Σ counted``, clamped to the scale; any active black listing caps it."""
    scale = rulebook.scale
    score = max(scale.min, min(scale.max, scale.base + sum(breakdown.values())))
    return min(score, scale.black_list_cap) if black else score


# --- 5. lists ---------------------------------------------------------------------------------------


def _black_listings(items: Iterable[_Item], as_of: date) -> tuple[BlackListing, ...]:
    """Black-list entries not yet ended at ``as_of`` (a repair does not end a listing)."""
    return tuple(
        BlackListing(i.et.black_list, i.event.id, i.event.occurred_on, i.exit_due)
        for i in items
        if i.et.black_list is not None
        and i.exit_due is not None
        and i.state is not ContributionState.WITHDRAWN
        and i.exit_due > as_of
    )


def _red_member(
    items: Iterable[_Item],
    rulebook: Rulebook,
    black: Sequence[BlackListing],
    decisions: Iterable[RedListDecision],
    as_of: date,
) -> bool:
    """A confirmed member, unless black-listed or a removal-tier event came after the vetting."""
    entered: date | None = None
    # A stable sort: decisions of the same day apply in the order they were recorded.
    for decision in sorted(decisions, key=lambda d: d.effective_on):
        if decision.effective_on <= as_of:
            entered = decision.effective_on if decision.action is RedListAction.ENTER else None
    if entered is None or black:  # any black listing ends membership at once, like a serious event
        return False
    # A serious event removes from the red list at once; a person then confirms the formal exit —
    # also one dated before the entry but reported later: the entry rested on incomplete facts.
    removal = set(rulebook.red_list.removal_tiers)
    vetted_from = add_months(entered, -12 * rulebook.red_list.clean_years)
    return not any(
        i.et.tier in removal
        and i.event.occurred_on >= vetted_from
        and i.state is not ContributionState.WITHDRAWN
        for i in items
    )


def _clean_since(items: Iterable[_Item], rulebook: Rulebook) -> date | None:
    """The day the subject has had no negative event for the red list's clean years (None: never had one).

    Expired and repaired events count here: they happened.
    """
    negatives = [
        i.event.occurred_on
        for i in items
        if i.points < 0 and i.state not in (ContributionState.WITHDRAWN, ContributionState.LISTING_EXIT)
    ]
    if not negatives:
        return None
    return add_months(max(negatives), 12 * rulebook.red_list.clean_years)


def _red_eligible(
    items: Sequence[_Item],
    rulebook: Rulebook,
    black: Sequence[BlackListing],
    score: int,
    clean_since: date | None,
    subject: SubjectKind,
    as_of: date,
) -> bool:
    """Level, clean years, no black listing, and for organizations an active qualifier."""
    return (
        not black
        and score >= rulebook.level_min(rulebook.red_list.min_level)
        and (clean_since is None or clean_since <= as_of)
        and (
            subject is SubjectKind.PERSON
            or not rulebook.red_list.organization_needs_qualifier
            or any(i.et.red_list_qualifier and i.state is ContributionState.COUNTING for i in items)
        )
    )


# --- 6. reasons and the next change -----------------------------------------------------------------


def _reasons(items: Iterable[_Item], rulebook: Rulebook, level: str) -> tuple[Reason, ...]:
    """Up to :data:`MAX_REASONS` counting negative events, most costly first (latest among equals)."""
    if level == rulebook.levels[0].name:
        return ()
    costly = sorted(
        (i for i in items if i.counted < 0),
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


def _next_change(
    items: Iterable[_Item],
    black: Iterable[BlackListing],
    boundaries: Iterable[date],
    clean_since: date | None,
    as_of: date,
) -> date | None:
    """The earliest future date at which the score, level or lists may change with no new input:
    an expiry, a listing's end, the clean-years date, or (legacy caps) an event changing block."""
    upcoming = [i.expires_on for i in items if i.expires_on is not None and i.expires_on > as_of]
    upcoming += [b.exit_due for b in black]
    upcoming += boundaries
    if clean_since is not None:
        upcoming.append(clean_since)
    future = [d for d in upcoming if as_of < d < date.max]
    return min(future) if future else None


def _contribution(item: _Item) -> Contribution:
    return Contribution(
        item.event.id,
        item.event.type,
        item.et.category,
        item.event.occurred_on,
        item.event.source,
        item.points,
        item.counted,
        item.expires_on,
        item.state,
    )


def repair_route(et: EventType, event: Event, rulebook: Rulebook) -> Repair:
    """How the effect of a negative event can end: repair (from a date), list exit, or only expiry."""
    if et.source_list is not None:
        return Repair(RepairRoute.LIST_EXIT, None)
    tier = rulebook.tiers.get(et.tier or "")
    if tier is None or tier.repair_after_months is None:
        return Repair(RepairRoute.EXPIRY, None)
    return Repair(RepairRoute.REPAIR, add_months(_counts_from(et, event, rulebook), tier.repair_after_months))
