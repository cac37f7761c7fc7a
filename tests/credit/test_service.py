"""The credit service without HTTP: the daily jobs (expiry rescoring, reminders, the yearly
red-list review), recomputation after a rulebook change, and the property that a replay from the
ledger always equals what the database stores.

The service runs on an injected clock (``clock[0]``), so the tests travel in time.
"""

from __future__ import annotations

import json
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from credit.errors import CreditError, WorkflowError
from credit.identifiers import resident_id_check_char
from credit.models import CaseKind, CaseState, ChangeCause, ObjectionOutcome
from credit.rulebook import Rulebook, default_rulebook, rulebook_from_data
from credit.service import CreditService, EventOutcome, Source
from credit.store import CASE_STEPS, RULEBOOKS
from credit.unit_of_work import credit_record
from credit.workdays import WorkingCalendar
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, digest_function
from ledger.core.leaf import MAX_METADATA_BYTES, RecordKind, canonical_json
from ledger.errors import InvalidRequest
from ledger.log import Ledger
from ledger.store import LogStore, make_engine

START = date(2026, 3, 2)  # a Monday
MASTER_KEY = bytes(range(16))
CALENDAR = WorkingCalendar()
COURT = Source("city-court", "court")
HONOURS = Source("honours-office", "honours")
FINANCE = Source("credit-bureau", "finance")
VOLUNTEERING = Source("volunteer-platform", "volunteering")
UTILITIES = Source("water-company", "utilities")


def person(n: int) -> str:
    body = f"110105198001{1 + n % 28:02d}{n:03d}"
    return body + resident_id_check_char(body)


P1, P2, P3 = person(11), person(22), person(33)


@dataclass
class Svc:
    service: CreditService
    clock: list[date]

    def travel(self, to: date) -> None:
        assert to >= self.clock[0], "time only moves forward"
        self.clock[0] = to

    def daily(self, day: date) -> Any:
        self.travel(day)
        return self.service.run_daily()

    def submit(
        self,
        source: Source,
        type_: str,
        subject: str,
        source_ref: str,
        occurred: date | None = None,
        **extra: Any,
    ) -> EventOutcome:
        event = {
            "type": type_,
            "subject": subject,
            "occurred_on": (occurred or self.clock[0]).isoformat(),
            "source_ref": source_ref,
            **extra,
        }
        [outcome] = self.service.submit_events(source, [event])
        return outcome

    def ref(self, identifier: str) -> bytes:
        return self.service.subject_ref(identifier)[0]

    def steps(self, name: str) -> int:
        with self.service.ledger.store.engine.connect() as conn:
            count: int = conn.execute(
                select(func.count()).select_from(CASE_STEPS).where(CASE_STEPS.c.step == name)
            ).scalar_one()
        return count

    def assert_clean(self, *identifiers: str) -> None:
        for identifier in identifiers:
            report = self.service.replay(self.ref(identifier))
            assert report.clean, report.problems
        full = self.service.replay_all()
        assert full.clean, full.problems


def new_service(ledger: Ledger, clock: list[date]) -> CreditService:
    service = CreditService(ledger, master_key=MASTER_KEY, calendar=CALENDAR, today=lambda: clock[0])
    service.create_schema()
    assert service.ensure_rulebook() == "2026.2"  # set-up puts the shipped default in force
    assert service.active_rulebook().version == "2026.2"
    return service


@pytest.fixture
def svc(ledger: Ledger) -> Svc:
    clock = [START]
    return Svc(new_service(ledger, clock), clock)


def modified_rulebook(version: str, **points: int) -> Rulebook:
    data = json.loads(default_rulebook().canonical_json())
    data["version"] = version
    for type_, value in points.items():
        data["event_types"][type_]["points"] = value
    return rulebook_from_data(data)


# --- the daily job: expiries and list exits ----------------------------------------------------------


