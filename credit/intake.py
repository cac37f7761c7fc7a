"""Intake: events from source systems, validated against the rulebook and recorded.

A source (a court, the tax bureau, …) reports events about subjects; each is checked against the
rulebook in force (:func:`validate_event`: forbidden and consent-only fields, event type, source
role, subject kind, dates, quantity, references) into a :class:`ValidatedEvent`, recorded as a
``credit_event`` ledger record with its row, and the subject is rescored in the same transaction.
Intake is idempotent by source reference (:func:`event_id_of`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from credit.access import check_text
from credit.engine import Event
from credit.errors import Conflict, CreditError, ForbiddenField, InvalidEvent, StaleWrite
from credit.identifiers import SubjectKind
from credit.models import ChangeCause, EventOutcome, SubjectReference
from credit.rulebook import Rulebook
from credit.rulebooks_in_force import RulebooksInForce
from credit.scoring import Scoring
from credit.store import EVENTS, SUBJECTS
from credit.subjects import Subjects
from credit.unit_of_work import LedgerGateway, PendingWrite, credit_record
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import RecordKind
from ledger.log import Submission

_EVENT_ID_DOMAIN = b"trustledger/credit-event/v1\x00"
RETRIES = 5  # attempts of a write whose subjects' scores keep changing concurrently
_EVENT_FIELDS = frozenset(
    {
        "type",
        "subject",
        "subject_kind",
        "name",
        "occurred_on",
        "ended_on",
        "quantity",
        "source_ref",
        "evidence_record_id",
        "refers_to",
    }
)
_sm3 = digest_function(HashAlgorithm.SM3)
Resolve = Callable[[str, SubjectKind | None], SubjectReference]
"""Turns an identifier (and optionally its kind) into the subject's reference, kind and number."""


def event_id_of(source: str, source_ref: str) -> str:
    """The stable id of a source's event: idempotency by source reference across retries."""
    return _sm3(_EVENT_ID_DOMAIN + source.encode() + b"\x00" + source_ref.encode())[:20].hex()


@dataclass(frozen=True)
class Source:
    """A source system: its client name and the role the rulebook knows it by (court, tax, …)."""

    name: str
    role: str


@dataclass(frozen=True)
class ValidatedEvent:
    """An event the rulebook in force accepts, with its subject resolved (:func:`validate_event`)."""

    id: str
    subject_ref: bytes
    kind: SubjectKind
    identifier: str  # the subject's canonical identifier (sealed in its subject row, never recorded)
    name: str | None  # the subject's name, likewise
    type: str
    occurred_on: date
    ended_on: date | None
    quantity: int
    source: str
    source_ref: str
    refers_to: str | None  # the event id of the listing this event ends
    evidence_record_id: str | None

    def document(self, *, corrects: str | None = None) -> dict[str, object]:
        """The metadata of its ``credit_event`` record (no personal data); ``corrects``: the event
        a correction replaces."""
        document: dict[str, object] = {
            "v": 1,
            "id": self.id,
            "type": self.type,
            "subject_kind": self.kind.value,
            "occurred_on": self.occurred_on.isoformat(),
            "ended_on": self.ended_on.isoformat() if self.ended_on else None,
            "quantity": self.quantity,
            "source": self.source,
            "source_ref": self.source_ref,
            "refers_to": self.refers_to,
            "evidence": self.evidence_record_id,
        }
        return document if corrects is None else document | {"corrects": corrects}

    def row(self) -> dict[str, object]:
        """Its ``credit_event`` row (the record id is filled in on commit)."""
        return {
            "id": self.id,
            "subject_ref": self.subject_ref,
            "type": self.type,
            "occurred_on": self.occurred_on,
            "ended_on": self.ended_on,
            "quantity": self.quantity,
            "source": self.source,
            "source_ref": self.source_ref,
            "refers_to": self.refers_to,
            "evidence_record_id": self.evidence_record_id,
            "recorded_at_us": time.time_ns() // 1000,
        }

    def engine_event(self) -> Event:
        """The engine's view of it."""
        return Event(
            self.id,
            self.type,
            self.occurred_on,
            self.source,
            self.quantity,
            self.ended_on,
            self.refers_to,
        )

    def same_facts(self, row: Row[Any]) -> bool:
        """Whether a stored ``credit_event`` row states the same event."""
        stored = (
            row.type,
            row.occurred_on,
            row.ended_on,
            row.quantity,
            bytes(row.subject_ref),
            row.refers_to,
        )
        return stored == (
            self.type,
            self.occurred_on,
            self.ended_on,
            self.quantity,
            self.subject_ref,
            self.refers_to,
        )


