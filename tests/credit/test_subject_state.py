"""The incremental state (credit/subject_state.py) against the full evaluation, which is the reference.

The equivalence property drives random operation sequences — events in random order (back-dated
ones too), capped and highest-only groups, listings and their exits, the watch list, withdrawals
with and without a replacement, repairs, red-list decisions, date advances and rulebook changes —
through both paths and requires the same assessment after every step. The fallback ("rebuild")
path is counted: in-order intake must never take it, and each reason for it is shown below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from credit.engine import (
    Assessment,
    ContributionState,
    Effect,
    EffectKind,
    Event,
    RedListAction,
    RedListDecision,
    add_months,
    evaluate,
)
from credit.errors import SubjectStateError
from credit.identifiers import SubjectKind
from credit.rulebook import Rulebook, default_rulebook, rulebook_from_data, shipped_rulebook
from credit.subject_state import (
    SubjectState,
    advance,
    apply_events,
    apply_inputs,
    assess_state,
    state_from_history,
    supports_state,
)

RB = default_rulebook()


def _modified(rb: Rulebook) -> Rulebook:
    """2026.2 with other numbers (and another version): smaller caps, a shorter general tier and
    court list, another base, two clean years."""
    data = rb.model_dump()
    data["version"] = "2026.2-test"
    data["scale"]["base"] = 650
    data["caps"]["volunteer"]["limit"] = 20
    data["caps"]["arrears"].update(limit=-30, window_months=6)
    data["tiers"]["general"]["counts_months"] = 6
    data["event_types"]["blood_donation"]["counts_months"] = 12
    data["black_lists"]["court_defaulters"]["max_months"] = 12
    data["event_types"]["court_defaulter_listed"]["counts_after_exit_months"] = 6
    data["red_list"]["clean_years"] = 2
    return rulebook_from_data(data)


RB_B = _modified(RB)
LEGACY = shipped_rulebook("2026.1")
PERSON = SubjectKind.PERSON
TYPES = sorted(RB.event_types)
CAPPED = sorted(k for k, et in RB.event_types.items() if et.cap is not None)
LISTINGS = sorted(k for k, et in RB.event_types.items() if et.source_list is not None)
EXITS = sorted(k for k, et in RB.event_types.items() if et.ends_listing)
HIGHEST_ONLY = sorted(k for k, et in RB.event_types.items() if et.highest_only is not None)
#: Capped groups, tax grades and listings come up more often than their share of types.
TYPE_POOL = TYPES + CAPPED * 4 + LISTINGS * 2 + EXITS * 2 + HIGHEST_ONLY
EXIT_OF = {
    "court_defaulter_listed": "court_defaulter_delisted",
    "tax_credit_d": "tax_list_exit",
    "serious_violation_listed": "serious_violation_delisted",
    "abnormal_operations_listed": "abnormal_operations_removed",
}
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Subject:
    """One subject's inputs as the service stores them, and the state kept beside them."""

    rulebook: Rulebook
    kind: SubjectKind
    today: date
    events: list[Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    red: list[RedListDecision] = field(default_factory=list)
    state: SubjectState | None = None
    fallbacks: int = 0

    def reference(self) -> Assessment:
        return evaluate(
            self.events,
            self.rulebook,
            self.today,
            effects=self.effects,
            red_list=self.red,
            subject=self.kind,
            explain=False,
        )

    def rebuild(self) -> None:
        self.state = state_from_history(
            self.events, self.rulebook, self.today, effects=self.effects, red_list=self.red, subject=self.kind
        )

    def receive(
        self,
        events: Sequence[Event] = (),
        effects: Sequence[Effect] = (),
        red: Sequence[RedListDecision] = (),
    ) -> SubjectState | None:
        """Store new inputs and apply them to the state (rebuilding when it cannot)."""
        self.events += events
        self.effects += effects
        self.red += red
        rulebook, today = self.rulebook, self.today
        return self._update(
            lambda s: apply_inputs(s, rulebook, today, events=events, effects=effects, red_list=red)
        )

    def move_to(self, day: date) -> SubjectState | None:
        self.today = day
        return self._update(lambda s: advance(s, self.rulebook, day))

    def switch(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        if self.state is not None:
            with pytest.raises(SubjectStateError):
                apply_inputs(self.state, rulebook, self.today)
        self.rebuild()

    def _update(self, step: Any) -> SubjectState | None:
        if self.state is None:
            self.rebuild()
            return self.state
        fast: SubjectState | None = step(self.state)
        if fast is None:
            self.fallbacks += 1
            self.rebuild()
        else:
            self.state = fast
        return fast

    def check(self) -> None:
        assert self.state is not None
        expected = self.reference()
        assert assess_state(self.state, self.rulebook, self.today) == expected
        stored = SubjectState.from_bytes(self.state.to_bytes())
        assert stored == self.state
        assert assess_state(stored, self.rulebook, self.today) == expected


def listing_ids(subject: Subject) -> list[str]:
    return [e.id for e in subject.events if RB.event_types[e.type].source_list is not None]


def draw_event(
    data: st.DataObject, subject: Subject, id_: str, day: date, awaited: dict[str, date], focus: str
) -> Event:
    """An event of any type, a third of them of the ``focus`` cap group (so that its cap binds)."""
    type_ = data.draw(st.sampled_from([focus] * 40 + TYPE_POOL))
    et = RB.event_types[type_]
    quantity = data.draw(
        st.just(et.max_quantity) | st.integers(1, et.max_quantity) | st.sampled_from([0, et.max_quantity + 3])
    )
    ended_on = None
    if et.tier == "financial" and data.draw(st.booleans()):
        ended_on = min(subject.today, day + timedelta(days=data.draw(st.integers(0, 400))))
    refers_to = None
    if et.ends_listing:
        # An existing listing, one still to come (reported after its exit), or nothing at all.
        refers_to = data.draw(st.sampled_from([*listing_ids(subject), f"L{id_}", "nowhere"]))
        if refers_to == f"L{id_}":
            awaited[refers_to] = day
    source = data.draw(st.sampled_from(["s1", "s2"]))
    return Event(id_, type_, day, source, quantity, ended_on, refers_to)


def draw_day_before(data: st.DataObject, today: date) -> date:
    """Mostly recent, sometimes back-dated by up to three years."""
    back = data.draw(st.integers(0, 20) | st.integers(0, 400) | st.integers(0, 1200))
    return today - timedelta(days=back)


OPERATIONS = ["event"] * 6 + ["batch", "withdraw", "correct", "repair", "red", "advance", "advance"]
OPERATIONS += ["next_change", "future", "rulebook", "late_listing"]


@PROPERTY
@given(st.data(), st.sampled_from(SubjectKind), st.dates(date(2021, 1, 1), date(2025, 6, 30)))
def test_property_incremental_equals_full_evaluation(
    data: st.DataObject, kind: SubjectKind, start: date
) -> None:
    subject = Subject(RB, kind, start)
    subject.rebuild()
    subject.check()
    focus = data.draw(st.sampled_from(CAPPED))
    awaited: dict[str, date] = {}  # listings named by an exit, not reported yet: id → exit date
    counter = iter(range(10_000))

    def new_id() -> str:
        return f"e{next(counter):03d}"

    for _step in range(data.draw(st.integers(1, 40))):
        op = data.draw(st.sampled_from(OPERATIONS))
        known = [e.id for e in subject.events]
        if op == "event":
            id_ = new_id()
            subject.receive(
                events=[draw_event(data, subject, id_, draw_day_before(data, subject.today), awaited, focus)]
            )
        elif op == "batch":
            evs = [
                draw_event(data, subject, new_id(), draw_day_before(data, subject.today), awaited, focus)
                for _ in range(data.draw(st.integers(2, 4)))
            ]
            subject.receive(events=evs)
        elif op in ("withdraw", "correct", "repair") and known:
            capped = [e.id for e in subject.events if e.type == focus]
            target = data.draw(st.sampled_from(known) | st.sampled_from(capped or known))
            on = subject.today - timedelta(days=data.draw(st.integers(0, 10)))
            kind_ = EffectKind.REPAIRED if op == "repair" else EffectKind.WITHDRAWN
            replacement = []
            if op == "correct":  # an objection corrects the event: withdrawn, with a corrected one
                old = next(e for e in subject.events if e.id == target)
                quantity = data.draw(st.integers(1, RB.event_types[old.type].max_quantity))
                replacement = [replace(old, id=new_id(), quantity=quantity)]
            subject.receive(events=replacement, effects=[Effect(target, kind_, on)])
        elif op == "red":
            action = data.draw(st.sampled_from(RedListAction))
            on = subject.today - timedelta(days=data.draw(st.integers(0, 3) | st.integers(0, 200)))
            subject.receive(red=[RedListDecision(action, on)])
        elif op == "advance":
            subject.move_to(
                subject.today + timedelta(days=data.draw(st.integers(1, 30) | st.integers(30, 500)))
            )
        elif op == "next_change":
            upcoming = subject.reference().next_change_on
            if upcoming is not None:
                subject.move_to(upcoming - timedelta(days=data.draw(st.integers(0, 1))))
        elif op == "future":  # dated after today: the state must not count it yet
            later = subject.today + timedelta(days=data.draw(st.integers(1, 60)))
            subject.receive(events=[draw_event(data, subject, new_id(), later, awaited, focus)])
        elif op == "late_listing" and awaited:
            listing_id = data.draw(st.sampled_from(sorted(awaited)))
            on = awaited.pop(listing_id) - timedelta(days=data.draw(st.integers(0, 400)))
            subject.receive(events=[Event(listing_id, data.draw(st.sampled_from(LISTINGS)), on, "s1")])
        elif op == "rulebook":
            subject.switch(RB_B if subject.rulebook is RB else RB)
        subject.check()
        event(f"op {op}")
    event(f"fallbacks {min(subject.fallbacks, 5)}")


# --- the fast path: in-order intake never rebuilds --------------------------------------------------


@PROPERTY
@given(st.data(), st.sampled_from(SubjectKind), st.dates(date(2021, 1, 1), date(2025, 6, 30)))
def test_property_in_order_intake_never_falls_back(
    data: st.DataObject, kind: SubjectKind, start: date
) -> None:
    # Events arrive in date order (ties in id order), exits refer to listings still in force,
    # effects concern events still counting that are not capped, red-list decisions come in order,
    # and the date moves on: every step is applied incrementally, and agrees with evaluate.
    subject = Subject(RB, kind, start)
    subject.rebuild()
    ended: set[str] = set()
    withdrawn: set[str] = set()
    for i in range(data.draw(st.integers(1, 40))):
        subject.today += timedelta(days=data.draw(st.integers(0, 3) | st.integers(0, 120)))
        op = data.draw(st.sampled_from(["event"] * 6 + ["exit", "effect", "red", "advance"]))
        if op == "event":
            type_ = data.draw(st.sampled_from([t for t in TYPE_POOL if t not in EXITS]))
            quantity = data.draw(st.integers(1, RB.event_types[type_].max_quantity))
            assert (
                subject.receive(events=[Event(f"e{i:03d}", type_, subject.today, "s", quantity)]) is not None
            )
        elif op == "exit":
            open_listings = [
                e
                for e in subject.events
                if (source_list := RB.list_entered(RB.event_types[e.type])) is not None
                and e.id not in ended
                and e.id not in withdrawn
                and subject.today < add_months(e.occurred_on, source_list.max_months)
            ]
            if open_listings:
                listing = data.draw(st.sampled_from(open_listings))
                ended.add(listing.id)
                exit_type = EXIT_OF[listing.type]
                exit_event = Event(f"e{i:03d}", exit_type, subject.today, "s", refers_to=listing.id)
                assert subject.receive(events=[exit_event]) is not None
        elif op == "effect":
            counting = [
                c.event_id
                for c in evaluate(subject.events, RB, subject.today, effects=subject.effects).contributions
                if c.state in (ContributionState.COUNTING, ContributionState.SUPERSEDED)
                and RB.event_types[c.type].cap is None
            ]
            if counting:
                target = data.draw(st.sampled_from(counting))
                effect = Effect(target, data.draw(st.sampled_from(EffectKind)), subject.today)
                if effect.kind is EffectKind.WITHDRAWN:
                    withdrawn.add(target)
                assert subject.receive(effects=[effect]) is not None
        elif op == "red":
            decision = RedListDecision(data.draw(st.sampled_from(RedListAction)), subject.today)
            assert subject.receive(red=[decision]) is not None
        else:
            assert subject.move_to(subject.today + timedelta(days=data.draw(st.integers(1, 400)))) is not None
        subject.check()
    assert subject.fallbacks == 0


# --- each reason for a rebuild ------------------------------------------------------------------------

DAY = date(2026, 6, 15)


def built(events: list[Event], as_of: date = DAY, **kwargs: Any) -> SubjectState:
    return state_from_history(events, RB, as_of, **kwargs)


def agrees(events: list[Event], as_of: date = DAY, **kwargs: Any) -> None:
    state = built(events, as_of, **kwargs)
    assert assess_state(state, RB, as_of) == evaluate(events, RB, as_of, explain=False, **kwargs)


VOLUNTEER = [
    Event(f"v{i}", "volunteer_service", date(2026, 1, 1) + timedelta(days=30 * i), quantity=5)
    for i in range(4)
]


def test_in_order_capped_event_is_credited_incrementally() -> None:
    # 10 + 10 + 10 + 10 volunteer points, then 10 of 20 fit under the cap of 50: credit 10.
    state = built(VOLUNTEER)
    later = Event("v9", "volunteer_service", date(2026, 6, 1), quantity=10)
    applied = apply_events(state, RB, DAY, [later])
    assert applied is not None
    assert dict(applied.caps)["volunteer"].credits[-1].credit == 10
    assert assess_state(applied, RB, DAY) == evaluate([*VOLUNTEER, later], RB, DAY, explain=False)


@pytest.mark.parametrize(
    ("events", "effects", "red"),
    [
        # A back-dated capped event: it could change the credits of the later ones.
        ([Event("v0b", "volunteer_service", date(2026, 1, 15), quantity=5)], [], []),
        # The withdrawal of a capped event that is not the latest of its group.
        ([], [Effect("v1", EffectKind.WITHDRAWN, DAY)], []),
        # A repair of a capped event dated before later credits of its group.
        ([], [Effect("v1", EffectKind.REPAIRED, date(2026, 2, 1))], []),
        # An effect on an event the state does not hold (expired, or never known).
        ([], [Effect("old", EffectKind.WITHDRAWN, DAY)], []),
        ([], [Effect("nowhere", EffectKind.REPAIRED, DAY)], []),
        # An exit whose listing is not known (it may be a back-dated listing still to come).
        ([Event("x", "court_defaulter_delisted", DAY, refers_to="later")], [], []),
        # A red-list decision dated before the last one.
        ([], [], [RedListDecision(RedListAction.EXIT, date(2026, 1, 1))]),
        # Inputs dated after the as-of date.
        ([Event("f", "penalty_simple", DAY + timedelta(days=1))], [], []),
    ],
)
def test_unsound_inputs_fall_back_and_the_rebuild_agrees(
    events: list[Event], effects: list[Effect], red: list[RedListDecision]
) -> None:
    history = [*VOLUNTEER, Event("old", "penalty_simple", date(2024, 1, 1))]
    decisions = [RedListDecision(RedListAction.ENTER, date(2026, 3, 1))]
    state = built(history, red_list=decisions)
    assert apply_inputs(state, RB, DAY, events=events, effects=effects, red_list=red) is None
    agrees([*history, *events], effects=effects, red_list=[*decisions, *red])


def ten(id_: str, on: date) -> Event:
    """A volunteer event of 5 stars: 10 points (cap 50 in 12 months)."""
    return Event(id_, "volunteer_service", on, quantity=5)


def test_same_day_capped_event_with_a_smaller_id_falls_back() -> None:
    # Ties go by event id: "a" comes before "b" although it arrives later.
    state = built([ten("b", DAY)])
    assert apply_events(state, RB, DAY, [ten("a", DAY)]) is None


def test_capped_event_before_the_latest_with_the_same_window_start_falls_back() -> None:
    # 2024-02-28 and 2024-02-29 both have 2023-02-28 as their window start (month-end clamp).
    state = built([ten("b", date(2024, 2, 29))], as_of=date(2024, 3, 1))
    assert apply_events(state, RB, date(2024, 3, 1), [ten("c", date(2024, 2, 28))]) is None


def test_capped_event_whose_window_reaches_dropped_credits_falls_back() -> None:
    # "early" left the window of "late" and was dropped; "late" is withdrawn (the latest: fast);
    # "middle"'s window (2024-06-01, 2025-06-01] holds "early" again: only the history knows it.
    early, late, middle = (
        ten("early", date(2025, 1, 10)),
        ten("late", date(2026, 3, 1)),
        ten("m", date(2025, 6, 1)),
    )
    state = built([early, late])
    assert [c.event_id for c in dict(state.caps)["volunteer"].credits] == ["late"]
    withdrawal = Effect("late", EffectKind.WITHDRAWN, DAY)
    without_late = apply_inputs(state, RB, DAY, effects=[withdrawal])
    assert without_late is not None
    assert apply_events(without_late, RB, DAY, [middle]) is None
    agrees([early, late, middle], effects=[withdrawal])


def test_an_earlier_repair_frees_the_window_from_its_own_date() -> None:
    # Five events of 10 fill the cap; "e" is repaired from 2026-05-01, then (back-dated) from
    # 2026-03-01: the earliest repair wins, so "n" on 2026-04-01 has room for 10 (40 used), not 0.
    five = [ten(k, date(2026, 1, i + 1)) for i, k in enumerate("abcde")]
    first = Effect("e", EffectKind.REPAIRED, date(2026, 5, 1))
    earlier = Effect("e", EffectKind.REPAIRED, date(2026, 3, 1))
    state = apply_inputs(built(five, effects=[first]), RB, DAY, effects=[earlier])
    assert state is not None
    n = ten("n", date(2026, 4, 1))
    after = apply_events(state, RB, DAY, [n])
    assert after is not None and dict(after.caps)["volunteer"].credits[-1].credit == 10
    assert assess_state(after, RB, DAY) == evaluate(
        [*five, n], RB, DAY, effects=[first, earlier], explain=False
    )


def test_repair_of_a_capped_event_whose_later_credits_were_dropped_falls_back() -> None:
    # Blood (cap 50, counts 36 months): x and y1..y6 of 8 each; y6 gets 2 (48 used). z's window
    # drops them all. Repairing x from 2024-03-01 frees 8 for y2..y6, so y6 (still counting) would
    # get 8: a credit given and dropped changes, which only a rebuild sees.
    blood = [Event("x", "blood_donation", date(2024, 1, 10), quantity=8)]
    blood += [Event(f"y{i}", "blood_donation", date(2024, i + 1, 1), quantity=8) for i in range(1, 7)]
    blood += [Event("z", "blood_donation", date(2025, 12, 1), quantity=8)]
    state = built(blood)
    repair = Effect("x", EffectKind.REPAIRED, date(2024, 3, 1))
    assert apply_inputs(state, RB, DAY, effects=[repair]) is None
    agrees(blood, effects=[repair])
    # Also once z is withdrawn (the latest: fast) and the group keeps no credit at all.
    withdrawal = Effect("z", EffectKind.WITHDRAWN, DAY)
    without_z = apply_inputs(state, RB, DAY, effects=[withdrawal])
    assert without_z is not None and dict(without_z.caps)["blood"].credits == ()
    assert apply_inputs(without_z, RB, DAY, effects=[repair]) is None
    agrees(blood, effects=[withdrawal, repair])
    before = evaluate(blood, RB, DAY).contributions
    after = evaluate(blood, RB, DAY, effects=[repair]).contributions
    assert [c.counted for c in before if c.event_id == "y6"] == [2]
    assert [c.counted for c in after if c.event_id == "y6"] == [8]


def test_an_exit_reported_before_its_listing_waits_for_it() -> None:
    # The court's delisting (2026-03-01) arrives first: the state cannot tell an unknown listing
    # from an ended one, so it falls back; the rebuild keeps the exit waiting, and the listing
    # (2025-06-01) then arrives on the fast path, ended by it: listed until 2026-03-01, counting
    # -50 until 2027-03-01 (12 months after), no longer black-listed on DAY.
    delisted = Event("x", "court_defaulter_delisted", date(2026, 3, 1), refers_to="court-1")
    assert apply_events(built([]), RB, DAY, [delisted]) is None
    waiting = built([delisted])
    assert [o.listing_id for o in waiting.orphan_exits] == ["court-1"]
    listing = Event("court-1", "court_defaulter_listed", date(2025, 6, 1))
    state = apply_events(waiting, RB, DAY, [listing])
    assert state is not None and state.orphan_exits == ()
    assert state.live[0].exits == ((date(2026, 3, 1), "x"),)
    a = assess_state(state, RB, DAY)
    assert (a.score, a.lists.black, a.next_change_on) == (650, (), date(2027, 3, 1))
    assert a == evaluate([delisted, listing], RB, DAY, explain=False)


def test_future_inputs_make_the_state_expire_at_their_date() -> None:
    future = Event("f", "contract_default", DAY + timedelta(days=10))
    state = built([future])
    assert state.future_on == future.occurred_on
    assert assess_state(state, RB, DAY + timedelta(days=9)) == evaluate(
        [future], RB, DAY + timedelta(days=9), explain=False
    )
    assert advance(state, RB, DAY + timedelta(days=9)) is not None
    assert advance(state, RB, future.occurred_on) is None
    with pytest.raises(SubjectStateError):
        assess_state(state, RB, future.occurred_on)


def test_advance_keeps_only_what_still_counts() -> None:
    # A serious event (36 months) and a minor one (3 months): after 4 months only the serious one
    # is live; after 37 months nothing is, yet the clean-years date still comes from the events.
    serious = Event("s", "utility_theft", DAY)
    minor = Event("m", "penalty_simple", DAY)
    state = built([serious, minor])
    assert [le.id for le in state.live] == ["m", "s"]
    later = advance(state, RB, date(2026, 10, 15))
    assert later is not None and [le.id for le in later.live] == ["s"]
    much_later = advance(later, RB, date(2029, 7, 1))
    assert much_later is not None and much_later.live == ()
    assert much_later.history.latest_negative == DAY
    assert much_later.history.latest_removal == DAY
    for day, st_ in ((date(2026, 10, 15), later), (date(2029, 7, 1), much_later)):
        assert assess_state(st_, RB, day) == evaluate([serious, minor], RB, day, explain=False)


def test_applied_events_leave_the_state_when_they_expire() -> None:
    # A minor penalty (3 months) and a serious one (36) applied to an empty state: the state
    # notes the earliest expiry, so advancing past it drops the minor one (and only then).
    minor, serious = Event("m", "penalty_simple", DAY), Event("s", "utility_theft", DAY)
    state = apply_events(built([], as_of=DAY), RB, DAY, [serious, minor])
    assert state is not None and state.next_expiry == date(2026, 9, 15)
    before = advance(state, RB, date(2026, 9, 14))
    assert before is not None and [le.id for le in before.live] == ["m", "s"]
    after = advance(state, RB, date(2026, 9, 15))
    assert after is not None and [le.id for le in after.live] == ["s"]
    assert after.next_expiry == date(2029, 6, 15)


def test_a_state_is_refused_under_another_rulebook_version() -> None:
    state = built(VOLUNTEER)
    with pytest.raises(SubjectStateError, match="2026.2-test"):
        apply_events(state, RB_B, DAY, [])
    with pytest.raises(SubjectStateError):
        advance(state, RB_B, DAY)
    with pytest.raises(SubjectStateError):
        assess_state(state, RB_B, DAY)


def test_legacy_calendar_block_rulebooks_have_no_state() -> None:
    assert supports_state(RB) and not supports_state(LEGACY)
    with pytest.raises(SubjectStateError, match="calendar blocks"):
        state_from_history(VOLUNTEER, LEGACY, DAY)


def test_a_state_cannot_go_back_in_time() -> None:
    state = built(VOLUNTEER)
    assert advance(state, RB, DAY - timedelta(days=1)) is None
    assert apply_events(state, RB, DAY - timedelta(days=1), []) is None
    with pytest.raises(SubjectStateError):
        assess_state(state, RB, DAY - timedelta(days=1))


# --- the stored form --------------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Event], list[Effect], list[RedListDecision], date]:
    """Any inputs, as the engine's own property tests draw them (listings, exits, capped groups)."""
    n = draw(st.integers(0, 20))
    ids = [f"{i:040x}" for i in range(n)]  # the service's ids are 40 hex digits
    events = []
    for id_ in ids:
        type_ = draw(st.sampled_from(TYPE_POOL))
        refers_to = draw(st.sampled_from([*ids, "nowhere"])) if RB.event_types[type_].ends_listing else None
        on = draw(st.dates(date(2021, 1, 1), date(2026, 12, 31)))
        source = draw(st.sampled_from(["district-court", "volunteer-platform", "来源"]))
        events.append(Event(id_, type_, on, source, draw(st.integers(1, 5)), None, refers_to))
    effects = draw(
        st.lists(
            st.builds(Effect, st.sampled_from(ids or ["x"]), st.sampled_from(EffectKind), st.dates()),
            max_size=4,
        )
    )
    red = draw(st.lists(st.builds(RedListDecision, st.sampled_from(RedListAction), st.dates()), max_size=3))
    return events, effects, red, draw(st.dates(date(2022, 1, 1), date(2027, 12, 31)))


@PROPERTY
@given(histories(), st.sampled_from(SubjectKind))
def test_property_stored_form_round_trips(
    history: tuple[list[Event], list[Effect], list[RedListDecision], date], kind: SubjectKind
) -> None:
    events, effects, red, as_of = history
    state = state_from_history(events, RB, as_of, effects=effects, red_list=red, subject=kind)
    data = state.to_bytes()
    assert SubjectState.from_bytes(data) == state
    assert SubjectState.from_bytes(data).to_bytes() == data
    if state.future_on is None:
        assert assess_state(state, RB, as_of) == evaluate(
            events, RB, as_of, effects=effects, red_list=red, subject=kind, explain=False
        )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a state",
        b"\x02" + bytes(40),  # another format version
        b"\x01" + bytes(10),  # cut short
        b"\x01\x07" + bytes(40),  # an unknown subject kind
    ],
)
def test_unreadable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(SubjectStateError):
        SubjectState.from_bytes(data)