def test_daily_job_rescores_when_an_event_expires(svc: Svc) -> None:
    outcome = svc.submit(COURT, "contract_default", P1, "c-1")
    ref = outcome.subject_ref
    assert outcome.score == 680
    stored = svc.service.score(ref)
    assert stored.next_change_on == date(2027, 3, 2)  # one year (general tier)

    report = svc.daily(date(2027, 3, 1))
    assert (report.recomputed, report.changed) == (0, 0)
    assert svc.service.score(ref).score == 680
    report = svc.daily(date(2027, 3, 2))
    assert (report.recomputed, report.changed) == (1, 1)
    last = svc.service.history(ref)[-1]
    assert last.cause == ChangeCause("scheduled")
    assert last.as_of == date(2027, 3, 2)
    assert last.before is not None and (last.before.score, last.after.score) == (680, 700)
    assert last.reasons == ()
    stored = svc.service.score(ref)
    assert (stored.score, stored.level) == (700, "A")
    assert stored.next_change_on == date(2029, 3, 2)  # three clean years: red-list eligibility
    assert svc.daily(date(2027, 3, 3)).recomputed == 0  # nothing to do until then
    assert len(svc.service.history(ref)) == 2
    svc.assert_clean(P1)


def test_daily_job_ends_a_black_listing_at_its_exit_date(svc: Svc) -> None:
    outcome = svc.submit(COURT, "court_defaulter_listed", P1, "(2026)执1号")
    ref = outcome.subject_ref
    assert svc.service.score(ref).black == ("court_defaulters",)
    exit_due = date(2028, 3, 2)  # the court list's 2 years
    assert svc.service.score(ref).next_change_on == exit_due
    assert svc.daily(exit_due - timedelta(days=1)).changed == 0
    assert svc.daily(exit_due).changed == 1
    stored = svc.service.score(ref)
    assert (stored.black, stored.score) == ((), 650)  # counts a year after the exit
    assert stored.next_change_on == date(2029, 3, 2)
    assert svc.daily(date(2029, 3, 2)).changed == 1
    assert svc.service.score(ref).score == 700
    assert [c.cause.kind for c in svc.service.history(ref)] == ["event", "scheduled", "scheduled"]
    svc.assert_clean(P1)


# --- deadlines: reminders and overdue -----------------------------------------------------------------


def test_reminder_two_working_days_before_the_objection_is_due(svc: Svc) -> None:
    outcome = svc.submit(COURT, "contract_default", P1, "c-1")
    case = svc.service.file_objection(outcome.subject_ref, outcome.event_id, "合同已履行")
    due = case.due_on
    assert due == CALENDAR.add_working_days(START, 10) == date(2026, 3, 16)
    reminder_day = date(2026, 3, 12)  # Thursday: Friday 13 and Monday 16 are left
    assert CALENDAR.working_days_between(reminder_day, due) == 2
    assert CALENDAR.working_days_between(reminder_day - timedelta(days=1), due) == 3

    assert svc.daily(reminder_day - timedelta(days=1)).reminders == 0
    report = svc.daily(reminder_day)
    assert (report.reminders, report.overdue) == (1, 0)
    steps = svc.service.case(case.id).steps
    assert [(s.step, s.on) for s in steps] == [
        ("objection-filed", date(2026, 3, 2)),
        ("reminder", date(2026, 3, 12)),
    ]
    assert steps[-1].actor == "credit-engine" and steps[-1].record_id
    assert svc.daily(reminder_day + timedelta(days=1)).reminders == 0  # once
    assert svc.daily(due).overdue == 0  # due today is not overdue
    report = svc.daily(due + timedelta(days=1))
    assert (report.overdue, report.reminders) == (1, 0)
    assert svc.daily(due + timedelta(days=2)).overdue == 0
    assert [s.step for s in svc.service.case(case.id).steps] == [
        "objection-filed",
        "reminder",
        "overdue",
    ]
    svc.service.answer_objection(case.id, COURT, ObjectionOutcome.UPHOLD)
    assert svc.daily(due + timedelta(days=30)).overdue == 0  # answered cases are left alone
    svc.assert_clean(P1)


# --- the yearly red-list review -------------------------------------------------------------------------


