"""Incremental scoring: a subject's state, so that a new event is scored without its history.

:func:`credit.engine.evaluate` reads a subject's whole history on every call. A
:class:`SubjectState` keeps only what can still matter, under one rulebook version, from a date
``as_of`` on:

* the *live* events — not withdrawn and not expired at ``as_of`` — with their repair date, their
  cap credit (fixed by the rolling rule for the whole counting period) and, for listings, their
  exit events;
* per cap group, the credits inside the window of the group's latest event (what the room for the
  next event depends on) and the *horizon* before which credits were dropped;
* what the list rules read of events no longer live (:class:`~credit.engine_steps.History`: the
  latest negative and removal-tier dates), the red-list entry in force and the date of the last
  decision;
* listing exits whose listing is not known yet (a back-dated listing may still arrive).

The functions are pure: :func:`state_from_history` builds a state from the stored inputs,
:func:`apply_inputs` adds new events, effects and red-list decisions, :func:`advance` moves to a
later date, :func:`assess_state` gives exactly the :class:`~credit.engine.Assessment` that
``evaluate(..., explain=False)`` gives on the whole history. They share the engine's steps
(:mod:`credit.engine_steps`), so the two paths cannot drift apart; a hypothesis property in
``tests/credit/test_subject_state.py`` drives random histories through both.

When an input cannot be applied soundly without the history, :func:`apply_inputs` (and
:func:`advance`) return ``None`` and the caller rebuilds from the stored inputs:

* a capped event that is not the latest of its group (date order, ties by id), or whose window
  reaches before the group's horizon — it could change credits already given;
* the withdrawal of a capped event that is not the latest of its group, or a repair of a capped
  event dated on or before a later credit of its group (both change later credits);
* an effect on an event the state does not hold (expired, withdrawn or unknown);
* a listing exit whose listing is neither live nor awaited;
* a red-list decision dated before the last one applied;
* any input dated after the as-of date, a date before the state's, or reaching ``future_on`` (the
  first input dated after ``as_of`` in the history the state was built from);
* the service never dates inputs after its clock, so in production only the first four occur.

Only rulebooks with ``cap_rule = "rolling"`` have states: under the legacy calendar-block rule a
capped event's credit moves with the evaluation date, so nothing about the past can be kept.
:func:`state_from_history` refuses such a rulebook (:func:`supports_state` says which); score
those subjects with ``evaluate``. A state is refused under any rulebook version but its own.
The data classes and their stored form (``to_bytes`` / ``from_bytes``): :mod:`credit.subject_state_types`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date

from credit.engine import cap_credits, outcomes
from credit.engine_caps import CapEntry, Credited, rolling_credit
from credit.engine_steps import (
    History,
    Item,
    TypeSpec,
    assess_items,
    classify,
    highest_only,
    history_of,
    red_entry,
    type_specs,
    with_credits,
)
from credit.engine_types import (
    Assessment,
    ContributionState,
    Effect,
    EffectKind,
    Event,
    RedListAction,
    RedListDecision,
)
from credit.errors import SubjectStateError
from credit.identifiers import SubjectKind
from credit.months import add_months
from credit.rulebook import CapRule, Rulebook
from credit.subject_state_types import CapWindow, LiveEvent, OrphanExit, SubjectState

__all__ = [
    "CapWindow",
    "LiveEvent",
    "OrphanExit",
    "SubjectState",
    "advance",
    "apply_events",
    "apply_inputs",
    "assess_state",
    "state_from_history",
    "supports_state",
]

_EXPIRED = ContributionState.EXPIRED
_NOT_LIVE = (ContributionState.EXPIRED, ContributionState.WITHDRAWN, ContributionState.LISTING_EXIT)


def supports_state(rulebook: Rulebook) -> bool:
    """Whether subjects can be scored incrementally under ``rulebook`` (rolling caps only)."""
    return rulebook.cap_rule is CapRule.ROLLING


def _check(state: SubjectState, rulebook: Rulebook) -> None:
    if state.rulebook_version != rulebook.version:
        raise SubjectStateError(
            f"the state was built under rulebook {state.rulebook_version}, not {rulebook.version}: rebuild it"
        )


def _order(ev: Event) -> tuple[date, str]:
    return ev.occurred_on, ev.id


def _live_order(le: LiveEvent) -> tuple[date, str]:
    return le.event.occurred_on, le.event.id


def _latest(a: date | None, b: date | None) -> date | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


# --- building -------------------------------------------------------------------------------------


def state_from_history(
    events: Iterable[Event],
    rulebook: Rulebook,
    as_of: date,
    *,
    effects: Iterable[Effect] = (),
    red_list: Iterable[RedListDecision] = (),
    subject: SubjectKind = SubjectKind.PERSON,
) -> SubjectState:
    """The state of a subject at ``as_of`` from all its stored inputs (the arguments of ``evaluate``).

    Classifies and credits the history with the engine's own steps and keeps what can still matter.
    """
    if not supports_state(rulebook):
        raise SubjectStateError(
            f"rulebook {rulebook.version} applies caps in calendar blocks that move with the date: "
            "its subjects have no incremental state (evaluate them)"
        )
    specs = type_specs(rulebook)
    events = list(events)
    effects = list(effects)
    decisions = list(red_list)
    later = [ev.occurred_on for ev in events if ev.occurred_on > as_of and ev.type in specs]
    later += [e.effective_on for e in effects if e.effective_on > as_of]
    later += [d.effective_on for d in decisions if d.effective_on > as_of]
    known = sorted((ev for ev in events if ev.occurred_on <= as_of and ev.type in specs), key=_order)
    repaired, withdrawn = outcomes(effects, as_of)
    exits: dict[str, list[tuple[date, str]]] = {}
    for ev in known:
        if ev.refers_to and specs[ev.type].ends_listing and ev.id not in withdrawn:
            exits.setdefault(ev.refers_to, []).append((ev.occurred_on, ev.id))
    first_exit = {listing: min(found)[0] for listing, found in exits.items()}
    items = [
        classify(ev, specs[ev.type], as_of, ev.id in withdrawn, ev.id in repaired, first_exit.get(ev.id))
        for ev in known
    ]
    credits = cap_credits(items, rulebook, repaired)
    live: list[LiveEvent] = []
    groups: dict[str, list[Credited]] = {}
    for item in items:
        ev, spec = item.event, item.spec
        if spec.cap is not None and item.state is not ContributionState.WITHDRAWN:
            credited = Credited(ev.occurred_on, ev.id, credits[ev.id], repaired.get(ev.id))
            groups.setdefault(spec.cap, []).append(credited)
        if item.state not in _NOT_LIVE:
            listing_exits_of = tuple(sorted(exits.get(ev.id, ()))) if spec.list_months else ()
            credit = credits[ev.id] if spec.cap is not None else None
            live.append(LiveEvent(ev, repaired.get(ev.id), credit, listing_exits_of))
    windows = []
    for key in sorted(groups):
        group = groups[key]
        horizon = add_months(group[-1].occurred_on, -rulebook.caps[key].window_months)
        windows.append((key, CapWindow(horizon, tuple(c for c in group if c.occurred_on > horizon))))
    everything = {ev.id for ev in events}
    orphans = sorted(
        OrphanExit(listing, day, exit_id)
        for listing, found in exits.items()
        if listing not in everything
        for day, exit_id in found
    )
    entered, decided = red_entry(decisions, as_of)
    return SubjectState(
        rulebook_version=rulebook.version,
        subject=subject,
        as_of=as_of,
        live=tuple(live),
        caps=tuple(windows),
        orphan_exits=tuple(orphans),
        history=history_of(i for i in items if i.state is _EXPIRED),
        red_entered=entered,
        red_decided_on=decided,
        future_on=min(later) if later else None,
    )


# --- assessing ------------------------------------------------------------------------------------


def _classified(live: Iterable[LiveEvent], specs: Mapping[str, TypeSpec], as_of: date) -> list[Item]:
    return [
        classify(le.event, specs[le.event.type], as_of, False, le.repaired_on is not None, le.exit_on)
        for le in live
    ]


def _usable_at(state: SubjectState, as_of: date) -> bool:
    return as_of >= state.as_of and (state.future_on is None or as_of < state.future_on)


def assess_state(state: SubjectState, rulebook: Rulebook, as_of: date | None = None) -> Assessment:
    """The subject's assessment at ``as_of`` (default: the state's date, or any later date before
    ``future_on``): equal to ``evaluate(history, rulebook, as_of, ..., explain=False)``."""
    _check(state, rulebook)
    day = state.as_of if as_of is None else as_of
    if not _usable_at(state, day):
        raise SubjectStateError(f"a state of {state.as_of} cannot assess {day}: rebuild it at that date")
    items = highest_only(_classified(state.live, type_specs(rulebook), day))
    credits = {le.event.id: le.credit for le in state.live if le.credit is not None}
    items = with_credits(items, credits)
    recent = history_of(items)
    history = History(
        _latest(state.history.latest_negative, recent.latest_negative),
        _latest(state.history.latest_removal, recent.latest_removal),
    )
    return assess_items(items, rulebook, day, state.subject, history, state.red_entered)


# --- moving on --------------------------------------------------------------------------------------


def advance(state: SubjectState, rulebook: Rulebook, as_of: date) -> SubjectState | None:
    """The state at a later date: events expired by then leave it (their dates stay in ``history``).

    ``None`` when the state cannot be moved there (an earlier date, or past ``future_on``): rebuild.
    """
    _check(state, rulebook)
    if not _usable_at(state, as_of):
        return None
    if as_of == state.as_of:
        return state
    draft = _Draft(state, type_specs(rulebook), rulebook, as_of)
    draft.prune()
    return draft.freeze()


def apply_inputs(
    state: SubjectState,
    rulebook: Rulebook,
    as_of: date,
    *,
    events: Iterable[Event] = (),
    effects: Iterable[Effect] = (),
    red_list: Iterable[RedListDecision] = (),
) -> SubjectState | None:
    """The state at ``as_of`` after new events, workflow effects and red-list decisions (all dated
    on or before ``as_of``; the events new to the subject).

    ``None`` when they cannot be applied without the history (see the module docstring): the
    caller rebuilds with :func:`state_from_history` from the stored inputs, these included.
    """
    _check(state, rulebook)
    if not _usable_at(state, as_of):
        return None
    specs = type_specs(rulebook)
    new = [ev for ev in events if ev.type in specs]
    effects = list(effects)
    decisions = list(red_list)
    if (
        any(ev.occurred_on > as_of for ev in new)
        or any(e.effective_on > as_of for e in effects)
        or any(d.effective_on > as_of for d in decisions)
    ):
        return None
    # Effects on the new events themselves are applied with them (a withdrawn one never counts).
    batch = {ev.id for ev in new} if effects else set()
    repaired_new, withdrawn_new = outcomes((e for e in effects if e.event_id in batch), as_of)
    draft = _Draft(state, specs, rulebook, as_of)
    draft.prune()
    # Effects first: a withdrawn latest capped event leaves its group's end before newer events
    # join it, and a repair is checked against the credits given so far.
    for effect in sorted((e for e in effects if e.event_id not in batch), key=lambda e: e.effective_on):
        withdrawal = effect.kind is EffectKind.WITHDRAWN
        if not (draft.withdraw(effect.event_id) if withdrawal else draft.repair(effect)):
            return None
    if decisions and not draft.decide(decisions):
        return None
    # Listings before their exits, whatever their dates; capped events in date order.
    new.sort(key=lambda ev: (specs[ev.type].ends_listing, ev.occurred_on, ev.id))
    for ev in new:
        if ev.id not in withdrawn_new and not draft.add(ev, repaired_new.get(ev.id)):
            return None
    return draft.freeze()


def apply_events(
    state: SubjectState, rulebook: Rulebook, as_of: date, events: Iterable[Event]
) -> SubjectState | None:
    """:func:`apply_inputs` with new events only (the intake path)."""
    return apply_inputs(state, rulebook, as_of, events=events)


class _Draft:
    """A state being changed: mutable copies of the parts that change, frozen again at the end."""

    __slots__ = ("state", "specs", "rulebook", "as_of", "live", "caps", "orphans", "history", "red")

    def __init__(self, state: SubjectState, specs: Mapping[str, TypeSpec], rulebook: Rulebook, as_of: date):
        self.state = state
        self.specs = specs
        self.rulebook = rulebook
        self.as_of = as_of
        self.live = list(state.live)
        self.caps = dict(state.caps)
        self.orphans = list(state.orphan_exits)
        self.history = state.history
        self.red = (state.red_entered, state.red_decided_on)

    def freeze(self) -> SubjectState:
        return replace(
            self.state,
            as_of=self.as_of,
            live=tuple(self.live),
            caps=tuple(sorted(self.caps.items())),
            orphan_exits=tuple(sorted(self.orphans)),
            history=self.history,
            red_entered=self.red[0],
            red_decided_on=self.red[1],
        )

    def _item(self, le: LiveEvent) -> Item:
        ev = le.event
        return classify(ev, self.specs[ev.type], self.as_of, False, le.repaired_on is not None, le.exit_on)

    def _fold(self, item: Item) -> None:
        """An event that stopped counting: only its date stays, for the list rules."""
        day = item.event.occurred_on
        negative, removal = self.history
        if item.points < 0:
            negative = _latest(negative, day)
        if item.spec.removes_from_red_list:
            removal = _latest(removal, day)
        self.history = History(negative, removal)

    def _place(self, le: LiveEvent, at: int | None = None) -> None:
        """Keep ``le`` (at index ``at``, or a new one in date order) if it still counts, else fold it."""
        item = self._item(le)
        if item.state is _EXPIRED:
            if at is not None:
                del self.live[at]
            self._fold(item)
        elif at is not None:
            self.live[at] = le
        else:
            at = bisect.bisect(self.live, (le.event.occurred_on, le.event.id), key=_live_order)
            self.live.insert(at, le)

    def _find(self, event_id: str) -> int:
        for i, le in enumerate(self.live):
            if le.event.id == event_id:
                return i
        return -1

    def prune(self) -> None:
        """Fold the events expired by the draft's date (a state holds none expired at its own)."""
        if not self.live or self.as_of == self.state.as_of:
            return
        items = [self._item(le) for le in self.live]
        if all(item.state is not _EXPIRED for item in items):
            return
        kept = []
        for le, item in zip(self.live, items, strict=True):
            if item.state is _EXPIRED:
                self._fold(item)
            else:
                kept.append(le)
        self.live = kept

    # --- new events ---

    def add(self, ev: Event, repaired_on: date | None) -> bool:
        spec = self.specs[ev.type]
        exits: tuple[tuple[date, str], ...] = ()
        if self.orphans:  # exits that waited for this event: a listing takes them, others drop them
            if spec.list_months:
                waiting = [o for o in self.orphans if o.listing_id == ev.id]
                exits = tuple(sorted((o.occurred_on, o.event_id) for o in waiting))
            self.orphans = [o for o in self.orphans if o.listing_id != ev.id]
        if spec.ends_listing:
            return self._add_exit(ev)
        credit = None
        if spec.cap is not None:
            points = classify(ev, spec, self.as_of, False, False, None).points
            credit = self._credit(spec.cap, CapEntry(ev.occurred_on, ev.id, points, repaired_on))
            if credit is None:
                return False
        self._place(LiveEvent(ev, repaired_on, credit, exits))
        return True

    def _credit(self, key: str, entry: CapEntry) -> int | None:
        """The new latest event of a cap group, credited (``None``: it is not the latest)."""
        window_start = add_months(entry.occurred_on, -self.rulebook.caps[key].window_months)
        window = self.caps.get(key)
        held: tuple[Credited, ...] = ()
        if window is not None:
            if window_start < window.horizon:
                return None  # its window reaches credits already dropped
            if window.credits:
                last = window.credits[-1]
                if (last.occurred_on, last.event_id) >= (entry.occurred_on, entry.event_id):
                    return None  # back-dated: it could change the credits of later events
            held = tuple(c for c in window.credits if c.occurred_on > window_start)
        credit = rolling_credit(entry, held, self.rulebook.caps[key])
        credited = Credited(entry.occurred_on, entry.event_id, credit, entry.released_on)
        self.caps[key] = CapWindow(window_start, (*held, credited))
        return credit

    def _add_exit(self, ev: Event) -> bool:
        listing_id = ev.refers_to
        if not listing_id:
            return True  # refers to nothing: no effect (as in evaluate)
        at = self._find(listing_id)
        if at >= 0:
            listing = self.live[at]
            if self.specs[listing.event.type].list_months:
                exits = tuple(sorted((*listing.exits, (ev.occurred_on, ev.id))))
                self._place(listing._replace(exits=exits), at)
            return True  # (an exit referring to an event that is no listing has no effect)
        if any(o.listing_id == listing_id for o in self.orphans):
            self.orphans.append(OrphanExit(listing_id, ev.occurred_on, ev.id))
            return True
        return False  # an ended listing (no effect) or one still to come: only the history knows

    # --- effects and decisions ---

    def withdraw(self, event_id: str) -> bool:
        at = self._find(event_id)
        if at >= 0:
            key = self.specs[self.live[at].event.type].cap
            if key is not None:
                window = self.caps[key]
                if not window.credits or window.credits[-1].event_id != event_id:
                    return False  # later credits of its group were given with it in their windows
                self.caps[key] = window._replace(credits=window.credits[:-1])
            del self.live[at]
            return True
        for i, le in enumerate(self.live):
            if any(exit_id == event_id for _day, exit_id in le.exits):
                exits = tuple(x for x in le.exits if x[1] != event_id)
                self.live[i] = le._replace(exits=exits)  # a later end: it still counts
                return True
        for i, orphan in enumerate(self.orphans):
            if orphan.event_id == event_id:
                del self.orphans[i]
                return True
        return False

    def repair(self, effect: Effect) -> bool:
        at = self._find(effect.event_id)
        if at < 0:
            # A repaired exit changes nothing; any other event the state does not hold may matter.
            return any(x[1] == effect.event_id for le in self.live for x in le.exits) or any(
                o.event_id == effect.event_id for o in self.orphans
            )
        le = self.live[at]
        day = effect.effective_on
        if le.repaired_on is not None and le.repaired_on <= day:
            return True  # the earliest repair is in force already
        key = self.specs[le.event.type].cap
        if key is not None and not self._release(key, le.event, day):
            return False
        self.live[at] = le._replace(repaired_on=day)
        return True

    def _release(self, key: str, ev: Event, day: date) -> bool:
        """A capped event repaired from ``day``: it leaves the windows of events dated from then on,
        which is sound only if no credit of its group dated from then on was given yet."""
        window = self.caps[key]
        own = (ev.occurred_on, ev.id)
        credits = list(window.credits)
        held = [i for i, c in enumerate(credits) if c.event_id == ev.id]
        if not held and day <= window.horizon:
            return False  # dropped credits after it may be dated from the repair on
        if any((c.occurred_on, c.event_id) > own and c.occurred_on >= day for c in credits):
            return False
        for i in held:
            credits[i] = credits[i]._replace(released_on=day)
        self.caps[key] = window._replace(credits=tuple(credits))
        return True

    def decide(self, decisions: Iterable[RedListDecision]) -> bool:
        entered, decided = self.red
        for decision in sorted(decisions, key=lambda d: d.effective_on):  # stable: recorded order
            if decided is not None and decision.effective_on < decided:
                return False  # an earlier decision reported late: the order of decisions changes
            decided = decision.effective_on
            entered = decided if decision.action is RedListAction.ENTER else None
        self.red = (entered, decided)
        return True
