"""The read side: a subject's stored score, history, events and cases.

Nothing here writes. The history and the events' facts are read from their ledger records, not
from the rows (:mod:`credit.integrity` refuses rows that differ from their records); the current
score and the cases' states are read from their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from credit.cases import load_case
from credit.errors import NotFoundError, UnknownSubject
from credit.integrity import served_history, served_subject
from credit.store import CASE_STEPS, CASES, EVENTS, SCORES
from credit.unit_of_work import LedgerGateway


class Views:
    """Reading a subject's credit data (see the module docstring)."""

    def __init__(self, gateway: LedgerGateway) -> None:
        self.gateway = gateway

    def score(self, ref: bytes) -> dict[str, Any]:
        """The stored current score of a subject."""
        with self.gateway.reading() as conn:
            row = conn.execute(select(SCORES).where(SCORES.c.subject_ref == ref)).first()
        if row is None:
            raise UnknownSubject("no credit data for this subject", reason="unknown-subject")
        return dict(row._mapping)

    def history(self, ref: bytes) -> list[dict[str, Any]]:
        """Every score change of a subject, oldest first, with its record id — read from the
        ``credit_change`` records themselves (see :func:`credit.integrity.served_history`)."""
        with self.gateway.reading() as conn:
            return served_history(conn, self.gateway.ledger, ref)

    def events(self, ref: bytes) -> list[dict[str, Any]]:
        """A subject's events with their effects and open cases; the events' facts and the effects
        are read from their ledger records, the cases' current states from the database."""
        with self.gateway.reading() as conn:
            served = served_subject(conn, self.gateway.ledger, ref)
            cases = conn.execute(select(CASES).where(CASES.c.subject_ref == ref)).all()
        out = []
        for row, doc in served.events:
            out.append(
                {
                    "id": row.id,
                    "type": doc["type"],
                    "occurred_on": doc["occurred_on"],
                    "ended_on": doc["ended_on"],
                    "quantity": doc["quantity"],
                    "source": doc["source"],
                    "source_ref": doc["source_ref"],
                    "record_id": row.record_id,
                    "effects": [
                        {"kind": effect["effect"]["kind"], "effective_on": effect["effect"]["effective_on"]}
                        for _e, effect in served.effects
                        if effect["event"] == row.id
                    ],
                    "cases": [
                        {"id": c.id, "kind": c.kind, "state": c.state} for c in cases if c.event_id == row.id
                    ],
                }
            )
        return out

    def event_record(self, ref: bytes, event_id: str) -> str:
        """The ledger record id of one of the subject's events."""
        with self.gateway.reading() as conn:
            row = conn.execute(
                select(EVENTS.c.record_id).where(EVENTS.c.id == event_id, EVENTS.c.subject_ref == ref)
            ).first()
        if row is None:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        return str(row[0])

    def case(self, case_id: str) -> dict[str, Any]:
        """A case with its steps."""
        with self.gateway.reading() as conn:
            row = load_case(conn, case_id)
            steps = conn.execute(
                select(CASE_STEPS).where(CASE_STEPS.c.case_id == case_id).order_by(CASE_STEPS.c.seq)
            ).all()
        return _case_view(row) | {
            "steps": [
                {"step": s.step, "actor": s.actor, "on": s.on.isoformat(), "record_id": s.record_id}
                for s in steps
            ]
        }

    def cases(
        self,
        *,
        ref: bytes | None = None,
        kind: str | None = None,
        states: Sequence[str] | None = None,
        source: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Cases filtered by subject, kind, state and (for objections and repairs) source."""
        stmt = select(CASES).order_by(CASES.c.opened_on, CASES.c.id).limit(limit)
        if ref is not None:
            stmt = stmt.where(CASES.c.subject_ref == ref)
        if kind is not None:
            stmt = stmt.where(CASES.c.kind == kind)
        if states:
            stmt = stmt.where(CASES.c.state.in_(list(states)))
        with self.gateway.reading() as conn:
            rows = conn.execute(stmt).all()
        views = [_case_view(r) for r in rows]
        return [v for v in views if source is None or v["detail"].get("source") == source]


def _case_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "subject_ref": bytes(row.subject_ref).hex(),
        "event_id": row.event_id,
        "state": row.state,
        "opened_on": row.opened_on.isoformat(),
        "due_on": row.due_on.isoformat() if row.due_on else None,
        "detail": dict(row.detail),
    }