def test_yearly_red_list_review_runs_once_per_year(svc: Svc) -> None:
    svc.travel(date(2026, 12, 1))
    svc.submit(HONOURS, "bravery_province", P1, "h-1")
    svc.submit(HONOURS, "honour_national", P1, "h-2")
    svc.submit(HONOURS, "honour_street", P2, "h-3")
    ref = svc.ref(P1)
    assert svc.service.score(ref).red_eligible

    assert svc.daily(date(2027, 1, 14)).proposals == 0  # not yet the review date
    assert svc.steps("red-list-reviewed") == 0
    assert svc.daily(date(2027, 1, 15)).proposals == 1
    [proposal] = svc.service.cases(kind=CaseKind.LIST, states=[CaseState.PROPOSED])
    assert proposal.subject_ref == ref and proposal.detail["action"] == "enter"
    assert svc.daily(date(2027, 1, 16)).proposals == 0
    svc.service.decide_list_case(proposal.id, "credit-officer/陈主任", False, note="材料不全")
    assert not svc.service.score(ref).red
    assert svc.daily(date(2027, 6, 1)).proposals == 0  # still eligible, but reviewed this year
    assert svc.steps("red-list-reviewed") == 1
    assert svc.daily(date(2028, 1, 15)).proposals == 1  # next year's review
    assert svc.steps("red-list-reviewed") == 2
    assert svc.daily(date(2028, 1, 16)).proposals == 0
    svc.assert_clean(P1, P2)


# --- rulebook activation ---------------------------------------------------------------------------------


def test_reading_the_rulebook_in_force_never_activates_one(ledger: Ledger) -> None:
    """With no rulebook activated a read refuses (no-rulebook) and writes nothing; set-up activates
    the shipped default once."""
    service = CreditService(ledger, master_key=MASTER_KEY, calendar=CALENDAR, today=lambda: START)
    service.create_schema()
    with pytest.raises(CreditError) as refused:
        service.active_rulebook()
    assert refused.value.reason == "no-rulebook"
    event = {"type": "contract_default", "subject": P1, "occurred_on": "2026-03-02", "source_ref": "c-1"}
    with pytest.raises(CreditError) as refused:
        service.submit_events(COURT, [event])
    assert refused.value.reason == "no-rulebook"
    with ledger.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RULEBOOKS)).scalar_one() == 0
    assert service.ensure_rulebook() == service.ensure_rulebook() == "2026.2"
    assert [v.version for v in service.rulebook_versions()] == ["2026.2"]


def test_recompute_all_after_activating_a_rulebook(svc: Svc) -> None:
    svc.submit(COURT, "contract_default", P1, "c-1")
    svc.submit(HONOURS, "honour_district", P2, "h-1")
    svc.submit(COURT, "contract_default", P3, "c-3")
    svc.submit(COURT, "sued_in_breach", P3, "c-4")
    svc.travel(START + timedelta(days=7))
    report = svc.service.activate_rulebook(modified_rulebook("2026.3", contract_default=-30), by="规则委员会")
    assert (report.recomputed, report.changed) == (3, 2)  # P2's score does not move: nothing recorded
    scores = {p: svc.service.score(svc.ref(p)) for p in (P1, P2, P3)}
    assert {p: s.score for p, s in scores.items()} == {P1: 670, P2: 705, P3: 620}
    assert {s.rulebook_version for s in scores.values()} == {"2026.3"}
    for p in (P1, P3):
        last = svc.service.history(svc.ref(p))[-1]
        assert last.cause == ChangeCause("rulebook", "2026.3") and last.rulebook == "2026.3"
        assert last.as_of == svc.clock[0]
    assert svc.service.history(svc.ref(P2))[-1].rulebook == "2026.2"

    again = svc.service.recompute_all(cause=ChangeCause("manual"))
    assert (again.recomputed, again.changed) == (3, 0)
    assert svc.submit(COURT, "contract_default", P2, "c-5").score == 675  # new events use 2026.3
    svc.assert_clean(P1, P2, P3)


# --- property: replay equals stored ---------------------------------------------------------------------

