"""How one input changes a subject's incremental state, and when it cannot (see
:mod:`credit.subject_state`, whose functions drive these changes).

A :class:`StateChange` copies the parts of a :class:`~credit.subject_state_types.SubjectState`
that change, applies new events, withdrawals, repairs, red-list decisions and the passing of time
to them, and freezes a new state. Every change that could alter something the state no longer
holds (a credit already given, a dropped event) refuses, and the caller rebuilds from the history.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import date

from credit.engine_caps import CapEntry, Credited, rolling_credit
from credit.engine_steps import History, Item, TypeSpec, classify
from credit.engine_types import ContributionState, Effect, Event, RedListAction, RedListDecision
from credit.months import add_months
from credit.rulebook import Rulebook
from credit.subject_state_types import CapWindow, LiveEvent, OrphanExit, SubjectState

_EXPIRED = ContributionState.EXPIRED


def _live_order(le: LiveEvent) -> tuple[date, str]:
    return le.occurred_on, le.id


def latest(a: date | None, b: date | None) -> date | None:
    """The later of two dates, either possibly unknown."""
    if a is None:
        return b
    return a if b is None or a >= b else b


def classify_live(le: LiveEvent, specs: Mapping[str, TypeSpec], as_of: date) -> Item:
    """A live event, classified at ``as_of`` by the engine's own step."""
    exit_on = le.exits[0][0] if le.exits else None
    return classify(le, specs[le.type], as_of, False, le.repaired_on is not None, exit_on)


class StateChange:
    """A state being changed: mutable copies of the parts that change, frozen again at the end.

    Each change returns whether it could be applied soundly; once one returns ``False`` the
    change is abandoned (the caller rebuilds from the history).
    """

    __slots__ = (
        "state",
        "specs",
        "rulebook",
        "as_of",
        "live",
        "caps",
        "caps_changed",
        "orphans",
        "history",
        "red",
        "expiry",
    )

    def __init__(self, state: SubjectState, specs: Mapping[str, TypeSpec], rulebook: Rulebook, as_of: date):
        self.state = state
        self.specs = specs
        self.rulebook = rulebook
        self.as_of = as_of
        self.live = list(state.live)
        self.caps = dict(state.caps)
        self.caps_changed = False
        self.orphans = list(state.orphan_exits)
        self.history = state.history
        self.red = (state.red_entered, state.red_decided_on)
        self.expiry = state.next_expiry  # no live event expires before it

    def freeze(self) -> SubjectState:
        state = self.state
        caps = tuple(sorted(self.caps.items())) if self.caps_changed else state.caps
        return SubjectState(
            state.rulebook_version,
            state.subject,
            self.as_of,
            tuple(self.live),
            caps,
            tuple(sorted(self.orphans)) if self.orphans else (),
            self.history,
            self.red[0],
            self.red[1],
            state.future_on,
            self.expiry if self.live else None,
        )

    def _fold(self, item: Item) -> None:
        """An event that stopped counting: only its date stays, for the list rules."""
        day = item.event.occurred_on
        negative, removal = self.history
        if item.points < 0:
            negative = latest(negative, day)
        if item.spec.removes_from_red_list:
            removal = latest(removal, day)
        self.history = History(negative, removal)

    def _place(self, le: LiveEvent, at: int | None = None, item: Item | None = None) -> None:
        """Keep ``le`` (at index ``at``, or a new one in date order) if it still counts, else fold it.

        ``item``: ``le`` classified at the draft's date, if the caller has it.
        """
        if item is None:
            item = classify_live(le, self.specs, self.as_of)
        if item.state is _EXPIRED:
            if at is not None:
                del self.live[at]
            self._fold(item)
            return
        if at is not None:
            self.live[at] = le
        else:
            self.live.insert(bisect.bisect(self.live, (le.occurred_on, le.id), key=_live_order), le)
        expires_on = item.expires_on
        if expires_on is not None and (self.expiry is None or expires_on < self.expiry):
            self.expiry = expires_on

    def _find(self, event_id: str) -> int:
        for i, le in enumerate(self.live):
            if le.id == event_id:
                return i
        return -1

    def prune(self) -> None:
        """Fold the events expired by the draft's date."""
        if self.expiry is None or self.as_of < self.expiry:
            return
        kept = []
        expiries = []
        for le in self.live:
            item = classify_live(le, self.specs, self.as_of)
            if item.state is _EXPIRED:
                self._fold(item)
            else:
                kept.append(le)
                expiries.append(item.expires_on)
        self.live = kept
        self.expiry = min(expiries, default=None)  # type: ignore[type-var]  # never None inside

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
        exit_on = exits[0][0] if exits else None
        item = classify(ev, spec, self.as_of, False, repaired_on is not None, exit_on)
        credit = None
        if spec.cap is not None:
            credit = self._credit(spec.cap, CapEntry(ev.occurred_on, ev.id, item.points, repaired_on))
            if credit is None:
                return False
        self._place(LiveEvent.of(ev, repaired_on, credit, exits), item=item)
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
        self.caps_changed = True
        return credit

    def _add_exit(self, ev: Event) -> bool:
        listing_id = ev.refers_to
        if not listing_id:
            return True  # refers to nothing: no effect (as in evaluate)
        at = self._find(listing_id)
        if at >= 0:
            listing = self.live[at]
            if self.specs[listing.type].list_months:
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
            key = self.specs[self.live[at].type].cap
            if key is not None:
                window = self.caps[key]
                if not window.credits or window.credits[-1].event_id != event_id:
                    return False  # later credits of its group were given with it in their windows
                self.caps[key] = window._replace(credits=window.credits[:-1])
                self.caps_changed = True
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
        key = self.specs[le.type].cap
        if key is not None and not self._release(key, le, day):
            return False
        self.live[at] = le._replace(repaired_on=day)
        return True

    def _release(self, key: str, ev: LiveEvent, day: date) -> bool:
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
        self.caps_changed = True
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