def test_every_truncation_and_trailing_bytes_are_refused() -> None:
    data = built([*VOLUNTEER, Event("c", "court_defaulter_listed", DAY)]).to_bytes()
    for cut in range(len(data)):
        with pytest.raises(SubjectStateError):
            SubjectState.from_bytes(data[:cut])
    with pytest.raises(SubjectStateError):
        SubjectState.from_bytes(data + b"\x00")


def test_stored_form_is_compact() -> None:
    # Four volunteer events and their cap credits: hex ids in half their length, each id once,
    # type and source names once.
    state = built(VOLUNTEER)
    assert [le.id for le in state.live] == ["v0", "v1", "v2", "v3"]
    hex_ids = [replace(e, id=f"{i:040x}") for i, e in enumerate(VOLUNTEER)]
    data = built(hex_ids).to_bytes()
    assert data.count(bytes(19) + b"\x03") == 1  # the last id, packed
    assert data.count(b"volunteer_service") == 1
    # Header 14 + next_expiry 4 + version 8 + names 32 (volunteer_service, the empty source,
    # volunteer); per event 13 fixed + 4 credit + 22 id; the cap group 8 + 7 per credit.
    assert len(data) == (14 + 4 + 8 + 32) + 4 * (13 + 4 + 22) + (8 + 4 * 7)
    assert SubjectState.from_bytes(data) == built(hex_ids)
