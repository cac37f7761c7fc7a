"""Tamper-evident credit history: rows are served from, and checked against, their ledger records.

An operator with write access to the database edits or deletes credit rows; readers must never be
served the edit as if it were the record, and replay (``replay``, ``replay_all``) and the audit row
check (``check_rows``) must name every difference with the record's log index.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from credit.errors import IntegrityFailure
from credit.models import ObjectionOutcome
from credit.service import CreditService
from credit.store import ACCESSES, CHANGES, EVENTS, TABLES
from ledger.log import Ledger
from tests.credit.test_service import COURT, START, new_service, person

P1, P2 = person(41), person(52)
TABLE_OF = {table.name: table for table in TABLES}


def _setup(ledger: Ledger) -> tuple[CreditService, list[date]]:
    clock = [START]
    return new_service(ledger, clock), clock


def _submit(service: CreditService, type_: str, subject: str, source_ref: str, day: date) -> str:
    [outcome] = service.submit_events(
        COURT,
        [{"type": type_, "subject": subject, "occurred_on": day.isoformat(), "source_ref": source_ref}],
    )
    return outcome.record_id


def _log_index(ledger: Ledger, record_id: str) -> int:
    index = ledger.record(record_id).log_index
    assert index is not None
    return index


def _mentions(problems: list[str], record_id: str, index: int, *words: str) -> bool:
    return any(record_id in p and f"log index {index}" in p and all(w in p for w in words) for p in problems)


def test_an_edited_change_document_is_served_as_recorded_and_reported(ledger: Ledger) -> None:
    service, _clock = _setup(ledger)
    _submit(service, "sued_in_breach", P1, "c-1", START)
    ref = service.subject_ref(P1)[0]
    [change] = service.history(ref)
    assert change.after.score == 650
    ledger.sequence_all()
    index = _log_index(ledger, change.record_id)
    with service.ledger.store.engine.begin() as conn:
        document = conn.execute(select(CHANGES.c.document).where(CHANGES.c.subject_ref == ref)).scalar_one()
        forged = {**document, "after": {**document["after"], "score": 651}}
        conn.execute(update(CHANGES).where(CHANGES.c.subject_ref == ref).values(document=forged))

    [served] = service.history(ref)  # read from the credit_change record, not from the edited row
    assert served.after.score == 650 and served.record_id == change.record_id
    for report in (service.replay_all(), service.replay(ref), service.check_rows()):
        assert not report.clean
        assert _mentions(report.problems, change.record_id, index, "credit_change", "651"), report.problems


def test_a_deleted_newest_change_is_refused_and_reported(ledger: Ledger) -> None:
    service, clock = _setup(ledger)
    _submit(service, "contract_default", P1, "c-1", START)
    clock[0] = START + timedelta(days=3)
    _submit(service, "sued_in_breach", P1, "c-2", clock[0])
    _submit(service, "contract_default", P2, "c-3", clock[0])
    ref = service.subject_ref(P1)[0]
    first, newest = service.history(ref)
    assert (first.after.score, newest.after.score) == (680, 630)
    ledger.sequence_all()
    index = _log_index(ledger, newest.record_id)
    assert service.replay_all().clean
    with service.ledger.store.engine.begin() as conn:
        conn.execute(delete(CHANGES).where(CHANGES.c.record_id == newest.record_id))

    with pytest.raises(IntegrityFailure, match=newest.record_id) as refused:
        service.history(ref)
    assert f"log index {index}" in refused.value.message
    for report in (service.replay_all(), service.check_rows()):
        assert _mentions(report.problems, newest.record_id, index, "no credit_change row"), report.problems
    # P2 is untouched and still served.
    assert [c.after.score for c in service.history(service.subject_ref(P2)[0])] == [680]


def test_a_deleted_oldest_change_breaks_the_chain_and_is_refused(ledger: Ledger) -> None:
    service, clock = _setup(ledger)
    _submit(service, "contract_default", P1, "c-1", START)
    clock[0] = START + timedelta(days=3)
    _submit(service, "sued_in_breach", P1, "c-2", clock[0])
    ref = service.subject_ref(P1)[0]
    first, _newest = service.history(ref)
    with service.ledger.store.engine.begin() as conn:
        conn.execute(delete(CHANGES).where(CHANGES.c.record_id == first.record_id))
    with pytest.raises(IntegrityFailure, match="missing"):
        service.history(ref)
    assert any(first.record_id in p for p in service.replay_all().problems)


def test_an_edited_event_row_changes_neither_the_score_nor_the_events_served(ledger: Ledger) -> None:
    service, _clock = _setup(ledger)
    event_record = _submit(service, "sued_in_breach", P1, "c-1", START)
    ref = service.subject_ref(P1)[0]
    assert service.assess(ref).score == 650
    ledger.sequence_all()
    with service.ledger.store.engine.begin() as conn:  # backdated five years: it would no longer count
        conn.execute(update(EVENTS).where(EVENTS.c.subject_ref == ref).values(occurred_on=date(2021, 1, 4)))
    assert service.assess(ref).score == 650
    [event] = service.events(ref)
    assert event.occurred_on == START
    report = service.check_rows()
    assert _mentions(report.problems, event_record, _log_index(ledger, event_record), "occurred_on")


def _tampers(service: CreditService) -> list[tuple[str, str, Callable[[Any], None]]]:
    """(table, record id of the tampered row, tamper) for one row of every kind."""

    def first(table: str, column: str = "record_id", where: str = "") -> str:
        with service.ledger.store.engine.connect() as conn:
            value: str = conn.execute(
                text(f"SELECT {column} FROM {table} {where} ORDER BY 1 LIMIT 1")
            ).scalar_one()
        return value

    def run(sql: str, **params: Any) -> Callable[[Any], None]:
        return lambda conn: conn.execute(text(sql), params)

    step = first("credit_case_step", where="WHERE step = 'objection-filed'")
    effect = first("credit_effect")
    access = first("credit_access")
    snapshot = first("credit_list_snapshot")
    rulebook = first("credit_rulebook")
    return [
        (
            "credit_case_step",
            step,
            run("UPDATE credit_case_step SET step = 'forged' WHERE record_id = :r", r=step),
        ),
        (
            "credit_effect",
            effect,
            run("UPDATE credit_effect SET kind = 'repaired' WHERE record_id = :r", r=effect),
        ),
        (
            "credit_access",
            access,
            run("UPDATE credit_access SET purpose = 'forged' WHERE record_id = :r", r=access),
        ),
        ("credit_access", access, run("DELETE FROM credit_access WHERE record_id = :r", r=access)),
        (
            "credit_list_snapshot",
            snapshot,
            run("UPDATE credit_list_snapshot SET members = '[]' WHERE record_id = :r", r=snapshot),
        ),
        (
            "credit_rulebook",
            rulebook,
            run(
                "UPDATE credit_rulebook SET activated_on = activated_on, hash = :h WHERE record_id = :r",
                h=b"\0" * 32,
                r=rulebook,
            ),
        ),
    ]


def test_every_kind_of_row_is_compared_with_its_record(ledger: Ledger, tmp_path: Any) -> None:
    service, clock = _setup(ledger)
    _submit(service, "court_defaulter_listed", P1, "l-1", START)
    event = _submit(service, "contract_default", P2, "c-1", START)
    event_id = ledger.record(event).leaf.metadata["id"]
    ref1, ref2 = service.subject_ref(P1)[0], service.subject_ref(P2)[0]
    case = service.file_objection(ref2, event_id, "not mine")
    clock[0] = START + timedelta(days=2)
    service.answer_objection(case.id, COURT, ObjectionOutcome.CORRECT)
    service.log_access(ref1, accessor="audit-office", role="auditor", purpose="credit_audit", what="subject")
    service.publish_list_snapshot("court_defaulters", by="officer")
    ledger.sequence_all()
    assert service.check_rows().clean
    for table, record_id, tamper in _tampers(service):
        stored = TABLE_OF[table]
        with service.ledger.store.engine.connect() as conn:
            before = [dict(row._mapping) for row in conn.execute(select(stored))]
        with service.ledger.store.engine.begin() as conn:
            tamper(conn)
        report = service.check_rows()
        assert _mentions(report.problems, record_id, _log_index(ledger, record_id)), (table, report.problems)
        with service.ledger.store.engine.begin() as conn:  # restore the table for the next tamper
            conn.execute(delete(stored))
            conn.execute(insert(stored), before)
        assert service.check_rows().clean, (table, service.check_rows().problems)


def test_replay_counts_every_row_and_record(ledger: Ledger) -> None:
    service, _clock = _setup(ledger)
    for n in range(3):
        _submit(service, "contract_default", person(60 + n), f"c-{n}", START)
    report = service.replay_all()
    assert report.clean and report.subjects == 3 and report.events == 3 and report.changes == 3
    with service.ledger.store.engine.connect() as conn:
        rows = sum(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (EVENTS, CHANGES, ACCESSES)
        )
    assert report.rows >= rows + 1  # + the rulebook row
