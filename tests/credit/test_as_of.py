"""A subject's credit on a past date: recomputed from the records beside what was recorded then."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from credit.errors import InvalidDate, NotFoundError, UnknownSubject
from credit.identifiers import SubjectKind
from ledger.log import Ledger
from tests.credit.test_service import COURT, START, UTILITIES, Svc, modified_rulebook, new_service, person

P1, P2 = person(41), person(42)


@pytest.fixture
def svc(ledger: Ledger) -> Svc:
    clock = [START]
    return Svc(new_service(ledger, clock), clock)


def day(n: int) -> date:
    return START + timedelta(days=n)


def test_a_late_report_shows_as_a_difference_from_what_was_recorded(svc: Svc) -> None:
    ref = svc.submit(COURT, "contract_default", P1, "c-1").subject_ref  # 700 - 20
    svc.travel(day(30))
    # Reported on day 30, dated day 10: on day 10 the service had stated 680.
    assert svc.submit(UTILITIES, "late_utility_fees", P1, "u-1", occurred=day(10)).score == 660

    on_day_10 = svc.service.score_on(ref, day(10))
    assert on_day_10.assessment.score == 660  # the facts now on record
    assert on_day_10.assessment.rulebook_version == "2026.2"
    assert on_day_10.recorded is not None and on_day_10.recorded.after.score == 680
    assert on_day_10.recorded.as_of == START
    assert on_day_10.agrees is False

    svc.travel(day(40))
    on_day_40 = svc.service.score_on(ref, day(40))
    assert on_day_40.recorded is not None and on_day_40.recorded.as_of == day(30)
    assert (on_day_40.assessment.score, on_day_40.agrees) == (660, True)
    # Events dated after the day do not count yet: before the first event, the base score.
    assert svc.service.score_on(ref, START).assessment.score == 680


def test_an_expiry_and_the_measures_of_the_day(svc: Svc) -> None:
    ref = svc.submit(UTILITIES, "late_utility_fees", P1, "u-1").subject_ref  # minor: 3 months
    svc.travel(day(200))
    counting, expired = svc.service.score_on(ref, day(10)), svc.service.score_on(ref, day(150))
    assert (counting.assessment.score, expired.assessment.score) == (680, 700)
    assert expired.agrees is False  # no daily job ran in between to record the expiry
    rulebook = svc.service.rulebook("2026.2")
    assert [scenario for scenario, _ in counting.measures] == list(rulebook.scenarios)
    assert all(m.legal_basis for _, applied in counting.measures for m in applied)


def test_the_rulebook_in_force_that_day_is_used(svc: Svc) -> None:
    ref = svc.submit(COURT, "contract_default", P1, "c-1").subject_ref
    svc.travel(day(50))
    svc.service.activate_rulebook(modified_rulebook("2026.3", contract_default=-40), by="test")
    before, after = svc.service.score_on(ref, day(49)), svc.service.score_on(ref, day(50))
    assert (before.assessment.rulebook_version, before.assessment.score) == ("2026.2", 680)
    assert (after.assessment.rulebook_version, after.assessment.score) == ("2026.3", 660)
    assert after.recorded is not None and after.recorded.rulebook == "2026.3" and after.agrees is True


def test_questions_that_have_no_answer_are_refused(svc: Svc) -> None:
    ref = svc.submit(COURT, "contract_default", P1, "c-1").subject_ref
    with pytest.raises(InvalidDate):
        svc.service.score_on(ref, day(1))  # tomorrow
    with pytest.raises(NotFoundError) as refused:
        svc.service.score_on(ref, day(-1))  # before any rulebook was put in force
    assert refused.value.reason == "no-rulebook-then"
    unknown = svc.service.subject_ref(P2)[0]
    with pytest.raises(UnknownSubject):
        svc.service.score_on(unknown, START)
    fresh = svc.service.score_on(unknown, START, kind=SubjectKind.PERSON)
    assert (fresh.assessment.score, fresh.recorded, fresh.agrees) == (700, None, None)
