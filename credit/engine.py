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

Each step is a small pure function, here (effects, caps) or in :mod:`credit.engine_steps` (the
steps on classified events, shared with the incremental :mod:`credit.subject_state`);
:func:`evaluate` runs them in this order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from credit.engine_caps import CapEntry, calendar_block_credits, rolling_credits
from credit.engine_steps import (
    Item,
    TypeSpec,
    assess_items,
    classify,
    highest_only,
    history_of,
    red_entry,
    repair_route,
    type_specs,
    with_credits,
)
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
from credit.rulebook import CapRule, Rulebook

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


def _in_order(ev: Event) -> tuple[date, str]:
    return ev.occurred_on, ev.id


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
    specs = type_specs(rulebook)
    known = sorted((ev for ev in events if ev.occurred_on <= as_of and ev.type in specs), key=_in_order)
    repaired, withdrawn = outcomes(effects, as_of)
    exits = listing_exits(known, specs, withdrawn)
    items = [
        classify(ev, specs[ev.type], as_of, ev.id in withdrawn, ev.id in repaired, exits.get(ev.id))
        for ev in known
    ]
    items, boundaries = _credit(items, rulebook, as_of, repaired)
    entered, _last = red_entry(red_list, as_of)
    return assess_items(
        items,
        rulebook,
        as_of,
        subject,
        history_of(items),
        entered,
        boundaries=boundaries,
        explain=explain,
    )


# --- 1. effects -----------------------------------------------------------------------------------


def outcomes(effects: Iterable[Effect], as_of: date) -> tuple[dict[str, date], set[str]]:
    """The workflow outcomes in force at ``as_of``: repairs (event id → the earliest repair date)
    and withdrawals (event ids)."""
    repaired: dict[str, date] = {}
    withdrawn: set[str] = set()
    for eff in effects:
        if eff.effective_on > as_of:
            continue
        if eff.kind is EffectKind.WITHDRAWN:
            withdrawn.add(eff.event_id)
        else:
            earlier = repaired.get(eff.event_id)
            if earlier is None or eff.effective_on < earlier:
                repaired[eff.event_id] = eff.effective_on
    return repaired, withdrawn


def listing_exits(
    events: Iterable[Event], specs: Mapping[str, TypeSpec], withdrawn: set[str]
) -> dict[str, date]:
    """Listing id → the earliest exit event that refers to it (withdrawn exits do not count)."""
    exits: dict[str, date] = {}
    for ev in events:
        if not ev.refers_to or not specs[ev.type].ends_listing or ev.id in withdrawn:
            continue
        earlier = exits.get(ev.refers_to)
        if earlier is None or ev.occurred_on < earlier:
            exits[ev.refers_to] = ev.occurred_on
    return exits


# --- 2. classification: credit.engine_steps.classify ------------------------------------------------

# --- 3. credit: highest-only groups and caps --------------------------------------------------------


def _credit(
    items: list[Item], rulebook: Rulebook, as_of: date, repaired: Mapping[str, date]
) -> tuple[list[Item], list[date]]:
    """Apply highest-only groups, then caps; also the dates at which a legacy cap may change."""
    items = highest_only(items)
    if rulebook.cap_rule is CapRule.ROLLING:
        return with_credits(items, cap_credits(items, rulebook, repaired)), []
    return _calendar_block_caps(items, rulebook, as_of)


def cap_credits(items: Iterable[Item], rulebook: Rulebook, repaired: Mapping[str, date]) -> dict[str, int]:
    """The rolling rule: every event of a cap group that is not withdrawn is credited once, by date.

    Expired, repaired and counting events all take part, since the credit of an event depends
    only on the events before it (:func:`credit.engine_caps.rolling_credits`).
    """
    groups: dict[str, list[CapEntry]] = {}
    for item in items:
        key = item.spec.cap
        if key is None or item.state is ContributionState.WITHDRAWN:
            continue
        entry = CapEntry(item.event.occurred_on, item.event.id, item.points, repaired.get(item.event.id))
        group = groups.get(key)
        if group is None:
            groups[key] = [entry]
        else:
            group.append(entry)
    credits: dict[str, int] = {}
    for key, entries in groups.items():  # items come in date order, ties by event id
        credits |= rolling_credits(entries, rulebook.caps[key], in_order=True)
    return credits


def _calendar_block_caps(items: list[Item], rulebook: Rulebook, as_of: date) -> tuple[list[Item], list[date]]:
    """The legacy rule (rulebooks without ``cap_rule``): only events counting at ``as_of`` take part."""
    groups: dict[str, list[CapEntry]] = {}
    for item in items:
        if item.spec.cap is not None and item.state is ContributionState.COUNTING:
            groups.setdefault(item.spec.cap, []).append(
                CapEntry(item.event.occurred_on, item.event.id, item.points)
            )
    credits: dict[str, int] = {}
    boundaries: list[date] = []
    for key, entries in groups.items():
        group_credits, group_boundaries = calendar_block_credits(entries, rulebook.caps[key], as_of)
        credits |= group_credits
        boundaries.extend(group_boundaries)
    return with_credits(items, credits), boundaries


# --- 4.-6. totals, lists, reasons and the next change: credit.engine_steps.assess_items -------------
