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

from collections.abc import Iterable
from datetime import date

from credit.engine import cap_credits, outcomes
from credit.engine_caps import Credited
from credit.engine_steps import (
    History,
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
    RedListDecision,
)
from credit.errors import SubjectStateError
from credit.identifiers import SubjectKind
from credit.months import add_months
from credit.rulebook import CapRule, Rulebook
from credit.subject_state_changes import StateChange, latest
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
    credits = cap_credits(items, rulebook, repaired) if any(i.spec.cap for i in items) else {}
    live: list[LiveEvent] = []
    groups: dict[str, list[Credited]] = {}
    expiries = []
    for item, ev in zip(items, known, strict=True):
        spec = item.spec
        if spec.cap is not None and item.state is not ContributionState.WITHDRAWN:
            credited = Credited(ev.occurred_on, ev.id, credits[ev.id], repaired.get(ev.id))
            groups.setdefault(spec.cap, []).append(credited)
        if item.state not in _NOT_LIVE:
            listing_exits_of = tuple(sorted(exits.get(ev.id, ()))) if spec.list_months else ()
            credit = credits[ev.id] if spec.cap is not None else None
            live.append(LiveEvent.of(ev, repaired.get(ev.id), credit, listing_exits_of))
            expiries.append(item.expires_on)
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
        next_expiry=min(expiries, default=None),  # type: ignore[type-var]  # never None inside
    )


# --- assessing ------------------------------------------------------------------------------------


def _usable_at(state: SubjectState, as_of: date) -> bool:
    return as_of >= state.as_of and (state.future_on is None or as_of < state.future_on)


def assess_state(state: SubjectState, rulebook: Rulebook, as_of: date | None = None) -> Assessment:
    """The subject's assessment at ``as_of`` (default: the state's date, or any later date before
    ``future_on``): equal to ``evaluate(history, rulebook, as_of, ..., explain=False)``."""
    _check(state, rulebook)
    day = state.as_of if as_of is None else as_of
    if not _usable_at(state, day):
        raise SubjectStateError(f"a state of {state.as_of} cannot assess {day}: rebuild it at that date")
    specs = type_specs(rulebook)
    items = highest_only(
        [
            classify(
                le,
                specs[le.type],
                day,
                False,
                le.repaired_on is not None,
                le.exits[0][0] if le.exits else None,
            )
            for le in state.live
        ]
    )
    credits = {le.id: le.credit for le in state.live if le.credit is not None}
    if credits:
        items = with_credits(items, credits)
    recent = history_of(items)
    history = state.history
    if recent != history:
        history = History(
            latest(history.latest_negative, recent.latest_negative),
            latest(history.latest_removal, recent.latest_removal),
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
    draft = StateChange(state, type_specs(rulebook), rulebook, as_of)
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
        or (effects and any(e.effective_on > as_of for e in effects))
        or (decisions and any(d.effective_on > as_of for d in decisions))
    ):
        return None
    draft = StateChange(state, specs, rulebook, as_of)
    draft.prune()
    repaired_new: dict[str, date] = {}
    withdrawn_new: set[str] = set()
    if effects:
        # Effects on the new events themselves are applied with them (a withdrawn one never counts).
        batch = {ev.id for ev in new}
        repaired_new, withdrawn_new = outcomes((e for e in effects if e.event_id in batch), as_of)
        # Effects first: a withdrawn latest capped event leaves its group's end before newer events
        # join it, and a repair is checked against the credits given so far.
        for effect in sorted((e for e in effects if e.event_id not in batch), key=lambda e: e.effective_on):
            withdrawal = effect.kind is EffectKind.WITHDRAWN
            if not (draft.withdraw(effect.event_id) if withdrawal else draft.repair(effect)):
                return None
    if decisions and not draft.decide(decisions):
        return None
    if len(new) > 1:  # listings before their exits, whatever their dates; capped events in date order
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