def validate_event(
    source: Source, raw: Mapping[str, Any], rulebook: Rulebook, today: date, resolve: Resolve
) -> ValidatedEvent:
    """Check one event against the rulebook; the validated event or a named error."""
    names = set(raw)
    forbidden = sorted(names & set(rulebook.intake.forbidden_fields))
    if forbidden:
        raise ForbiddenField(
            f"field(s) {', '.join(forbidden)} may not be collected (征信业管理条例 art. 14)",
            reason="forbidden-field",
        )
    consent = sorted(names & set(rulebook.intake.consent_fields))
    if consent:
        raise ForbiddenField(
            f"field(s) {', '.join(consent)} need the subject's explicit consent "
            "(征信业管理条例 art. 14); this intake does not take them",
            reason="consent-required",
        )
    unknown = sorted(names - _EVENT_FIELDS)
    if unknown:
        raise InvalidEvent(f"unknown field(s): {', '.join(unknown)}", reason="unknown-field")
    type_ = raw.get("type")
    et = rulebook.event_types.get(type_) if isinstance(type_, str) else None
    if et is None or not isinstance(type_, str):
        raise InvalidEvent(
            f"unknown event type {type_!r} in rulebook {rulebook.version}", reason="unknown-type"
        )
    if source.role not in et.sources:
        raise InvalidEvent(
            f"a {source.role} source may not report {type_} (sources: {', '.join(et.sources)})",
            reason="source-not-allowed",
        )
    kind_text = raw.get("subject_kind")
    if kind_text is not None and kind_text not in ("person", "organization"):
        raise InvalidEvent("subject_kind must be person or organization", reason="subject-kind")
    ref, kind, number = resolve(str(raw.get("subject", "")), SubjectKind(kind_text) if kind_text else None)
    if kind not in et.subjects:
        raise InvalidEvent(f"{type_} does not apply to a {kind.value}", reason="subject-kind")
    occurred = _date(raw.get("occurred_on"), "occurred_on")
    ended = _date(raw["ended_on"], "ended_on") if raw.get("ended_on") is not None else None
    if occurred > today or (ended is not None and ended > today):
        raise InvalidEvent("occurred_on and ended_on may not lie in the future", reason="future-date")
    if ended is not None and ended < occurred:
        raise InvalidEvent("ended_on is before occurred_on", reason="invalid-date")
    quantity = raw.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= et.max_quantity:
        raise InvalidEvent(
            f"quantity must be an integer from 1 to {et.max_quantity}", reason="invalid-quantity"
        )
    source_ref = raw.get("source_ref")
    if not isinstance(source_ref, str) or not source_ref.strip():
        raise InvalidEvent("source_ref (the source document's reference) is required", reason="source-ref")
    source_ref = _bounded(source_ref, "source_ref", 200, "source-ref")
    refers_to = raw.get("refers_to")
    if et.ends_listing and not refers_to:
        raise InvalidEvent(
            f"{type_} needs refers_to: the source_ref of the listing it ends", reason="refers-to"
        )
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidEvent("name must be text", reason="invalid-name")
    name = _bounded(name, "name", 64, "invalid-name") if name and name.strip() else None
    if refers_to is not None and not isinstance(refers_to, str):
        raise InvalidEvent("refers_to must be text (a source_ref)", reason="refers-to")
    evidence = raw.get("evidence_record_id")
    if evidence is not None and not isinstance(evidence, str):
        raise InvalidEvent("evidence_record_id must be a record id", reason="evidence-record")
    return ValidatedEvent(
        id=event_id_of(source.name, source_ref),
        subject_ref=ref,
        kind=kind,
        identifier=number,
        name=name,
        type=type_,
        occurred_on=occurred,
        ended_on=ended,
        quantity=quantity,
        source=source.name,
        source_ref=source_ref,
        refers_to=event_id_of(source.name, refers_to) if refers_to else None,
        evidence_record_id=evidence,
    )


def event_record(event: ValidatedEvent, *, corrects: str | None = None) -> Submission:
    """The ``credit_event`` record of ``event`` (idempotent by the event's id)."""
    document = event.document(corrects=corrects)
    return credit_record(RecordKind.CREDIT_EVENT, document, event.subject_ref, f"credit-event:{event.id}")


