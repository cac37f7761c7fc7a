"""A subject's credit data served from its ledger records, never from the rows alone.

Every credit row is written in the same transaction as its ledger record (see :mod:`credit.store`),
so the record — hashed into the log, signed in checkpoints, anchored — is the authority, and the
row a copy that anyone with write access to the database could edit or delete. A subject's
history, events and scoring inputs are therefore read *from the records*: the rows only say which
records belong to the subject. A row that names a record the ledger lacks, or a record of another
kind or subject, and a history with a gap (the newest change missing, or a ``before`` that is not
the previous ``after``) is refused with :class:`~credit.errors.IntegrityFailure`, never served.
The streaming comparison of every row with its record is :mod:`credit.integrity`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from credit.engine import Effect, EffectKind, Event, RedListAction, RedListDecision
from credit.errors import IntegrityFailure
from credit.replay import event_from_document
from credit.store import CHANGES, EFFECTS, EVENTS, RED_DECISIONS, SCORES
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import LeafData, RecordKind
from ledger.errors import NotFound
from ledger.log import Ledger

_logger = logging.getLogger(__name__)
_sm3 = digest_function(HashAlgorithm.SM3)
_DOCUMENT_KINDS = frozenset(
    {RecordKind.CREDIT_EVENT, RecordKind.CREDIT_CHANGE, RecordKind.CREDIT_WORKFLOW, RecordKind.ACCESS}
)
Leaves = Mapping[str, tuple[int, LeafData]]
"""Records by id: each with its position in the log and its leaf."""
Document = Mapping[str, Any]
"""A credit record's metadata: JSON, as the ledger returns it."""


def where_is(ledger: Ledger, record_id: str) -> str:
    """Where a record is in the log: its log index, "pending", or "not in the ledger"."""
    try:
        info = ledger.record(record_id)
    except NotFound:
        return "not in the ledger"
    return "pending" if info.log_index is None else f"log index {info.log_index}"


def leaf_problems(leaf: LeafData, kind: RecordKind, subject: bytes | None) -> list[str]:
    """What is wrong with ``leaf`` as the record of a row of ``kind`` about ``subject``."""
    if leaf.kind is not kind:
        return [f"the row is a {kind.value} row but its record is a {leaf.kind.value} record"]
    problems = []
    if leaf.subject_ref != subject:
        problems.append("the record names another subject than the row")
    if kind in _DOCUMENT_KINDS and _sm3(leaf.metadata_json) != leaf.content_hash:
        problems.append("the record's content hash does not match its metadata")
    return problems


@dataclass(frozen=True)
class ServedSubject:
    """A subject's events (with their records' facts), effects and red-list decisions, as recorded."""

    events: list[tuple[Row[Any], Document]]  # (event row, its record's metadata)
    effects: list[tuple[Row[Any], Document]]  # (effect row, its record's metadata)
    red: list[RedListDecision]

    def engine_events(self) -> list[Event]:
        """The engine's events, built from the records."""
        return [event_from_document(doc) for _row, doc in self.events]

    def engine_effects(self) -> list[Effect]:
        """The engine's workflow outcomes, built from the records."""
        return [
            Effect(
                str(doc["event"]),
                EffectKind(doc["effect"]["kind"]),
                date.fromisoformat(doc["effect"]["effective_on"]),
            )
            for _row, doc in self.effects
        ]


def _refuse(ledger: Ledger, record_id: str, what: str) -> IntegrityFailure:
    where = where_is(ledger, record_id)
    _logger.error("credit row differs from its record", extra={"record_id": record_id, "problem": what})
    return IntegrityFailure(
        f"the stored credit data differs from the ledger at record {record_id} ({where}): {what}; "
        "it is not served until an operator restores it (trustledger credit replay --all)"
    )


def _checked(ledger: Ledger, leaves: Leaves, record_id: str, kind: RecordKind, ref: bytes) -> Document:
    """The metadata of a subject's record, or :class:`IntegrityFailure` if it cannot be its record."""
    found = leaves.get(record_id)
    if found is None:
        raise _refuse(ledger, record_id, "the row names a record that is not in the ledger")
    problems = leaf_problems(found[1], kind, ref)
    if problems:
        raise _refuse(ledger, record_id, "; ".join(problems))
    return found[1].metadata


def served_subject(conn: Connection, ledger: Ledger, ref: bytes) -> ServedSubject:
    """A subject's events, effects and red-list decisions as their ledger records state them."""
    events = conn.execute(
        select(EVENTS).where(EVENTS.c.subject_ref == ref).order_by(EVENTS.c.occurred_on, EVENTS.c.id)
    ).all()
    effects = conn.execute(select(EFFECTS).where(EFFECTS.c.subject_ref == ref).order_by(EFFECTS.c.seq)).all()
    reds = conn.execute(
        select(RED_DECISIONS).where(RED_DECISIONS.c.subject_ref == ref).order_by(RED_DECISIONS.c.seq)
    ).all()
    leaves = ledger.records([r.record_id for r in (*events, *effects, *reds)])
    served_events = []
    for row in events:
        doc = _checked(ledger, leaves, row.record_id, RecordKind.CREDIT_EVENT, ref)
        if doc.get("id") != row.id:
            raise _refuse(ledger, row.record_id, f"the record is not the one of event {row.id}")
        served_events.append((row, doc))
    served_effects = []
    for row in effects:
        doc = _checked(ledger, leaves, row.record_id, RecordKind.CREDIT_WORKFLOW, ref)
        if doc.get("event") != row.event_id or not isinstance(doc.get("effect"), dict):
            raise _refuse(ledger, row.record_id, f"the record is not an outcome of event {row.event_id}")
        served_effects.append((row, doc))
    red = []
    for row in reds:
        doc = _checked(ledger, leaves, row.record_id, RecordKind.CREDIT_WORKFLOW, ref)
        decision = doc.get("red")
        if not isinstance(decision, dict):
            raise _refuse(ledger, row.record_id, "the record is not a red-list decision")
        red.append(
            RedListDecision(RedListAction(decision["action"]), date.fromisoformat(decision["effective_on"]))
        )
    return ServedSubject(served_events, served_effects, red)


def served_history(conn: Connection, ledger: Ledger, ref: bytes) -> list[tuple[str, Document]]:
    """A subject's score changes, oldest first: each record id with its ``credit_change`` record's
    document.

    The rows give only the record ids. A missing record, a break in the chain of ``before`` and
    ``after``, or a newest change (named by the score row) absent from the rows is refused.
    """
    ids = [
        r[0]
        for r in conn.execute(
            select(CHANGES.c.record_id).where(CHANGES.c.subject_ref == ref).order_by(CHANGES.c.seq)
        )
    ]
    newest = conn.execute(select(SCORES.c.change_record_id).where(SCORES.c.subject_ref == ref)).scalar()
    leaves = ledger.records(ids)
    documents = [(leaves[i][0] if i in leaves else -1, i) for i in ids]
    history: list[tuple[str, Document]] = []
    previous: Any = None
    for _position, record_id in sorted(documents):
        doc = _checked(ledger, leaves, record_id, RecordKind.CREDIT_CHANGE, ref)
        if doc.get("before") != previous:
            raise _refuse(ledger, record_id, "a score change before this one is missing from the database")
        previous = doc.get("after")
        history.append((record_id, doc))
    if newest is not None and (not history or history[-1][0] != newest):
        raise _refuse(ledger, str(newest), "the subject's newest score change is missing from the database")
    return history
