"""The read side: a subject's stored score, history, events and cases, and an assessment explained.

Nothing here writes. The history and the events' facts are read from their ledger records, not
from the rows (:mod:`credit.served` refuses rows that differ from their records); the current
score and the cases' states are read from their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select

from credit.cases import load_case
from credit.engine import Assessment, EffectKind
from credit.errors import NotFoundError, UnknownSubject
from credit.models import (
    Case,
    CaseKind,
    CaseOfEvent,
    CaseState,
    CaseStep,
    CaseWithSteps,
    EventEffect,
    EventView,
    ExplainedLists,
    ExplainedReason,
    ExplainedScore,
    HistoryEntry,
    NamedListing,
    StoredScore,
)
from credit.rulebook import Rulebook
from credit.served import served_history, served_subject
from credit.store import CASE_STEPS, CASES, EVENTS, SCORES
from credit.unit_of_work import LedgerGateway


def explain(assessment: Assessment, rulebook: Rulebook) -> ExplainedScore:
    """An assessment with the names, exit rules and labels its rulebook gives its lists and reasons
    (``rulebook`` is the version the assessment was computed under)."""
    listings = tuple(
        NamedListing(
            list=b.list,
            name=rulebook.black_lists[b.list].name,
            event_id=b.event_id,
            entered_on=b.entered_on,
            exit_due=b.exit_due,
            exit_rule=rulebook.black_lists[b.list].exit_rule,
        )
        for b in assessment.lists.black
    )
    reasons = tuple(
        ExplainedReason(
            code=r.code,
            label=rulebook.event_types[r.code].label,
            event_id=r.event_id,
            occurred_on=r.occurred_on,
            source=r.source,
            points=r.points,
            expires_on=r.expires_on,
            repair=r.repair,
        )
        for r in assessment.reasons
    )
    lists = ExplainedLists(listings, assessment.lists.red_member, assessment.lists.red_eligible)
    return ExplainedScore(
        as_of=assessment.as_of,
        rulebook_version=assessment.rulebook_version,
        score=assessment.score,
        level=assessment.level,
        breakdown=dict(assessment.breakdown),
        lists=lists,
        reasons=reasons,
        next_change_on=assessment.next_change_on,
    )


class Views:
    """Reading a subject's credit data (see the module docstring)."""

    def __init__(self, gateway: LedgerGateway) -> None:
        self.gateway = gateway

    def score(self, ref: bytes) -> StoredScore:
        """The stored current score of a subject."""
        with self.gateway.reading() as conn:
            row = conn.execute(select(SCORES).where(SCORES.c.subject_ref == ref)).first()
        if row is None:
            raise UnknownSubject("no credit data for this subject", reason="unknown-subject")
        return StoredScore.from_row(row)

    def history(self, ref: bytes) -> list[HistoryEntry]:
        """Every score change of a subject, oldest first, with its record id — read from the
        ``credit_change`` records themselves (see :func:`credit.served.served_history`)."""
        with self.gateway.reading() as conn:
            changes = served_history(conn, self.gateway.ledger, ref)
        return [HistoryEntry.from_document(doc, record_id) for record_id, doc in changes]

    def events(self, ref: bytes) -> list[EventView]:
        """A subject's events with their effects and cases; the events' facts and the effects are
        read from their ledger records, the cases' current states from the database."""
        with self.gateway.reading() as conn:
            served = served_subject(conn, self.gateway.ledger, ref)
            cases = conn.execute(select(CASES).where(CASES.c.subject_ref == ref)).all()
        effects: dict[str, list[EventEffect]] = {}
        for _row, doc in served.effects:
            effect = doc["effect"]
            effects.setdefault(doc["event"], []).append(
                EventEffect(EffectKind(effect["kind"]), date.fromisoformat(effect["effective_on"]))
            )
        return [
            EventView(
                id=row.id,
                type=doc["type"],
                occurred_on=date.fromisoformat(doc["occurred_on"]),
                ended_on=date.fromisoformat(doc["ended_on"]) if doc["ended_on"] is not None else None,
                quantity=doc["quantity"],
                source=doc["source"],
                source_ref=doc["source_ref"],
                record_id=row.record_id,
                effects=tuple(effects.get(row.id, ())),
                cases=tuple(
                    CaseOfEvent(c.id, CaseKind(c.kind), CaseState(c.state))
                    for c in cases
                    if c.event_id == row.id
                ),
            )
            for row, doc in served.events
        ]

    def event_record(self, ref: bytes, event_id: str) -> str:
        """The ledger record id of one of the subject's events."""
        with self.gateway.reading() as conn:
            row = conn.execute(
                select(EVENTS.c.record_id).where(EVENTS.c.id == event_id, EVENTS.c.subject_ref == ref)
            ).first()
        if row is None:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        return str(row[0])

    def case(self, case_id: str) -> CaseWithSteps:
        """A case with its steps."""
        with self.gateway.reading() as conn:
            case = load_case(conn, case_id)
            steps = conn.execute(
                select(CASE_STEPS).where(CASE_STEPS.c.case_id == case_id).order_by(CASE_STEPS.c.seq)
            ).all()
        return CaseWithSteps.of(case, (CaseStep(s.step, s.actor, s.on, s.record_id) for s in steps))

    def cases(
        self,
        *,
        ref: bytes | None = None,
        kind: CaseKind | None = None,
        states: Sequence[CaseState] | None = None,
        source: str | None = None,
        limit: int = 200,
    ) -> list[Case]:
        """Cases filtered by subject, kind, state and (for objections and repairs) source."""
        stmt = select(CASES).order_by(CASES.c.opened_on, CASES.c.id).limit(limit)
        if ref is not None:
            stmt = stmt.where(CASES.c.subject_ref == ref)
        if kind is not None:
            stmt = stmt.where(CASES.c.kind == kind.value)
        if states:
            stmt = stmt.where(CASES.c.state.in_([s.value for s in states]))
        with self.gateway.reading() as conn:
            rows = conn.execute(stmt).all()
        found = [Case.from_row(r) for r in rows]
        return [c for c in found if source is None or c.detail.get("source") == source]
