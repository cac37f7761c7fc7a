"""Replay: recompute a subject's score history from its ledger records alone, and compare.

Pure: the caller hands over the subject's records in intake order (leaf metadata and content
hashes, as read from the ledger), the rulebook versions named by their ``credit_change`` records
(already checked against the hashes of their ``credit_rulebook`` records), and what the database
claims (the current score row and the event rows). Every ``credit_change`` is recomputed from the
events, workflow outcomes and red-list decisions recorded before it; any difference is reported.
Whether each stored row equals its record is :mod:`credit.integrity`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from credit.engine import Effect, EffectKind, Event, RedListAction, RedListDecision, evaluate
from credit.errors import CreditError
from credit.identifiers import SubjectKind
from credit.rulebook import Rulebook
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import RecordKind, canonical_json


@dataclass(frozen=True)
class LedgerEntry:
    """One of the subject's credit records, as read from the ledger."""

    record_id: str
    position: int  # intake order
    kind: RecordKind
    metadata: Mapping[str, Any]
    content_hash: bytes


@dataclass(frozen=True)
class SubjectReplay:
    """The outcome for one subject."""

    changes: int
    events: int
    last: Mapping[str, Any] | None  # the last recorded score summary
    problems: tuple[str, ...]


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def event_from_document(doc: Mapping[str, Any]) -> Event:
    """The engine event a ``credit_event`` record describes."""
    return Event(
        id=str(doc["id"]),
        type=str(doc["type"]),
        occurred_on=date.fromisoformat(doc["occurred_on"]),
        source=str(doc.get("source", "")),
        quantity=int(doc.get("quantity", 1)),
        ended_on=_day(doc.get("ended_on")),
        refers_to=doc.get("refers_to"),
    )


def replay_subject(
    entries: Sequence[LedgerEntry],
    rulebook_of: Callable[[str], Rulebook],
    *,
    stored_score: Mapping[str, Any] | None,
    stored_events: Mapping[str, Mapping[str, Any]],
) -> SubjectReplay:
    """Recompute every recorded change and compare it, the stored score and the stored events."""
    sm3 = digest_function(HashAlgorithm.SM3)
    problems: list[str] = []
    events: list[Event] = []
    effects: list[Effect] = []
    red: list[RedListDecision] = []
    last: Mapping[str, Any] | None = None
    changes = 0
    kind = SubjectKind.PERSON
    for entry in sorted(entries, key=lambda e: e.position):
        doc = entry.metadata
        if sm3(canonical_json(dict(doc))) != entry.content_hash:
            problems.append(f"record {entry.record_id}: content hash does not match its metadata")
            continue
        if entry.kind is RecordKind.CREDIT_EVENT:
            event = event_from_document(doc)
            events.append(event)
            kind = SubjectKind(doc.get("subject_kind", kind.value))
            if event.id not in stored_events:
                problems.append(
                    f"event {event.id}: in the ledger (record {entry.record_id}) but not in the database"
                )
        elif entry.kind is RecordKind.CREDIT_WORKFLOW:
            effect = doc.get("effect")
            if effect and doc.get("event"):
                effects.append(
                    Effect(
                        str(doc["event"]),
                        EffectKind(effect["kind"]),
                        date.fromisoformat(effect["effective_on"]),
                    )
                )
            decision = doc.get("red")
            if decision:
                red.append(
                    RedListDecision(
                        RedListAction(decision["action"]), date.fromisoformat(decision["effective_on"])
                    )
                )
        elif entry.kind is RecordKind.CREDIT_CHANGE:
            changes += 1
            try:
                rulebook = rulebook_of(str(doc["rulebook"]))
            except CreditError as e:
                problems.append(f"change {entry.record_id}: {e.message}")
                continue
            if rulebook.canonical_hash().hex() != doc.get("rulebook_hash"):
                problems.append(
                    f"change {entry.record_id}: rulebook {doc['rulebook']} hash differs from the recorded one"
                )
            kind = SubjectKind(doc.get("subject_kind", kind.value))
            as_of = date.fromisoformat(doc["as_of"])
            recomputed = evaluate(
                events, rulebook, as_of, effects=effects, red_list=red, subject=kind
            ).summary()
            if recomputed != doc.get("after"):
                recorded = doc.get("after")
                problems.append(
                    f"change {entry.record_id} ({as_of}): recorded {recorded}, recomputed {recomputed}"
                )
            if doc.get("before") != last:
                problems.append(
                    f"change {entry.record_id}: 'before' {doc.get('before')} is not the previous {last}"
                )
            last = doc.get("after")
    recorded = {e.id for e in events}
    for event_id in stored_events:
        if event_id not in recorded:
            problems.append(f"event {event_id}: in the database but has no ledger record")
    if stored_score is not None and last is not None:
        claimed = {
            "score": stored_score["score"],
            "level": stored_score["level"],
            "black": sorted(stored_score["black"]),
            "red": bool(stored_score["red"]),
        }
        if claimed != last:
            problems.append(f"stored score {claimed} differs from the last recorded change {last}")
    elif stored_score is not None and last is None:
        problems.append("a score is stored but no change record exists")
    return SubjectReplay(changes, len(events), last, tuple(problems))
