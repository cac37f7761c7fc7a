"""Joint reward and punishment measures (联合奖惩) under the default rulebook: for every scenario a
hand-built case where a measure applies (its facts naming the event or list) and one where it
does not; unknown scenarios; punishments before rewards; the subject-kind condition.

Scores are computed by the engine from hand-picked events (base 700; levels AAA ≥ 850, AA ≥ 780,
A ≥ 700, B ≥ 600, C ≥ 450; any black listing caps the score at 599).
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

import credit.rulebook
from credit.engine import (
    Assessment,
    BlackListing,
    Effect,
    EffectKind,
    Event,
    ListStatus,
    RedListAction,
    RedListDecision,
    evaluate,
)
from credit.errors import NotFoundError
from credit.identifiers import SubjectKind
from credit.measures import AppliedMeasure, measures
from credit.rulebook import Rulebook, default_rulebook, rulebook_from_data, shipped_rulebook

RB = default_rulebook()
AS_OF = date(2026, 6, 15)
PERSON = SubjectKind.PERSON
ORG = SubjectKind.ORGANIZATION
COURT_LIST = "失信被执行人名单 (court defaulter list)"


def ev(id_: str, type_: str, on: date, **kwargs: Any) -> Event:
    return Event(id_, type_, on, source="src", **kwargs)


def assess(
    events: list[Event],
    *,
    subject: SubjectKind = PERSON,
    as_of: date = AS_OF,
    red: bool = False,
    effects: list[Effect] | None = None,
    rulebook: Rulebook = RB,
) -> Assessment:
    decisions = [RedListDecision(RedListAction.ENTER, date(2025, 1, 15))] if red else []
    return evaluate(events, rulebook, as_of, effects=effects or [], red_list=decisions, subject=subject)


def applied(
    events: list[Event], scenario: str, *, subject: SubjectKind = PERSON, **kwargs: Any
) -> list[AppliedMeasure]:
    return measures(assess(events, subject=subject, **kwargs), scenario, RB, subject=subject)


def ids(result: list[AppliedMeasure]) -> list[str]:
    return [m.id for m in result]


def days_before(n: int) -> date:
    return AS_OF - timedelta(days=n)


def test_every_scenario_has_a_measure() -> None:
    # The cases below cover each scenario of the default catalogue.
    assert set(RB.scenarios) == {
        "administrative_approval",
        "libraries",
        "parking",
        "public_transport",
        "utilities",
        "subsidies",
        "procurement",
        "travel_consumption",
        "market_entry",
        "supervision",
    }


# --- administrative approval: red list, or three clean years at level A ------------------------------


def test_approval_green_channel_for_red_list_member() -> None:
    # Red member; a contract default 2024-01-01 (expired, score 700) spoils the three clean years.
    result = applied([ev("c", "contract_default", date(2024, 1, 1))], "administrative_approval", red=True)
    assert ids(result) == ["approval_green_channel"]
    (m,) = result
    assert m.kind == "reward"
    assert m.facts == ("on the red list",)
    assert m.legal_basis == "国发〔2016〕33号"
    assert m.effect == RB.measures["approval_green_channel"].effect


def test_approval_green_channel_for_three_clean_years() -> None:
    # No negative event at all, score 700 (A): the clean-years measure applies.
    (m,) = applied([], "administrative_approval")
    assert m.id == "approval_green_channel_clean"
    clean = "no negative credit event for 3 years (last: none)"
    assert m.facts == ("level A (score 700) is A or above", clean)


def test_approval_both_ways() -> None:
    result = applied([], "administrative_approval", red=True)
    assert ids(result) == ["approval_green_channel", "approval_green_channel_clean"]


@pytest.mark.parametrize(
    ("negative_on", "applies"),
    [
        (date(2023, 6, 15), True),  # exactly 36 months before 2026-06-15: outside the window
        (date(2023, 6, 16), False),  # one day inside
        (date(2024, 1, 1), False),
    ],
)
def test_approval_clean_years_boundary(negative_on: date, applies: bool) -> None:
    # The negative event has long expired (score 700, A); only its date matters.
    result = applied([ev("c", "contract_default", negative_on)], "administrative_approval")
    assert ids(result) == (["approval_green_channel_clean"] if applies else [])


def test_approval_clean_years_ignores_withdrawn_but_not_repaired_events() -> None:
    events = [ev("c", "contract_default", date(2025, 6, 1))]
    wd = applied(
        events, "administrative_approval", effects=[Effect("c", EffectKind.WITHDRAWN, date(2025, 7, 1))]
    )
    assert ids(wd) == ["approval_green_channel_clean"]
    rep = applied(
        events, "administrative_approval", effects=[Effect("c", EffectKind.REPAIRED, date(2025, 7, 1))]
    )
    assert rep == []


def test_approval_clean_years_needs_level_a() -> None:
    # Clean but level B is impossible with real events (a negative event spoils "clean"), so
    # lower the score of a clean assessment by hand: 699 (B) -> no measure.
    a = replace(assess([]), score=699, level="B")
    assert measures(a, "administrative_approval", RB, subject=PERSON) == []


def test_clean_years_agree_with_the_engine_on_leap_day() -> None:
    # bravery_nation +100 (800, AA); penalty_simple on 2024-02-29 (long expired).
    # Engine: add_months(2024-02-29, 36) = 2027-02-28 <= as_of -> clean, red-list eligible.
    # The measure applies the same rule (it once subtracted 36 months from as_of instead).
    events = [ev("b", "bravery_nation", date(2025, 1, 1)), ev("p", "penalty_simple", date(2024, 2, 29))]
    a = assess(events, as_of=date(2027, 2, 28))
    assert a.lists.red_eligible is True
    assert "approval_green_channel_clean" in ids(measures(a, "administrative_approval", RB, subject=PERSON))


# --- libraries: level A, persons ---------------------------------------------------------------------


def test_library_deposit_free_at_level_a() -> None:
    (m,) = applied([], "libraries")  # 700 = A
    assert m.id == "library_deposit_free"
    assert m.facts == ("level A (score 700) is A or above",)


def test_library_not_below_a_nor_for_organizations() -> None:
    # penalty_simple -2 + blood +1 = 699 (B).
    below = [ev("p", "penalty_simple", days_before(5)), ev("b", "blood_donation", days_before(4))]
    assert assess(below).score == 699
    assert applied(below, "libraries") == []
    assert applied([], "libraries", subject=ORG) == []


# --- parking: level B ----------------------------------------------------------------------------------


def test_parking_pay_later_at_level_b() -> None:
    # criminal conviction -100 -> 600 (B).
    (m,) = applied([ev("k", "criminal_conviction", days_before(10))], "parking")
    assert m.id == "parking_pay_later"
    assert m.facts == ("level B (score 600) is B or above",)
    # Organizations too (no subject condition).
    assert ids(applied([], "parking", subject=ORG)) == ["parking_pay_later"]


def test_parking_not_below_b() -> None:
    # 700 - 100 - 2 + 1 = 599 (C).
    events = [
        ev("k", "criminal_conviction", days_before(10)),
        ev("p", "penalty_simple", days_before(5)),
        ev("b", "blood_donation", days_before(4)),
    ]
    assert assess(events).score == 599
    assert applied(events, "parking") == []


# --- public transport: level AA, persons only ---------------------------------------------------------


def _aa_events(extra_blood: int) -> list[Event]:
    # bravery_province 50 + bravery_district 20 + blood 8 + blood (2 or 1) = 780 / 779.
    return [
        ev("b1", "bravery_province", days_before(40)),
        ev("b2", "bravery_district", days_before(30)),
        ev("d1", "blood_donation", days_before(20), quantity=8),
        ev("d2", "blood_donation", days_before(10), quantity=extra_blood),
    ]


def test_transport_discount_for_aa_person() -> None:
    (m,) = applied(_aa_events(2), "public_transport")
    assert m.id == "transport_discount"
    assert m.facts == ("level AA (score 780) is AA or above",)


def test_transport_discount_only_for_persons() -> None:
    # Same events, same score, but an organization: the subject condition fails.
    assert assess(_aa_events(2), subject=ORG).score == 780
    assert applied(_aa_events(2), "public_transport", subject=ORG) == []


def test_transport_discount_not_below_aa() -> None:
    assert assess(_aa_events(1)).score == 779
    assert applied(_aa_events(1), "public_transport") == []


def test_subject_condition_uses_the_argument_not_the_assessment() -> None:
    # measures() takes the subject kind explicitly; the same assessment answers per kind.
    a = assess(_aa_events(2))
    assert ids(measures(a, "public_transport", RB, subject=PERSON)) == ["transport_discount"]
    assert measures(a, "public_transport", RB, subject=ORG) == []


# --- utilities: AAA ---------------------------------------------------------------------------------------


def test_utility_fee_reduction_at_aaa() -> None:
    # 700 + 100 + 50 = 850 (AAA)
    events = [ev("b1", "bravery_nation", days_before(20)), ev("b2", "bravery_province", days_before(10))]
    (m,) = applied(events, "utilities")
    assert m.id == "utility_fee_reduction"
    assert m.facts == ("level AAA (score 850) is AAA or above",)


def test_utility_fee_reduction_not_at_849() -> None:
    # 850 - 2 + 1 = 849 (AA)
    events = [
        ev("b1", "bravery_nation", days_before(20)),
        ev("b2", "bravery_province", days_before(10)),
        ev("p", "penalty_simple", days_before(5)),
        ev("d", "blood_donation", days_before(4)),
    ]
    assert assess(events).score == 849
    assert applied(events, "utilities") == []


# --- subsidies: red list priority; any black list excluded ----------------------------------------------


def test_subsidy_priority_for_red_list() -> None:
    (m,) = applied([], "subsidies", red=True)
    assert m.id == "subsidy_priority"
    assert m.facts == ("on the red list",)


def test_subsidy_exclusion_on_any_black_list() -> None:
    # court defaulter listed 2025-03-01 (24 months -> exit due 2027-03-01)
    (m,) = applied([ev("L1", "court_defaulter_listed", date(2025, 3, 1))], "subsidies")
    assert m.id == "subsidy_exclusion"
    assert m.kind == "punishment"
    assert m.facts == (f"on {COURT_LIST} since 2025-03-01 until 2027-03-01 (event L1)",)


def test_subsidies_nothing_for_an_ordinary_subject() -> None:
    assert applied([], "subsidies") == []


# --- procurement: any black list --------------------------------------------------------------------------


def test_procurement_bar_names_each_listing() -> None:
    # An organization on two black lists: tax D (36 months) and the serious-violation list (36 months).
    events = [
        ev("T1", "tax_credit_d", date(2025, 1, 10)),
        ev("V1", "serious_violation_listed", date(2025, 5, 1)),
    ]
    (m,) = applied(events, "procurement", subject=ORG)
    assert m.id == "procurement_bar"
    assert m.facts == (
        f"on {RB.black_lists['tax_major_violation'].name} since 2025-01-10 until 2028-01-10 (event T1)",
        f"on {RB.black_lists['market_serious_violation'].name} since 2025-05-01 until 2028-05-01 (event V1)",
    )


# --- the abnormal-operations list (经营异常名录): a watch list, not a black list --------------------------

ABNORMAL = "abnormal_operations_listed"


def test_abnormal_operations_listing_is_weighed_in_procurement_not_a_bar() -> None:
    # Listed 2025-05-01: -30 while listed (700 - 30 = 670, level B, no 599 cap), no black listing.
    events = [ev("A1", ABNORMAL, date(2025, 5, 1))]
    a = assess(events, subject=ORG)
    assert (a.score, a.level, a.lists.black) == (670, "B", ())
    (m,) = applied(events, "procurement", subject=ORG)
    assert (m.id, m.kind) == ("procurement_weighs_abnormal_operations", "punishment")
    assert "not a bar" in m.effect
    assert m.legal_basis.startswith("企业信息公示暂行条例")
    assert m.facts == ("on the abnormal-operations list on 2025-05-01 (event A1)",)
    # None of the black-list measures: no subsidy exclusion, no supervision bar.
    assert applied(events, "subsidies", subject=ORG) == []
    assert applied(events, "supervision", subject=ORG) == []


def test_abnormal_operations_counts_until_removed() -> None:
    # Removed on 2026-02-01 (the removal refers to the listing): the -30 and the measure end that day.
    events = [
        ev("A1", ABNORMAL, date(2025, 5, 1)),
        ev("R1", "abnormal_operations_removed", date(2026, 2, 1), refers_to="A1"),
    ]
    listed = assess(events, subject=ORG, as_of=date(2026, 1, 31))
    assert listed.score == 670
    assert listed.next_change_on == date(2028, 5, 1)  # before the removal: the list's 36 months
    assert ids(measures(listed, "procurement", RB, subject=ORG)) == ["procurement_weighs_abnormal_operations"]
    removed = assess(events, subject=ORG, as_of=date(2026, 2, 1))
    assert removed.score == 700
    assert {c.event_id: c.state for c in removed.contributions} == {"A1": "expired", "R1": "listing-exit"}
    assert measures(removed, "procurement", RB, subject=ORG) == []


def test_abnormal_operations_without_removal_ends_after_three_years() -> None:
    # No removal: the listing counts at most 36 months (then market regulation moves a still-listed
    # enterprise to the serious-violation list, reported as its own event).
    events = [ev("A1", ABNORMAL, date(2023, 5, 1))]
    assert assess(events, subject=ORG, as_of=date(2026, 4, 30)).score == 670
    assert assess(events, subject=ORG, as_of=date(2026, 5, 1)).score == 700


def test_abnormal_operations_route_is_removal_and_the_red_list_is_not_ended() -> None:
    # Its reason's route is the list's removal (no 信用修复 of its own); a red-list member is not
    # removed at once (it is not a serious event nor a black listing) — the yearly review decides,
    # and eligibility needs three clean years.
    a = assess([ev("A1", ABNORMAL, date(2025, 5, 1))], subject=ORG, red=True)
    (reason,) = a.reasons
    assert (reason.code, reason.points, reason.repair.route) == (ABNORMAL, -30, "list-exit")
    assert (a.lists.red_member, a.lists.red_eligible) == (True, False)


def test_abnormal_operations_was_a_black_list_in_2026_1() -> None:
    # Scores recorded under 2026.1 replay with the list as it was then: capped at 599, barred.
    legacy = shipped_rulebook("2026.1")
    events = [ev("A1", ABNORMAL, date(2025, 5, 1))]
    a = assess(events, subject=ORG, rulebook=legacy)
    assert a.score == 599
    assert [b.list for b in a.lists.black] == ["abnormal_operations"]
    assert ids(measures(a, "procurement", legacy, subject=ORG)) == ["procurement_bar"]


def test_procurement_no_bar_after_delisting() -> None:
    events = [
        ev("T1", "tax_credit_d", date(2025, 1, 10)),
        ev("X1", "tax_list_exit", date(2026, 1, 10), refers_to="T1"),
    ]
    assert applied(events, "procurement", subject=ORG) == []
    # Before the exit the bar applied.
    assert ids(applied(events, "procurement", subject=ORG, as_of=date(2026, 1, 9))) == ["procurement_bar"]


# --- travel and consumption: court defaulters only -------------------------------------------------------


def test_consumption_restriction_for_court_defaulter() -> None:
    (m,) = applied([ev("L1", "court_defaulter_listed", date(2025, 3, 1))], "travel_consumption")
    assert m.id == "consumption_restriction"
    assert m.facts == (f"on {COURT_LIST} since 2025-03-01 until 2027-03-01 (event L1)",)


def test_consumption_restriction_not_for_other_lists_or_after_exit() -> None:
    assert applied([ev("T1", "tax_credit_d", date(2025, 1, 10))], "travel_consumption", subject=ORG) == []
    # Court list max 24 months: 2024-01-10 -> ends 2026-01-10.
    assert applied([ev("L1", "court_defaulter_listed", date(2024, 1, 10))], "travel_consumption") == []


# --- market entry: licensing fraud while it counts ---------------------------------------------------------


def test_licence_ban_while_licensing_fraud_counts() -> None:
    (m,) = applied([ev("F1", "licensing_fraud", date(2025, 3, 1))], "market_entry", subject=ORG)
    assert m.id == "licence_ban"
    assert m.facts == ("fraud in obtaining an administrative licence on 2025-03-01 (event F1)",)


@pytest.mark.parametrize(
    ("on", "effect"),
    [
        (date(2023, 6, 15), None),  # serious tier: 36 months, expired 2026-06-15
        (date(2025, 3, 1), EffectKind.REPAIRED),
        (date(2025, 3, 1), EffectKind.WITHDRAWN),
    ],
    ids=["expired", "repaired", "withdrawn"],
)
def test_no_licence_ban_when_fraud_no_longer_counts(on: date, effect: EffectKind | None) -> None:
    effects = [Effect("F1", effect, date(2026, 1, 1))] if effect else []
    assert applied([ev("F1", "licensing_fraud", on)], "market_entry", subject=ORG, effects=effects) == []


# --- supervision: risk class D; serious-violation list ---------------------------------------------------


def test_supervision_both_punishments_named() -> None:
    events = [
        ev("R1", "market_risk_d", date(2026, 2, 1)),
        ev("V1", "serious_violation_listed", date(2025, 10, 1)),
    ]
    result = applied(events, "supervision", subject=ORG)
    assert ids(result) == ["more_inspections", "representative_bar"]
    assert result[0].facts == ("market-regulation risk class D on 2026-02-01 (event R1)",)
    name = RB.black_lists["market_serious_violation"].name
    assert result[1].facts == (f"on {name} since 2025-10-01 until 2028-10-01 (event V1)",)
    assert all(m.kind == "punishment" for m in result)


def test_supervision_nothing_once_risk_class_expires() -> None:
    # market_risk_d general tier: 2025-06-01 + 12 months = 2026-06-01 < as_of.
    assert applied([ev("R1", "market_risk_d", date(2025, 6, 1))], "supervision", subject=ORG) == []


# --- ordering, unknown scenarios ---------------------------------------------------------------------------


def test_punishments_listed_before_rewards() -> None:
    # A red-list member who is also black-listed (built by hand): exclusion before priority.
    base = assess([])
    listing = BlackListing("court_defaulters", "L1", date(2025, 3, 1), date(2027, 3, 1))
    a = replace(base, lists=ListStatus(black=(listing,), red_member=True))
    result = measures(a, "subsidies", RB, subject=PERSON)
    assert [(m.id, m.kind) for m in result] == [
        ("subsidy_exclusion", "punishment"),
        ("subsidy_priority", "reward"),
    ]


def _custom_rulebook(extra: dict[str, Any]) -> Rulebook:
    path = Path(credit.rulebook.__file__).parent / "rulebooks" / "default.toml"
    with path.open("rb") as f:
        data = tomllib.load(f)
    data["measures"].update(extra)
    return rulebook_from_data(data)


def test_punishments_first_regardless_of_id_order() -> None:
    # Ids that would sort the other way: "a_reward" < "z_punishment"; kind decides first.
    rb = _custom_rulebook(
        {
            "a_reward": {
                "scenario": "parking",
                "kind": "reward",
                "effect": "x",
                "legal_basis": "y",
                "when": {"min_level": "D"},
            },
            "z_punishment": {
                "scenario": "parking",
                "kind": "punishment",
                "effect": "x",
                "legal_basis": "y",
                "when": {"min_level": "D"},
            },
        }
    )
    a = evaluate([], rb, AS_OF)
    assert ids(measures(a, "parking", rb, subject=PERSON)) == [
        "z_punishment",
        "a_reward",
        "parking_pay_later",
    ]


def test_red_list_false_condition_and_combined_tests() -> None:
    # A measure for subjects NOT on the red list, persons only, level B or above.
    rb = _custom_rulebook(
        {
            "outsider": {
                "scenario": "libraries",
                "kind": "reward",
                "effect": "x",
                "legal_basis": "y",
                "when": {"red_list": False, "subject": "person", "min_level": "B"},
            }
        }
    )
    a = evaluate([], rb, AS_OF)
    result = measures(a, "libraries", rb, subject=PERSON)
    outsider = next(m for m in result if m.id == "outsider")
    assert outsider.facts == ("level A (score 700) is B or above", "not on the red list")
    member = evaluate([], rb, AS_OF, red_list=[RedListDecision(RedListAction.ENTER, date(2025, 1, 1))])
    assert "outsider" not in ids(measures(member, "libraries", rb, subject=PERSON))
    assert "outsider" not in ids(measures(a, "libraries", rb, subject=ORG))


def test_unknown_scenario() -> None:
    with pytest.raises(NotFoundError) as info:
        measures(assess([]), "casino", RB, subject=PERSON)
    assert info.value.reason == "unknown-scenario"
    assert "casino" in info.value.message
    assert "libraries" in info.value.message  # the known scenarios are listed


def test_measures_never_mix_scenarios() -> None:
    # A subject meeting every condition gets only the measures of the asked scenario.
    a = replace(
        assess([]),
        score=900,
        level="AAA",
        lists=ListStatus(
            black=(BlackListing("court_defaulters", "L1", date(2025, 3, 1), date(2027, 3, 1)),),
            red_member=True,
        ),
    )
    for scenario in RB.scenarios:
        got = measures(a, scenario, RB, subject=PERSON)
        assert all(RB.measures[m.id].scenario == scenario for m in got)
        kinds = [m.kind for m in got]
        assert kinds == sorted(kinds, key=lambda k: k != "punishment")
        for m in got:
            assert (m.kind, m.effect, m.legal_basis) == (
                RB.measures[m.id].kind,
                RB.measures[m.id].effect,
                RB.measures[m.id].legal_basis,
            )
            assert m.facts  # every applied measure says why
