"""The service scores incrementally: an event is applied to the subject's stored state, the history is
read only when the state cannot take it, and the result is always what the full evaluation gives."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from credit.engine import evaluate
from credit.models import ChangeCause
from credit.store import SCORES, SubjectInputs
from credit.subject_state_types import SubjectState
from ledger.log import Ledger
from tests.credit.test_service import COURT, FINANCE, START, UTILITIES, Svc, new_service, person

P1, P2 = person(51), person(52)


@pytest.fixture
def svc(ledger: Ledger) -> Svc:
    clock = [START]
    return Svc(new_service(ledger, clock), clock)


@pytest.fixture
def history_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many subjects' histories each rescore read (SubjectInputs.load calls, by subject count)."""
    reads: list[int] = []
    original = SubjectInputs.load.__func__  # type: ignore[attr-defined]

    def counted(cls: type[SubjectInputs], conn: object, refs: list[bytes], **kw: object) -> SubjectInputs:
        reads.append(len(refs))
        return original(cls, conn, refs, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(SubjectInputs, "load", classmethod(counted))
    return reads


def _state(svc: Svc, ref: bytes) -> SubjectState:
    with svc.service.ledger.reading() as conn:
        stored = conn.execute(select(SCORES.c.state).where(SCORES.c.subject_ref == ref)).scalar_one()
    return SubjectState.from_bytes(bytes(stored))


def _assert_full_evaluation_agrees(svc: Svc, ref: bytes) -> None:
    stored = svc.service.score(ref)
    full = svc.service.assess(ref)  # the reference: evaluate over the subject's ledger records
    assert (stored.score, stored.level, stored.next_change_on) == (
        full.score,
        full.level,
        full.next_change_on,
    )


def test_a_new_event_is_applied_to_the_stored_state_without_reading_the_history(
    svc: Svc, history_reads: list[int]
) -> None:
    ref = svc.submit(COURT, "contract_default", P1, "c-1").subject_ref
    assert history_reads == [1]  # a new subject: its (empty) history is read once, to build the state
    assert _state(svc, ref).rulebook_version == "2026.2"
    svc.travel(START + timedelta(days=20))
    assert svc.submit(UTILITIES, "late_utility_fees", P1, "u-1").score == 660
    svc.travel(START + timedelta(days=40))
    svc.submit(FINANCE, "loan_arrears", P1, "a-1", quantity=3)
    assert history_reads == [1]  # in date order: the state took both
    _assert_full_evaluation_agrees(svc, ref)


def test_a_back_dated_capped_event_rebuilds_from_the_history(svc: Svc, history_reads: list[int]) -> None:
    ref = svc.submit(FINANCE, "loan_arrears", P1, "a-2", quantity=4).subject_ref
    svc.travel(START + timedelta(days=30))
    # Dated before the group's latest event: it could change credits already given.
    svc.submit(FINANCE, "loan_arrears", P1, "a-1", occurred=START - timedelta(days=10), quantity=4)
    assert history_reads == [1, 1]
    _assert_full_evaluation_agrees(svc, ref)
    assert svc.service.replay(ref).clean


def test_daily_jobs_and_a_new_rulebook_move_the_states(svc: Svc, history_reads: list[int]) -> None:
    ref = svc.submit(UTILITIES, "late_utility_fees", P1, "u-1").subject_ref  # minor: 3 months
    svc.submit(COURT, "contract_default", P2, "c-2")
    reads = len(history_reads)
    report = svc.daily(date(2026, 6, 2))  # the fee expires: the state is advanced, not rebuilt
    assert (report.recomputed, report.changed) == (1, 1) and len(history_reads) == reads
    assert svc.service.score(ref).score == 700 and _state(svc, ref).live == ()
    svc.service.recompute_all(cause=ChangeCause("scheduled"))  # the same rulebook: from the states
    assert len(history_reads) == reads
    _assert_full_evaluation_agrees(svc, ref)


def test_a_database_from_before_states_gets_the_column_and_rebuilds(
    svc: Svc, history_reads: list[int]
) -> None:
    ref = svc.submit(COURT, "contract_default", P1, "c-1").subject_ref
    with svc.service.ledger.unit_of_work() as unit:  # as an older version left it: no state column
        unit.connection.execute(text("ALTER TABLE credit_score DROP COLUMN state"))
    svc.service.create_schema()  # adds it back, empty
    svc.travel(START + timedelta(days=5))
    assert svc.submit(UTILITIES, "late_utility_fees", P1, "u-1").score == 660
    assert history_reads[-1] == 1 and _state(svc, ref).live  # rebuilt, and stored again
    rulebook = svc.service.active_rulebook()
    with svc.service.ledger.reading() as conn:
        inputs = SubjectInputs.load(conn, [ref])
        assert conn.execute(text("SELECT count(*) FROM credit_score WHERE state IS NULL")).scalar_one() == 0
    full = evaluate(inputs.events[ref], rulebook, svc.clock[0])
    assert svc.service.score(ref).score == full.score
