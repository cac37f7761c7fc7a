"""The steps of the scoring engine that work on classified events (see :mod:`credit.engine`).

Two callers run them: :func:`credit.engine.evaluate` over a subject's whole history, and
:func:`credit.subject_state.assess_state` over the events a stored state still holds. Keeping the
steps in one place is what makes the two agree: a step is written once and read by both.

* :func:`type_specs` — what the engine reads of each event type, looked up once per rulebook;
* :func:`classify` — one event's state, period and points at the as-of date;
* :func:`highest_only` and :func:`with_credits` — highest-only groups and cap credits;
* :func:`assess_items` — totals, lists, reasons and the next change, from the classified events
  and the few facts about earlier history that the list rules read (:class:`History`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import NamedTuple, Protocol

from credit.engine_types import (
    MAX_REASONS,
    Assessment,
    BlackListing,
    Contribution,
    ContributionState,
    ListStatus,
    Reason,
    RedListAction,
    RedListDecision,
    Repair,
    RepairRoute,
)
from credit.identifiers import SubjectKind
from credit.months import add_months
from credit.rulebook import Category, EventType, Rulebook

_CATEGORIES = tuple(Category)  # iterating the enum class itself is slow in the hot path


class TypeSpec(NamedTuple):
    """What the engine reads of one event type under one rulebook (built by :func:`type_specs`)."""

    et: EventType
    category: Category
    points: int  # per unit
    max_quantity: int
    months: int  # how long a non-listing counts (0 for listings and listing exits)
    from_end_of_conduct: bool  # counts from the event's ended_on when it has one
    list_months: int  # listings: the source list's longest term (0 otherwise)
    after_exit_months: int  # listings: how long they count after the listing ends
    black_list: str | None
    cap: str | None
    highest_only: str | None
    ends_listing: bool
    removes_from_red_list: bool  # its tier is one of the red list's removal tiers
    red_list_qualifier: bool
    repair: RepairRoute  # how its effect can end (see repair_route)
    repair_after_months: int  # RepairRoute.REPAIR: from the start of its period


# Rulebooks are few and long-lived; the strong reference in each entry keeps its id() unique.
_SPECS: dict[int, tuple[Rulebook, Mapping[str, TypeSpec]]] = {}


def type_specs(rulebook: Rulebook) -> Mapping[str, TypeSpec]:
    """Event type → :class:`TypeSpec`, computed once per rulebook object."""
    hit = _SPECS.get(id(rulebook))
    if hit is not None and hit[0] is rulebook:
        return hit[1]
    removal = set(rulebook.red_list.removal_tiers)
    specs: dict[str, TypeSpec] = {}
    for key, et in rulebook.event_types.items():
        tier = rulebook.tiers.get(et.tier or "")
        source_list = rulebook.list_entered(et)
        months = 0
        if source_list is None and not et.ends_listing:
            months = et.counts_months or (tier.counts_months if tier is not None else 0)
        specs[key] = TypeSpec(
            et=et,
            category=et.category,
            points=et.points,
            max_quantity=et.max_quantity,
            months=months,
            from_end_of_conduct=tier is not None and tier.from_end_of_conduct,
            list_months=source_list.max_months if source_list is not None else 0,
            after_exit_months=et.counts_after_exit_months,
            black_list=et.black_list,
            cap=et.cap,
            highest_only=et.highest_only,
            ends_listing=et.ends_listing,
            removes_from_red_list=et.tier in removal,
            red_list_qualifier=et.red_list_qualifier,
            repair=(
                RepairRoute.LIST_EXIT
                if source_list is not None
                else RepairRoute.EXPIRY
                if tier is None or tier.repair_after_months is None
                else RepairRoute.REPAIR
            ),
            repair_after_months=(tier.repair_after_months or 0) if tier is not None else 0,
        )
    if len(_SPECS) >= 16:
        _SPECS.clear()
    _SPECS[id(rulebook)] = (rulebook, specs)
    return specs


class EventFacts(Protocol):
    """What the steps read of an event: an :class:`~credit.engine_types.Event`, or an event kept
    in a subject's incremental state (:class:`credit.subject_state_types.LiveEvent`)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_on(self) -> date: ...
    @property
    def source(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def ended_on(self) -> date | None: ...


class Item(NamedTuple):
    """One event, classified at the as-of date (a tuple: the engine makes millions of these)."""

    event: EventFacts
    spec: TypeSpec
    points: int  # points × quantity (0 for withdrawn events and listing exits)
    expires_on: date | None
    state: ContributionState
    counted: int
    exit_due: date | None = None  # listings: the day the listing ends


class History(NamedTuple):
    """What the list rules read of events whatever their state (expired ones included)."""

    latest_negative: date | None  # the latest negative event not withdrawn (red list: clean years)
    latest_removal: date | None  # the latest removal-tier event not withdrawn (red-list membership)


_COUNTING = ContributionState.COUNTING
_EXPIRED = ContributionState.EXPIRED
_REPAIRED = ContributionState.REPAIRED
_WITHDRAWN = ContributionState.WITHDRAWN


# --- classification -----------------------------------------------------------------------------


def classify(
    ev: EventFacts, spec: TypeSpec, as_of: date, withdrawn: bool, repaired: bool, exit_on: date | None
) -> Item:
    """The event's state, period and points at ``as_of``, before highest-only groups and caps.

    ``exit_on``: for a listing, the earliest listing-exit event referring to it (not withdrawn).
    An event counts from its fact date (or the end of the conduct, for financial defaults) for its
    period; a listing counts while listed (to its exit or the list's longest term) plus
    ``counts_after_exit_months``. Points are ``points × quantity`` (quantity within 1..max).
    """
    if withdrawn:
        return Item(ev, spec, 0, None, _WITHDRAWN, 0)
    if spec.ends_listing:
        return Item(ev, spec, 0, None, ContributionState.LISTING_EXIT, 0)
    quantity = ev.quantity
    if quantity > spec.max_quantity:
        quantity = spec.max_quantity
    points = spec.points * (quantity if quantity > 1 else 1)
    exit_due: date | None = None
    if spec.list_months:
        exit_due = add_months(ev.occurred_on, spec.list_months)
        if exit_on is not None and exit_on < exit_due:
            exit_due = exit_on
        expires_on = add_months(exit_due, spec.after_exit_months)
    else:
        start = ev.occurred_on
        if spec.from_end_of_conduct and ev.ended_on is not None:  # 征信业管理条例 art. 16
            start = ev.ended_on
        expires_on = add_months(start, spec.months)
    if expires_on <= as_of:
        return Item(ev, spec, points, expires_on, _EXPIRED, 0, exit_due)
    if repaired:
        return Item(ev, spec, points, expires_on, _REPAIRED, 0, exit_due)
    return Item(ev, spec, points, expires_on, _COUNTING, points, exit_due)


# --- credit: highest-only groups and caps ---------------------------------------------------------


def highest_only(items: list[Item]) -> list[Item]:
    """In each group only the counting event with the largest points counts (ties: the earliest).

    ``items`` in date order (ties by event id).
    """
    best: dict[str, Item] = {}
    for item in items:
        group = item.spec.highest_only
        if group is not None and item.state is _COUNTING:
            held = best.get(group)
            if held is None or abs(item.points) > abs(held.points):
                best[group] = item
    if not best:
        return items
    return [
        item._replace(counted=0, state=ContributionState.SUPERSEDED)
        if item.spec.highest_only is not None
        and item.state is _COUNTING
        and best[item.spec.highest_only] is not item
        else item
        for item in items
    ]


def with_credits(items: list[Item], credits: Mapping[str, int]) -> list[Item]:
    """Counting items of a cap group take their credit; cut down, they are shown as capped."""
    if not credits:
        return items
    out = []
    for item in items:
        credit = credits.get(item.event.id, item.points)
        if credit != item.points and item.state is _COUNTING:
            item = item._replace(counted=credit, state=ContributionState.CAPPED)
        out.append(item)
    return out


# --- totals, lists, reasons -----------------------------------------------------------------------


def history_of(items: Iterable[Item]) -> History:
    """The :class:`History` of a whole history's classified events."""
    negative: date | None = None
    removal: date | None = None
    for item in items:
        if item.state is _WITHDRAWN:
            continue
        day = item.event.occurred_on
        if item.points < 0 and (negative is None or day > negative):
            negative = day
        if item.spec.removes_from_red_list and (removal is None or day > removal):
            removal = day
    return History(negative, removal)


def red_entry(decisions: Iterable[RedListDecision], as_of: date) -> tuple[date | None, date | None]:
    """(the red-list entry in force at ``as_of``, the date of the last decision by then).

    Decisions of the same day apply in the order they were recorded (a stable sort).
    """
    entered: date | None = None
    last: date | None = None
    for decision in sorted(decisions, key=lambda d: d.effective_on):
        if decision.effective_on <= as_of:
            last = decision.effective_on
            entered = decision.effective_on if decision.action is RedListAction.ENTER else None
    return entered, last


def assess_items(
    items: list[Item],
    rulebook: Rulebook,
    as_of: date,
    subject: SubjectKind,
    history: History,
    red_entered: date | None,
    *,
    boundaries: Iterable[date] = (),
    explain: bool = False,
) -> Assessment:
    """Totals, lists, reasons and the next change from classified and credited ``items``.

    ``items`` in date order (ties by event id); they must include every event not withdrawn
    that has not expired at ``as_of`` (expired ones may be left out: only ``history`` reads them).
    """
    black = black_listings(items, as_of)
    breakdown = dict.fromkeys(_CATEGORIES, 0)
    for item in items:
        if item.counted:
            breakdown[item.spec.category] += item.counted
    scale = rulebook.scale
    score = max(scale.min, min(scale.max, scale.base + sum(breakdown.values())))
    if black:
        score = min(score, scale.black_list_cap)
    level = rulebook.level_of(score)
    clean_since = None
    if history.latest_negative is not None:
        clean_since = add_months(history.latest_negative, 12 * rulebook.red_list.clean_years)
    lists = ListStatus(
        black,
        red_member(red_entered, black, history, rulebook),
        red_eligible(items, rulebook, black, score, clean_since, subject, as_of),
    )
    return Assessment(
        as_of,
        rulebook.version,
        score,
        level,
        breakdown,
        lists,
        reasons(items, rulebook, level),
        next_change(items, black, boundaries, clean_since, as_of),
        tuple(contribution(i) for i in items) if explain else (),
    )


def black_listings(items: Iterable[Item], as_of: date) -> tuple[BlackListing, ...]:
    """Black-list entries not yet ended at ``as_of`` (a repair does not end a listing)."""
    found = [
        BlackListing(i.spec.black_list, i.event.id, i.event.occurred_on, i.exit_due)
        for i in items
        if i.spec.black_list is not None
        and i.exit_due is not None
        and i.state is not _WITHDRAWN
        and i.exit_due > as_of
    ]
    return tuple(found) if found else ()


def red_member(
    entered: date | None, black: Sequence[BlackListing], history: History, rulebook: Rulebook
) -> bool:
    """A confirmed member, unless black-listed or a removal-tier event came after the vetting."""
    if entered is None or black:  # any black listing ends membership at once, like a serious event
        return False
    # A serious event removes from the red list at once; a person then confirms the formal exit —
    # also one dated before the entry but reported later: the entry rested on incomplete facts.
    if history.latest_removal is None:
        return True
    return history.latest_removal < add_months(entered, -12 * rulebook.red_list.clean_years)


def red_eligible(
    items: Sequence[Item],
    rulebook: Rulebook,
    black: Sequence[BlackListing],
    score: int,
    clean_since: date | None,
    subject: SubjectKind,
    as_of: date,
) -> bool:
    """Level, clean years, no black listing, and for organizations an active qualifier.

    Clean years count from the latest negative event, expired and repaired ones included: they
    happened.
    """
    return (
        not black
        and score >= rulebook.level_min(rulebook.red_list.min_level)
        and (clean_since is None or clean_since <= as_of)
        and (
            subject is SubjectKind.PERSON
            or not rulebook.red_list.organization_needs_qualifier
            or any(i.spec.red_list_qualifier and i.state is _COUNTING for i in items)
        )
    )


def reasons(items: Iterable[Item], rulebook: Rulebook, level: str) -> tuple[Reason, ...]:
    """Up to :data:`MAX_REASONS` counting negative events, most costly first (latest among equals)."""
    if level == rulebook.levels[0].name:
        return ()
    costly = [i for i in items if i.counted < 0]
    if len(costly) > 1:
        costly.sort(key=lambda i: (i.counted, -i.event.occurred_on.toordinal(), i.event.id))
    out = []
    for i in costly[:MAX_REASONS]:
        ev = i.event
        out.append(
            Reason(ev.type, ev.id, ev.occurred_on, ev.source, i.counted, i.expires_on, _repair(i.spec, ev))
        )
    return tuple(out)


# Repairs without a date are values: one object each serves every reason.
_NO_DATE_REPAIRS = {route: Repair(route, None) for route in (RepairRoute.LIST_EXIT, RepairRoute.EXPIRY)}


def _repair(spec: TypeSpec, event: EventFacts) -> Repair:
    """:func:`repair_route` from the type's spec (the reasons' hot path)."""
    if spec.repair is not RepairRoute.REPAIR:
        return _NO_DATE_REPAIRS[spec.repair]
    start = event.occurred_on
    if spec.from_end_of_conduct and event.ended_on is not None:
        start = event.ended_on
    return Repair(RepairRoute.REPAIR, add_months(start, spec.repair_after_months))


def next_change(
    items: Iterable[Item],
    black: Iterable[BlackListing],
    boundaries: Iterable[date],
    clean_since: date | None,
    as_of: date,
) -> date | None:
    """The earliest future date at which the score, level or lists may change with no new input:
    an expiry, a listing's end, the clean-years date, or (legacy caps) an event changing block."""
    soonest = date.max  # never a change date: "no end known"
    for item in items:
        expires_on = item.expires_on
        if expires_on is not None and as_of < expires_on < soonest:
            soonest = expires_on
    for listing in black:
        if as_of < listing.exit_due < soonest:
            soonest = listing.exit_due
    for day in boundaries:
        if as_of < day < soonest:
            soonest = day
    if clean_since is not None and as_of < clean_since < soonest:
        soonest = clean_since
    return None if soonest == date.max else soonest


def contribution(item: Item) -> Contribution:
    """What one classified event does to the score (the explained form of an assessment)."""
    return Contribution(
        item.event.id,
        item.event.type,
        item.spec.category,
        item.event.occurred_on,
        item.event.source,
        item.points,
        item.counted,
        item.expires_on,
        item.state,
    )


def counts_from(et: EventType, event: EventFacts, rulebook: Rulebook) -> date:
    """The start of an event's period: the end of the conduct for tiers that say so (financial
    defaults, 征信业管理条例 art. 16), otherwise the fact date."""
    tier = rulebook.tiers.get(et.tier or "")
    if tier is not None and tier.from_end_of_conduct and event.ended_on is not None:
        return event.ended_on
    return event.occurred_on


def repair_route(et: EventType, event: EventFacts, rulebook: Rulebook) -> Repair:
    """How the effect of a negative event can end: repair (from a date), list exit, or only expiry."""
    if et.source_list is not None:
        return Repair(RepairRoute.LIST_EXIT, None)
    tier = rulebook.tiers.get(et.tier or "")
    if tier is None or tier.repair_after_months is None:
        return Repair(RepairRoute.EXPIRY, None)
    return Repair(RepairRoute.REPAIR, add_months(counts_from(et, event, rulebook), tier.repair_after_months))
