"""Objections (异议): a subject disputes one of its events, and the source answers.

Filing marks the event "under objection" at once (征信业管理条例 art. 25); the source that reported
the event answers within the rulebook's working-day deadline: it upholds the event, corrects it
(the event is withdrawn, optionally with a new compensating event — never an edit), or cannot
verify it (event and objection both stay on record). A correction that changes the subject's list
status needs a person to confirm it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import select

from credit.cases import (
    OPEN_OBJECTION,
    load_case,
    load_event,
    move_case,
    open_case,
    pending_case,
    queue_effect,
    queue_step,
)
from credit.engine import Effect, EffectKind, Event
from credit.errors import Conflict, NotFoundError, WorkflowError
from credit.intake import Intake, Source, event_record
from credit.models import CaseKind, CaseState, CaseWithSteps, ChangeCause, ObjectionOutcome
from credit.rulebooks_in_force import RulebooksInForce
from credit.scoring import Scoring
from credit.store import EVENTS
from credit.subjects import Subjects
from credit.unit_of_work import LedgerGateway, PendingWrite
from credit.views import Views
from credit.workdays import WorkingCalendar
from ledger.core.crypto import HashAlgorithm, digest_function

_sm3 = digest_function(HashAlgorithm.SM3)


class Objections:
    """Filing and answering objections (see the module docstring)."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        subjects: Subjects,
        intake: Intake,
        scoring: Scoring,
        views: Views,
        *,
        calendar: WorkingCalendar,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.subjects = subjects
        self.intake = intake
        self.scoring = scoring
        self.views = views
        self.calendar = calendar
        self.today = today

    def file(self, ref: bytes, event_id: str, statement: str) -> CaseWithSteps:
        """A subject objects to one of its events: marked "under objection" at once (征信业管理条例 art. 25).

        The source must answer within the rulebook's working-day deadline; the statement itself
        stays in the database, the ledger gets its hash.
        """
        today = self.today()
        with self.gateway.reading() as conn:
            event = load_event(conn, event_id)
        if bytes(event.subject_ref) != ref:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        if not statement.strip():
            raise WorkflowError(
                "an objection needs a statement of what is wrong", reason="statement-required"
            )
        with self.gateway.reading() as conn:
            open_ = pending_case(conn, event_id, CaseKind.OBJECTION, OPEN_OBJECTION)
        if open_ is not None:
            raise WorkflowError(
                f"event {event_id} is already under objection (case {open_})", reason="duplicate"
            )
        rulebook = self.rulebooks.in_force()
        due = self.calendar.add_working_days(today, rulebook.deadlines.objection_answer_working_days)
        write = PendingWrite()
        case = open_case(
            write,
            kind=CaseKind.OBJECTION,
            ref=ref,
            event_id=event_id,
            state=CaseState.UNDER_OBJECTION,
            due_on=due,
            detail={"statement": statement, "source": event.source},
            today=today,
        )
        statement_hash = _sm3(statement.encode()).hex()
        queue_step(
            write, case, "objection-filed", "subject", today, due_on=due.isoformat(), statement=statement_hash
        )
        self.gateway.commit(write)
        return self.views.case(case.id)

    def answer(
        self,
        case_id: str,
        source: Source,
        outcome: ObjectionOutcome,
        *,
        note: str = "",
        replacement: Mapping[str, Any] | None = None,
        confirmed_by: str | None = None,
    ) -> CaseWithSteps:
        """The source's answer: ``uphold``, ``correct`` (withdraw, optionally with a replacement event:
        a new compensating event, never an edit) or ``cannot-verify`` (item and objection both stay).

        A correction that changes list status needs ``confirmed_by``: a person, not the engine.
        """
        try:
            outcome = ObjectionOutcome(outcome)
        except ValueError as e:
            raise WorkflowError(
                "outcome must be uphold, correct or cannot-verify", reason="invalid-outcome"
            ) from e
        with self.gateway.reading() as conn:
            case = load_case(conn, case_id)
            if (
                case.kind is not CaseKind.OBJECTION
                or case.state not in OPEN_OBJECTION
                or case.event_id is None
            ):
                raise WorkflowError(f"case {case_id} is not an open objection ({case.state})")
            event = load_event(conn, case.event_id)
        if event.source != source.name:
            raise WorkflowError(f"only {event.source}, which reported the event, answers this objection")
        today = self.today()
        rulebook = self.rulebooks.in_force()
        ref = case.subject_ref
        write = PendingWrite()
        state = outcome.state
        queue_step(write, case, f"objection-{state.value}", source.name, today, note=note or None)
        if outcome is ObjectionOutcome.CORRECT:
            new_events: dict[bytes, list[Event]] = {}
            if replacement is not None:
                fields = {**replacement, "subject": self.subjects.personal_data(ref).identifier}
                fields.setdefault("source_ref", f"{event.source_ref}#correction")
                ev = self.intake.validate(source, fields, rulebook, today)
                with self.gateway.reading() as conn:
                    if conn.execute(select(EVENTS.c.id).where(EVENTS.c.id == ev.id)).first() is not None:
                        raise Conflict(
                            f"source_ref {ev.source_ref!r} is already used; give the correction its own"
                        )
                write.record(event_record(ev, corrects=event.id), EVENTS, ev.row())
                new_events[ref] = [ev.engine_event()]
            queue_effect(write, case, event.id, EffectKind.WITHDRAWN, source.name, today)
            before = self.views.score(ref)
            assessments = self.scoring.rescore(
                write,
                rulebook,
                [ref],
                today,
                ChangeCause("objection", case_id),
                new_events=new_events,
                new_effects={ref: [Effect(event.id, EffectKind.WITHDRAWN, today)]},
            )
            after = assessments[ref]
            moved = (
                sorted(before.black) != sorted({b.list for b in after.lists.black})
                or before.red != after.lists.red_member
            )
            if moved and not confirmed_by:
                raise WorkflowError(
                    "this correction changes the subject's list status; a person must confirm it "
                    "(confirmed_by)",
                    reason="confirmation-required",
                )
        self.gateway.commit(
            write, extra=move_case(case_id, state, answer=outcome.value, note=note, confirmed_by=confirmed_by)
        )
        return self.views.case(case_id)