_SUBJECTS = [person(n) for n in (101, 202, 303)]
#: (source, type, max quantity)
_KINDS = [
    (COURT, "contract_default", 1),
    (COURT, "criminal_conviction", 1),
    (COURT, "court_defaulter_listed", 1),
    (COURT, "court_defaulter_delisted", 1),
    (HONOURS, "honour_national", 1),
    (HONOURS, "honour_provincial", 1),
    (HONOURS, "bravery_city", 1),
    (VOLUNTEERING, "volunteer_service", 5),
    (FINANCE, "loan_arrears", 12),
    (UTILITIES, "late_utility_fees", 1),
]
_event = st.tuples(
    st.integers(0, len(_SUBJECTS) - 1),
    st.integers(0, len(_KINDS) - 1),
    st.integers(0, 90),  # days before today that it happened
    st.integers(1, 12),  # quantity (clipped to the type's maximum)
)
_action: st.SearchStrategy[tuple[str, int, Any]] = st.one_of(
    st.tuples(st.just("batch"), st.integers(0, 120), st.lists(_event, min_size=1, max_size=4)),
    st.tuples(st.just("daily"), st.integers(0, 400), st.just([])),
    st.tuples(st.just("correct"), st.integers(0, 30), st.integers(0, 50)),
    st.tuples(st.just("repair"), st.integers(0, 200), st.integers(0, 50)),
)


@dataclass
class _Run:
    """Applies generated actions, remembering events (id, subject, type) and open listings."""

    svc: Svc
    refs: int = 0
    events: list[tuple[str, int, str]] = field(default_factory=list)
    listings: dict[int, list[str]] = field(default_factory=dict)  # subject → listing source refs

    def batch(self, items: list[tuple[int, int, int, int]]) -> None:
        by_source: dict[Source, list[dict[str, Any]]] = {}
        today = self.svc.clock[0]
        for subject, kind, lag, quantity in items:
            source, type_, most = _KINDS[kind]
            self.refs += 1
            event: dict[str, Any] = {
                "type": type_,
                "subject": _SUBJECTS[subject],
                "occurred_on": (today - timedelta(days=lag)).isoformat(),
                "source_ref": f"r-{self.refs}",
            }
            if most > 1:
                event["quantity"] = min(quantity, most)
            if type_ == "court_defaulter_listed":
                self.listings.setdefault(subject, []).append(event["source_ref"])
            if type_ == "court_defaulter_delisted":
                if not self.listings.get(subject):
                    continue
                event["refers_to"] = self.listings[subject].pop(0)
                event["occurred_on"] = today.isoformat()
            if type_ == "loan_arrears" and lag > 30:
                event["ended_on"] = (today - timedelta(days=lag - 30)).isoformat()
            by_source.setdefault(source, []).append(event)
        for source, events in by_source.items():
            for outcome, event in zip(self.svc.service.submit_events(source, events), events, strict=True):
                self.events.append((outcome.event_id, _SUBJECTS.index(event["subject"]), event["type"]))

    def correct(self, pick: int) -> None:
        if not self.events:
            return
        event_id, subject, _type = self.events[pick % len(self.events)]
        service = self.svc.service
        try:
            case = service.file_objection(service.subject_ref(_SUBJECTS[subject])[0], event_id, "有误")
        except WorkflowError:
            return
        source = next(
            s for s in (COURT, HONOURS, FINANCE, VOLUNTEERING, UTILITIES) if s.name == case.detail["source"]
        )
        service.answer_objection(case.id, source, ObjectionOutcome.CORRECT, confirmed_by="复核人")

    def repair(self, pick: int) -> None:
        if not self.events:
            return
        event_id, subject, _type = self.events[pick % len(self.events)]
        service = self.svc.service
        try:
            case = service.apply_repair(service.subject_ref(_SUBJECTS[subject])[0], event_id, "信用承诺书")
        except WorkflowError:
            return
        service.decide_repair(case.id, "credit-officer/审核人", approve=True)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(actions=st.lists(_action, min_size=1, max_size=10))