class Intake:
    """Events from sources, recorded and scored (see the module docstring)."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        subjects: Subjects,
        scoring: Scoring,
        *,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.subjects = subjects
        self.scoring = scoring
        self.today = today

    def validate(
        self, source: Source, raw: Mapping[str, Any], rulebook: Rulebook, today: date
    ) -> ValidatedEvent:
        """:func:`validate_event` with this deployment's subject references."""
        return validate_event(source, raw, rulebook, today, self.subjects.reference)

    def submit(self, source: Source, items: Sequence[Mapping[str, Any]]) -> list[EventOutcome]:
        """Accept a batch of events from one source, all or none; rescore each subject at once.

        Idempotent by source reference: a repeat with the same content returns the first event
        (``duplicate``); with other content it is a :class:`~credit.errors.Conflict`.
        """
        today = self.today()
        rulebook = self.rulebooks.in_force()
        validated: dict[str, ValidatedEvent] = {}
        order: list[str] = []
        for position, raw in enumerate(items):
            try:
                ev = self.validate(source, raw, rulebook, today)
            except CreditError as e:
                e.args = (f"event {position}: {e.message}",)
                raise
            earlier = validated.get(ev.id)
            if earlier is not None and earlier.document() != ev.document():
                raise Conflict(f"event {position}: source_ref {ev.source_ref!r} repeated with other content")
            validated[ev.id] = ev
            order.append(ev.id)
        for _attempt in range(RETRIES):
            try:
                return self._store(rulebook, validated, order, today)
            except StaleWrite:
                continue
        raise Conflict("the subjects' scores kept changing concurrently; retry", reason="busy")

    def _store(
        self, rulebook: Rulebook, validated: dict[str, ValidatedEvent], order: list[str], today: date
    ) -> list[EventOutcome]:
        with self.gateway.reading() as conn:
            ids = list(validated)
            existing = {
                r.id: r
                for start in range(0, len(ids), 500)
                for r in conn.execute(select(EVENTS).where(EVENTS.c.id.in_(ids[start : start + 500])))
            }
            refs = sorted({ev.subject_ref for ev in validated.values()})
            known = {
                bytes(r[0])
                for start in range(0, len(refs), 500)
                for r in conn.execute(
                    select(SUBJECTS.c.ref).where(SUBJECTS.c.ref.in_(refs[start : start + 500]))
                )
            }
        for event_id, row in existing.items():
            ev = validated[event_id]
            if not ev.same_facts(row):
                raise Conflict(f"source_ref {ev.source_ref!r} was already used with other content")
        self._check_listing_exits(rulebook, validated)
        write = PendingWrite()
        new_events: dict[bytes, list[Event]] = {}
        for event_id, ev in validated.items():
            if event_id in existing:
                continue
            ref = ev.subject_ref
            if ref not in known:
                write.row(SUBJECTS, self.subjects.new_row(ref, ev.kind, ev.identifier, ev.name))
                known.add(ref)
            write.record(event_record(ev), EVENTS, ev.row())
            new_events.setdefault(ref, []).append(ev.engine_event())
        kinds = {ev.subject_ref: ev.kind for ev in validated.values()}
        assessments = self.scoring.rescore(
            write, rulebook, list(new_events), today, ChangeCause("event"), new_events=new_events, kinds=kinds
        )
        accepted = self.gateway.commit(write, retryable=True) if write.submissions else []
        record_of = {
            s.metadata["id"]: a.id
            for s, a in zip(write.submissions, accepted, strict=True)
            if s.kind is RecordKind.CREDIT_EVENT and s.metadata
        }
        outcomes = []
        for event_id in dict.fromkeys(order):
            ev = validated[event_id]
            a = assessments.get(ev.subject_ref)
            outcomes.append(
                EventOutcome(
                    event_id,
                    existing[event_id].record_id if event_id in existing else record_of[event_id],
                    ev.subject_ref,
                    event_id in existing,
                    a.score if a else None,
                    a.level if a else None,
                )
            )
        return outcomes

    def _check_listing_exits(self, rulebook: Rulebook, validated: Mapping[str, ValidatedEvent]) -> None:
        """A listing exit must name a black-list entry of the same subject (stored or in the batch)."""
        exits = [ev for ev in validated.values() if rulebook.event_types[ev.type].ends_listing]
        if not exits:
            return
        targets = sorted({ev.refers_to for ev in exits if ev.refers_to is not None})
        with self.gateway.reading() as conn:
            stored = {
                r.id: (r.type, bytes(r.subject_ref))
                for r in conn.execute(
                    select(EVENTS.c.id, EVENTS.c.type, EVENTS.c.subject_ref).where(EVENTS.c.id.in_(targets))
                )
            }
        stored |= {i: (ev.type, ev.subject_ref) for i, ev in validated.items()}
        for ev in exits:
            target = stored.get(ev.refers_to) if ev.refers_to is not None else None
            if (
                target is None
                or target[1] != ev.subject_ref
                or rulebook.event_types.get(target[0]) is None
                or rulebook.event_types[target[0]].source_list is None
            ):
                raise InvalidEvent(
                    f"{ev.type}: refers_to names no listing of this subject from {ev.source}",
                    reason="refers-to",
                )


def _date(value: Any, name: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidEvent(f"{name} must be a date (YYYY-MM-DD)", reason="invalid-date")


def _bounded(value: str, name: str, max_length: int, reason: str) -> str:
    """Bounded visible text (:func:`credit.access.check_text`) as an event field, or InvalidEvent."""
    try:
        check_text(value, name=name, max_length=max_length)
    except CreditError as e:
        raise InvalidEvent(e.message, reason=reason) from e
    return value  # unchanged: a source_ref is an idempotency key