def test_property_replay_equals_stored(actions: list[tuple[str, int, Any]]) -> None:
    """Random event batches, objections and repairs over random days for three subjects (SQLite):
    replaying the ledger always agrees with the database, and after the daily job the stored
    score is what a fresh computation gives."""
    with _fresh_service() as svc:
        run = _Run(svc)
        for kind, days, arg in actions:
            svc.travel(svc.clock[0] + timedelta(days=days))
            if kind == "batch":
                run.batch(arg)
            elif kind == "daily":
                svc.service.run_daily()
            elif kind == "correct":
                run.correct(arg)
            else:
                run.repair(arg)
        report = svc.service.replay_all()
        assert report.clean, report.problems
        svc.service.run_daily()
        known = {subject for _id, subject, _type in run.events}
        for subject in known:
            ref = svc.ref(_SUBJECTS[subject])
            assert svc.service.replay(ref).clean
            stored = svc.service.score(ref)
            fresh = svc.service.assess(ref).summary()
            assert (stored.score, stored.level, list(stored.black)) == (
                fresh["score"],
                fresh["level"],
                fresh["black"],
            )
        report = svc.service.replay_all()
        assert report.clean, report.problems
        assert report.subjects == len(known)


_LOG_KEY = Sm2PrivateKey.generate()


@contextmanager
def _fresh_service() -> Iterator[Svc]:
    """A credit service over a new SQLite ledger in a temporary directory (one per example)."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(
            LogStore(make_engine(f"sqlite:///{Path(tmp) / 'ledger.db'}")),
            origin="test.trustledger.local/log",
            hash_alg=HashAlgorithm.SM3,
            signing_key=_LOG_KEY,
            subject_secret=b"s" * 32,
        )
        ledger.create_schema()
        clock = [START]
        try:
            yield Svc(new_service(ledger, clock), clock)
        finally:
            ledger.store.engine.dispose()


def test_recompute_all_in_forked_workers(svc: Svc) -> None:
    """Two forked workers over one-subject ranges record each change once, as one process would."""
    people = [P1, P2, P3]
    for n, person in enumerate(people):
        svc.submit(COURT, "contract_default", person, f"w-{n}")
    report = svc.service.recompute_all(cause=ChangeCause("test"), workers=2, chunk=1)
    assert (report.recomputed, report.changed) == (3, 0)  # nothing moved
    svc.travel(START + timedelta(days=400))  # the defaults (12 months) have expired
    report = svc.service.recompute_all(cause=ChangeCause("test"), workers=2, chunk=1)
    assert (report.recomputed, report.changed) == (3, 3)
    assert {svc.service.score(svc.ref(p)).score for p in people} == {700}
    svc.assert_clean(*people)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=string.ascii_letters), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(alphabet=string.ascii_letters + "_", min_size=1), _json_values, max_size=6))
def test_credit_records_carry_the_rfc8785_encoding_of_their_document(document: dict[str, Any]) -> None:
    """A credit record's metadata bytes are its document's RFC 8785 form (encoded by the ledger's
    core), and its content hash is their SM3."""
    try:
        expected = canonical_json(document)
    except InvalidRequest:
        return  # lone surrogates: no record can hold them
    if len(expected) > MAX_METADATA_BYTES:
        return
    record = credit_record(RecordKind.CREDIT_WORKFLOW, document, None)
    assert record.metadata_json == expected
    assert record.content_hash == digest_function(HashAlgorithm.SM3)(expected)


def test_daily_jobs_are_scheduled_in_local_time(svc: Svc, tmp_path: Path) -> None:
    """The app schedules run_daily every day at credit_jobs_at (Asia/Shanghai) and once at start."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from credit.setup import schedule_credit_jobs
    from ledger.settings import Settings

    scheduler = BackgroundScheduler()
    schedule_credit_jobs(scheduler, svc.service, Settings(data_dir=tmp_path, credit_jobs_at="00:10"))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"credit-daily", "credit-catch-up"}
    trigger = jobs["credit-daily"].trigger
    assert str(trigger) == "cron[hour='0', minute='10']" and str(trigger.timezone) == "Asia/Shanghai"
