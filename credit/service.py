"""The credit service: events in, scores, lists, workflows and access records out — all in the ledger.

A thin shell around the pure engine. Every write is one ledger submission whose ``on_stored``
hook writes the credit rows in the same transaction, so a ``credit_event`` record and its row,
a score and its ``credit_change`` record, a workflow step and its ``credit_workflow`` record are
stored together or not at all. Scores use optimistic concurrency (a version per subject), so
two writers never lose each other's update; the loser re-reads and recomputes.

The clock is injected (``today``): jobs and tests travel in time by passing another one.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from credit.access import MAX_NOTE, AccessPolicy, check_text, count_repeat, load_access_policy
from credit.engine import (
    Assessment,
    Effect,
    EffectKind,
    Event,
    RedListAction,
    RedListDecision,
    evaluate,
    repair_route,
)
from credit.errors import (
    CreditError,
    ForbiddenField,
    InvalidEvent,
    NotFoundError,
    UnknownSubject,
    WorkflowError,
)
from credit.identifiers import (
    CreditCode,
    ResidentId,
    SubjectKind,
    parse_credit_code,
    parse_identifier,
    parse_resident_id,
)
from credit.integrity import IntegrityReport, scan, served_history, served_subject
from credit.measures import AppliedMeasure, measures
from credit.rulebook import Rulebook, default_rulebook, rulebook_from_data
from credit.store import (
    ACCESSES,
    CASE_STEPS,
    CASES,
    CHANGES,
    EFFECTS,
    EVENTS,
    RED_DECISIONS,
    RULEBOOKS,
    SCORES,
    SNAPSHOTS,
    SUBJECTS,
    SubjectInputs,
    create_credit_schema,
    event_of,
    iter_subject_refs,
    scores,
)
from credit.vault import new_data_key, open_field, seal_field, unwrap_key, wrap_key
from credit.workdays import WorkingCalendar
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import RecordKind, canonical_metadata
from ledger.core.merkle import MemoryTree, inclusion_proof
from ledger.errors import Conflict
from ledger.log import Accepted, Ledger, SubjectFamily, Submission

_logger = logging.getLogger(__name__)
SUBMITTER = "credit"  # the ledger submitter of every credit record (sources are named inside)
_EVENT_ID_DOMAIN = b"trustledger/credit-event/v1\x00"
_CASE_ID_DOMAIN = b"trustledger/credit-case/v1\x00"
_RETRIES = 5
_OPEN = ("under-objection",)
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


class _Stale(Exception):
    """A subject's score changed between read and write; recompute and retry."""


def _sm3(data: bytes) -> bytes:
    return digest_function(HashAlgorithm.SM3)(data)


def event_id_of(source: str, source_ref: str) -> str:
    """The stable id of a source's event: idempotency by source reference across retries."""
    return _sm3(_EVENT_ID_DOMAIN + source.encode() + b"\x00" + source_ref.encode())[:20].hex()


@dataclass(frozen=True)
class Source:
    """A source system: its client name and the role the rulebook knows it by (court, tax, …)."""

    name: str
    role: str


@dataclass(frozen=True)
class EventOutcome:
    """The answer for one submitted event."""

    event_id: str
    record_id: str
    subject_ref: str
    duplicate: bool
    score: int | None = None
    level: str | None = None


ReplayReport = IntegrityReport  # what a replay found (the name the API and CLI use)


@dataclass
class JobReport:
    """What a run of the daily jobs did."""

    recomputed: int = 0
    changed: int = 0
    reminders: int = 0
    overdue: int = 0
    proposals: int = 0


@dataclass
class _Write:
    """Everything one transaction stores: ledger submissions and the rows that refer to them."""

    subs: list[Submission] = field(default_factory=list)
    rows: list[tuple[Any, dict[str, Any], str | None]] = field(
        default_factory=list
    )  # (table, values, record col)
    score_updates: list[tuple[bytes, int | None, dict[str, Any]]] = field(default_factory=list)

    def add(
        self,
        sub: Submission | None,
        table: Any = None,
        values: dict[str, Any] | None = None,
        column: str = "record_id",
    ) -> None:
        """Queue a record (and a row that gets its record id in ``column``)."""
        position = len(self.subs)
        if sub is not None:
            self.subs.append(sub)
        if table is not None and values is not None:
            self.rows.append((table, {**values, "_position": position if sub is not None else None}, column))


def _canonical(document: dict[str, Any]) -> bytes:
    """RFC 8785 JSON of a credit document, by ``json.dumps`` when that is provably the same.

    Credit documents have ASCII keys, small integers and no floats, for which sorted-key compact
    ``json.dumps`` is byte-identical to JCS (the same fast path ``canonical_json`` takes after
    checking every value); text that JSON cannot encode (lone surrogates) goes the checked way.
    """
    try:
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (UnicodeEncodeError, TypeError, ValueError):
        return canonical_metadata(document)


def _record(
    kind: RecordKind, document: dict[str, Any], subject: bytes | None, key: str | None = None
) -> Submission:
    """A credit record: its metadata is the document, its content hash the document's SM3."""
    encoded = _canonical(document)  # once: the ledger takes it as the leaf's metadata
    return Submission(
        kind=kind,
        content_hash=_sm3(encoded),
        metadata=document,
        metadata_json=encoded,
        subject_ref=subject,
        idempotency_key=key,
    )


class CreditService:
    """Credit operations over one ledger (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        master_key: bytes,
        calendar: WorkingCalendar | None = None,
        today: Callable[[], date] = date.today,
        access_policy: AccessPolicy | None = None,
    ) -> None:
        self.ledger = ledger
        self.access_policy = access_policy or load_access_policy()
        self.engine = ledger.store.engine
        self._master_key = master_key
        self.calendar = calendar or WorkingCalendar()
        self.today = today
        self._rulebooks: dict[str, Rulebook] = {}
        self._hashes: dict[str, str] = {}
        self._active: tuple[str, bytes] | None = None

    # --- set-up and rulebooks -------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the credit tables (idempotent)."""
        create_credit_schema(self.engine)

    def ensure_rulebook(self) -> str:
        """The version in force, activating the shipped default first if none is (recorded like any
        activation; ``trustledger init`` does this, otherwise the first credit operation does)."""
        active = self._active_row()
        if active is None:
            try:
                self.activate_rulebook(default_rulebook(), by="trustledger (default rulebook)")
            except (Conflict, _Stale):
                pass  # another process activated it at the same moment
            active = self._active_row()
        if active is None:
            raise CreditError("no rulebook is active", reason="no-rulebook")
        return active[0]

    def _active_row(self) -> tuple[str, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RULEBOOKS.c.version, RULEBOOKS.c.hash).order_by(RULEBOOKS.c.seq.desc()).limit(1)
            ).first()
        return (row[0], bytes(row[1])) if row else None

    def active_rulebook(self) -> Rulebook:
        """The rulebook in force (the most recently activated version)."""
        active = self._active_row()
        return self.rulebook(active[0] if active is not None else self.ensure_rulebook())

    def rulebook(self, version: str) -> Rulebook:
        """An activated rulebook version, checked against the hash recorded at activation."""
        cached = self._rulebooks.get(version)
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(select(RULEBOOKS).where(RULEBOOKS.c.version == version)).first()
        if row is None:
            raise NotFoundError(f"no activated rulebook version {version!r}", reason="unknown-rulebook")
        rulebook = rulebook_from_data(json.loads(bytes(row.canonical)))
        if rulebook.canonical_hash() != bytes(row.hash):
            raise CreditError(
                f"stored rulebook {version!r} does not match its recorded hash", reason="rulebook-hash"
            )
        self._rulebooks[version] = rulebook
        return rulebook

    def _rulebook_hash(self, rulebook: Rulebook) -> str:
        cached = self._hashes.get(rulebook.version)
        if cached is None:
            cached = self._hashes[rulebook.version] = rulebook.canonical_hash().hex()
        return cached

    def rulebook_versions(self) -> list[dict[str, Any]]:
        """Every activated version: version, hash, activation date and record."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(RULEBOOKS).order_by(RULEBOOKS.c.seq)).all()
        return [
            {
                "version": r.version,
                "hash": bytes(r.hash).hex(),
                "activated_on": r.activated_on.isoformat(),
                "activated_by": r.activated_by,
                "record_id": r.record_id,
            }
            for r in rows
        ]

    def activate_rulebook(self, rulebook: Rulebook, *, by: str, workers: int = 1) -> JobReport:
        """Put ``rulebook`` in force: record its canonical hash, then recompute every subject."""
        with self.engine.connect() as conn:
            exists = conn.execute(
                select(RULEBOOKS.c.hash).where(RULEBOOKS.c.version == rulebook.version)
            ).first()
        if exists is not None:
            raise Conflict(
                f"rulebook version {rulebook.version!r} was already activated", reason="rulebook-version"
            )
        digest = rulebook.canonical_hash()
        document = {
            "v": 1,
            "version": rulebook.version,
            "effective_from": rulebook.effective_from.isoformat(),
            "title": rulebook.title,
            "by": by,
        }
        write = _Write()
        sub = Submission(
            kind=RecordKind.CREDIT_RULEBOOK, content_hash=digest, metadata=document, idempotency_key=None
        )
        row = {
            "version": rulebook.version,
            "hash": digest,
            "canonical": rulebook.canonical_json(),
            "activated_on": self.today(),
            "activated_by": by,
        }
        write.add(sub, RULEBOOKS, row)
        self._commit(write)
        self._rulebooks[rulebook.version] = rulebook
        _logger.info("rulebook activated", extra={"version": rulebook.version, "hash": digest.hex()})
        return self.recompute_all(cause={"kind": "rulebook", "ref": rulebook.version}, workers=workers)

    # --- subjects --------------------------------------------------------------------------------

    def subject_ref(self, identifier: str, kind: SubjectKind | None = None) -> tuple[bytes, SubjectKind, str]:
        """Validate an identifier; its keyed reference, kind and canonical form.

        ``kind`` settles the rare all-digit strings that are both a valid resident ID and a valid
        credit code (about 1 in 1,000); without it those are refused as ambiguous.
        """
        parsed: ResidentId | CreditCode
        if kind is SubjectKind.PERSON:
            parsed = parse_resident_id(identifier, today=self.today())
        elif kind is SubjectKind.ORGANIZATION:
            parsed = parse_credit_code(identifier)
        else:
            parsed = parse_identifier(identifier, today=self.today())
        number = parsed.number if isinstance(parsed, ResidentId) else parsed.code
        return self.ledger.subject_ref(number, family=SubjectFamily.CREDIT), parsed.kind, number

    def _subject_row(
        self, ref: bytes, kind: SubjectKind, identifier: str, name: str | None
    ) -> dict[str, Any]:
        data_key = new_data_key()
        return {
            "ref": ref,
            "kind": kind.value,
            "wrapped_key": wrap_key(self._master_key, data_key, subject_ref=ref),
            "sealed_identifier": seal_field(data_key, identifier, subject_ref=ref, field="identifier"),
            "sealed_name": seal_field(data_key, name, subject_ref=ref, field="name") if name else None,
            "created_at_us": time.time_ns() // 1000,
        }

    def subject_kind(self, ref: bytes) -> SubjectKind:
        """A known subject's kind."""
        with self.engine.connect() as conn:
            kind = conn.execute(select(SUBJECTS.c.kind).where(SUBJECTS.c.ref == ref)).scalar_one_or_none()
        if kind is None:
            raise UnknownSubject("no credit data for this subject", reason="unknown-subject")
        return SubjectKind(kind)

    def personal_data(self, ref: bytes) -> dict[str, str | None]:
        """The subject's identifier and name, decrypted (for the subject and authorised officials)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(SUBJECTS).where(SUBJECTS.c.ref == ref)).first()
        if row is None or row.wrapped_key is None:
            raise UnknownSubject("no personal data for this subject (unknown or erased)", reason="erased")
        key = unwrap_key(self._master_key, bytes(row.wrapped_key), subject_ref=ref)
        name = (
            open_field(key, bytes(row.sealed_name), subject_ref=ref, field="name")
            if row.sealed_name
            else None
        )
        return {
            "identifier": open_field(key, bytes(row.sealed_identifier), subject_ref=ref, field="identifier"),
            "name": name,
        }

    def erase_personal_data(self, ref: bytes, *, by: str) -> None:
        """Crypto-shred: delete the subject's data key and ciphertexts (PIPL arts. 46-47).

        Leaves hold only the keyed reference, so every receipt and proof stays valid; the erasure
        itself is a ``credit_workflow`` record.
        """
        self.subject_kind(ref)
        write = _Write()
        write.add(
            _record(RecordKind.CREDIT_WORKFLOW, {"v": 1, "step": "personal-data-erased", "by": by}, ref)
        )

        def erase(conn: Connection) -> None:
            conn.execute(
                update(SUBJECTS)
                .where(SUBJECTS.c.ref == ref)
                .values(
                    wrapped_key=None,
                    sealed_identifier=None,
                    sealed_name=None,
                    erased_at_us=time.time_ns() // 1000,
                )
            )

        self._commit(write, extra=erase)

    # --- events ----------------------------------------------------------------------------------

    def _validate(
        self, source: Source, raw: Mapping[str, Any], rulebook: Rulebook, today: date
    ) -> dict[str, Any]:
        """Check one event against the rulebook; the normalized fields or a named error."""
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
        if et is None:
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
        ref, kind, number = self.subject_ref(
            str(raw.get("subject", "")), SubjectKind(kind_text) if kind_text else None
        )
        if kind not in et.subjects:
            raise InvalidEvent(f"{type_} does not apply to a {kind.value}", reason="subject-kind")
        occurred = _date(raw.get("occurred_on"), "occurred_on")
        ended = _date(raw["ended_on"], "ended_on") if raw.get("ended_on") is not None else None
        if occurred > today or (ended is not None and ended > today):
            raise InvalidEvent("occurred_on and ended_on may not lie in the future", reason="future-date")
        if ended is not None and ended < occurred:
            raise InvalidEvent("ended_on is before occurred_on", reason="invalid-date")
        quantity = raw.get("quantity", 1)
        if (
            not isinstance(quantity, int)
            or isinstance(quantity, bool)
            or not 1 <= quantity <= et.max_quantity
        ):
            raise InvalidEvent(
                f"quantity must be an integer from 1 to {et.max_quantity}", reason="invalid-quantity"
            )
        source_ref = raw.get("source_ref")
        if not isinstance(source_ref, str) or not source_ref.strip():
            raise InvalidEvent(
                "source_ref (the source document's reference) is required", reason="source-ref"
            )
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
        return {
            "id": event_id_of(source.name, source_ref),
            "subject_ref": ref,
            "kind": kind,
            "identifier": number,
            "name": name,
            "type": type_,
            "occurred_on": occurred,
            "ended_on": ended,
            "quantity": quantity,
            "source": source.name,
            "source_ref": source_ref,
            "refers_to": event_id_of(source.name, refers_to) if refers_to else None,
            "evidence_record_id": raw.get("evidence_record_id"),
        }

    @staticmethod
    def _event_document(ev: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "v": 1,
            "id": ev["id"],
            "type": ev["type"],
            "subject_kind": ev["kind"].value,
            "occurred_on": ev["occurred_on"].isoformat(),
            "ended_on": ev["ended_on"].isoformat() if ev["ended_on"] else None,
            "quantity": ev["quantity"],
            "source": ev["source"],
            "source_ref": ev["source_ref"],
            "refers_to": ev["refers_to"],
            "evidence": ev["evidence_record_id"],
        }

    def submit_events(self, source: Source, items: Sequence[Mapping[str, Any]]) -> list[EventOutcome]:
        """Accept a batch of events from one source, all or none; rescore each subject at once.

        Idempotent by source reference: a repeat with the same content returns the first event
        (``duplicate``); with other content it is a :class:`~ledger.errors.Conflict`.
        """
        today = self.today()
        rulebook = self.active_rulebook()
        validated: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        for position, raw in enumerate(items):
            try:
                ev = self._validate(source, raw, rulebook, today)
            except CreditError as e:
                e.args = (f"event {position}: {e.message}",)
                raise
            earlier = validated.get(ev["id"])
            if earlier is not None and self._event_document(earlier) != self._event_document(ev):
                raise Conflict(
                    f"event {position}: source_ref {ev['source_ref']!r} repeated with other content"
                )
            validated[ev["id"]] = ev
            order.append(ev["id"])
        for _attempt in range(_RETRIES):
            try:
                return self._store_events(rulebook, validated, order, today)
            except _Stale:
                continue
        raise Conflict("the subjects' scores kept changing concurrently; retry", reason="busy")

    def _store_events(
        self, rulebook: Rulebook, validated: dict[str, dict[str, Any]], order: list[str], today: date
    ) -> list[EventOutcome]:
        with self.engine.connect() as conn:
            ids = list(validated)
            existing = {
                r.id: r
                for start in range(0, len(ids), 500)
                for r in conn.execute(select(EVENTS).where(EVENTS.c.id.in_(ids[start : start + 500])))
            }
            refs = sorted({ev["subject_ref"] for ev in validated.values()})
            known = {
                bytes(r[0])
                for start in range(0, len(refs), 500)
                for r in conn.execute(
                    select(SUBJECTS.c.ref).where(SUBJECTS.c.ref.in_(refs[start : start + 500]))
                )
            }
        for event_id, row in existing.items():
            ev = validated[event_id]
            stored = (
                row.type,
                row.occurred_on,
                row.ended_on,
                row.quantity,
                bytes(row.subject_ref),
                row.refers_to,
            )
            same = stored == tuple(
                ev[k] for k in ("type", "occurred_on", "ended_on", "quantity", "subject_ref", "refers_to")
            )
            if not same:
                raise Conflict(f"source_ref {ev['source_ref']!r} was already used with other content")
        self._check_listing_exits(rulebook, validated)
        write = _Write()
        new_events: dict[bytes, list[Event]] = {}
        for event_id, ev in validated.items():
            if event_id in existing:
                continue
            ref = ev["subject_ref"]
            if ref not in known:
                write.rows.append(
                    (SUBJECTS, self._subject_row(ref, ev["kind"], ev["identifier"], ev["name"]), None)
                )
                known.add(ref)
            document = self._event_document(ev)
            write.add(
                _record(RecordKind.CREDIT_EVENT, document, ref, f"credit-event:{event_id}"),
                EVENTS,
                _event_row(ev),
            )
            new_events.setdefault(ref, []).append(
                Event(
                    event_id,
                    ev["type"],
                    ev["occurred_on"],
                    ev["source"],
                    ev["quantity"],
                    ev["ended_on"],
                    ev["refers_to"],
                )
            )
        kinds = {ev["subject_ref"]: ev["kind"] for ev in validated.values()}
        assessments = self._rescore(
            write, rulebook, list(new_events), today, {"kind": "event"}, new_events=new_events, kinds=kinds
        )
        accepted = self._commit(write, retryable=True) if write.subs else []
        record_of = {
            s.metadata["id"]: a.id
            for s, a in zip(write.subs, accepted, strict=True)
            if s.kind is RecordKind.CREDIT_EVENT and s.metadata
        }
        outcomes = []
        for event_id in dict.fromkeys(order):
            ev = validated[event_id]
            a = assessments.get(ev["subject_ref"])
            outcomes.append(
                EventOutcome(
                    event_id,
                    existing[event_id].record_id if event_id in existing else record_of[event_id],
                    ev["subject_ref"].hex(),
                    event_id in existing,
                    a.score if a else None,
                    a.level if a else None,
                )
            )
        return outcomes

    def _check_listing_exits(self, rulebook: Rulebook, validated: Mapping[str, Mapping[str, Any]]) -> None:
        """A listing exit must name a black-list entry of the same subject (stored or in the batch)."""
        exits = {i: ev for i, ev in validated.items() if rulebook.event_types[ev["type"]].ends_listing}
        if not exits:
            return
        targets = sorted({ev["refers_to"] for ev in exits.values()})
        with self.engine.connect() as conn:
            stored = {
                r.id: (r.type, bytes(r.subject_ref))
                for r in conn.execute(
                    select(EVENTS.c.id, EVENTS.c.type, EVENTS.c.subject_ref).where(EVENTS.c.id.in_(targets))
                )
            }
        stored |= {i: (ev["type"], ev["subject_ref"]) for i, ev in validated.items()}
        for ev in exits.values():
            target = stored.get(ev["refers_to"])
            if (
                target is None
                or target[1] != ev["subject_ref"]
                or rulebook.event_types.get(target[0]) is None
                or rulebook.event_types[target[0]].black_list is None
            ):
                raise InvalidEvent(
                    f"{ev['type']}: refers_to names no black-list entry of this subject from {ev['source']}",
                    reason="refers-to",
                )

    # --- scoring ---------------------------------------------------------------------------------

    def _rescore(
        self,
        write: _Write,
        rulebook: Rulebook,
        refs: Sequence[bytes],
        today: date,
        cause: dict[str, Any],
        *,
        new_events: Mapping[bytes, Sequence[Event]] | None = None,
        new_effects: Mapping[bytes, Sequence[Effect]] | None = None,
        new_red: Mapping[bytes, Sequence[RedListDecision]] | None = None,
        kinds: Mapping[bytes, SubjectKind] | None = None,
        contiguous: bool = False,
    ) -> dict[bytes, Assessment]:
        """Recompute ``refs`` (plus unstored events, effects, decisions); queue a change where it moved."""
        if not refs:
            return {}
        with self.engine.connect() as conn:
            inputs = SubjectInputs.load(conn, refs, contiguous=contiguous)
            current = scores(conn, refs, contiguous=contiguous)
            missing = [r for r in refs if r not in current and (kinds is None or r not in kinds)]
            stored_kinds = {}
            if missing:
                stored_kinds = {
                    bytes(r[0]): SubjectKind(r[1])
                    for r in conn.execute(
                        select(SUBJECTS.c.ref, SUBJECTS.c.kind).where(SUBJECTS.c.ref.in_(missing))
                    )
                }
        digest = self._rulebook_hash(rulebook)
        results: dict[bytes, Assessment] = {}
        for ref in refs:
            row = current.get(ref)
            kind = (kinds or {}).get(ref) or (SubjectKind(row.kind) if row is not None else stored_kinds[ref])
            events = inputs.events.get(ref, []) + list((new_events or {}).get(ref, ()))
            effects = inputs.effects.get(ref, []) + list((new_effects or {}).get(ref, ()))
            red = inputs.red.get(ref, []) + list((new_red or {}).get(ref, ()))
            a = evaluate(events, rulebook, today, effects=effects, red_list=red, subject=kind, explain=False)
            results[ref] = a
            if row is not None and row.red and not a.lists.red_member and ref not in inputs.pending_red_exit:
                self.propose_red_list(
                    write, ref, RedListAction.EXIT, "a serious event removed the subject", today
                )
            before = _summary_of_row(row) if row is not None else None
            after = a.summary()
            if before == after and row is not None:
                # Unchanged (also under a new rulebook): no change record; the row notes the version
                # and the next date to look again (as_of stays the date of the last change).
                if (row.next_change_on, row.rulebook_version) != (a.next_change_on, rulebook.version):
                    values = _score_values(a, kind, None, today)
                    del values["as_of"]
                    write.score_updates.append((ref, row.version, values))
                continue
            document = {
                "v": 1,
                "subject_kind": kind.value,
                "as_of": today.isoformat(),
                "before": before,
                "after": after,
                "cause": cause,
                "rulebook": rulebook.version,
                "rulebook_hash": digest,
                "breakdown": {k.value: v for k, v in a.breakdown.items() if v},
                "reasons": [_reason_document(r) for r in a.reasons],
            }
            position = len(write.subs)
            write.add(
                _record(RecordKind.CREDIT_CHANGE, document, ref),
                CHANGES,
                {"subject_ref": ref, "as_of": today, "document": document, "at_us": time.time_ns() // 1000},
            )
            write.score_updates.append(
                (ref, row.version if row is not None else None, _score_values(a, kind, position, today))
            )
        return results

    def recompute(
        self,
        refs: Sequence[bytes],
        *,
        cause: dict[str, Any],
        today: date | None = None,
        chunk: int = 1000,
        contiguous: bool = False,
    ) -> JobReport:
        """Rescore ``refs`` at ``today`` (default: the service clock), recording changes, ``chunk``
        subjects per transaction (``contiguous``: see :meth:`SubjectInputs.load`)."""
        day = today or self.today()
        rulebook = self.active_rulebook()
        report = JobReport(recomputed=len(refs))
        for start in range(0, len(refs), chunk):
            part = refs[start : start + chunk]
            for _attempt in range(_RETRIES):
                write = _Write()
                try:
                    self._rescore(write, rulebook, part, day, cause, contiguous=contiguous)
                    self._commit(write, retryable=True)
                    break
                except _Stale:
                    continue
            else:
                raise Conflict("scores kept changing concurrently; retry", reason="busy")
            report.changed += sum(1 for s in write.subs if s.kind is RecordKind.CREDIT_CHANGE)
        return report

    def recompute_all(
        self, *, cause: dict[str, Any], today: date | None = None, workers: int = 1, chunk: int = 5000
    ) -> JobReport:
        """Rescore every subject (after a rulebook change), in ranges of ``chunk`` subjects.

        With ``workers`` > 1 the ranges are shared among forked processes (the engine is pure
        and each range is its own transaction; the database serialises the writes).
        """
        day = today or self.today()
        with self.engine.connect() as conn:
            batches = list(iter_subject_refs(conn, chunk=chunk))
        if workers <= 1 or len(batches) <= 1:
            return _recompute_batches(self, batches, cause, day)
        global _FORKED  # handed to the forked workers, which inherit module state
        _FORKED = self
        context = multiprocessing.get_context("fork")
        shares = [batches[i::workers] for i in range(workers)]
        with context.Pool(workers, initializer=_after_fork) as pool:
            parts = pool.starmap(_recompute_share, [(share, cause, day) for share in shares if share])
        _FORKED = None
        report = JobReport()
        for part in parts:
            report.recomputed += part.recomputed
            report.changed += part.changed
        return report

    def assess(self, ref: bytes, *, as_of: date | None = None, kind: SubjectKind | None = None) -> Assessment:
        """Compute a subject's assessment now (or at ``as_of``) from the stored events.

        With ``kind``, a subject without any events has a fresh account (the base score)."""
        try:
            kind = self.subject_kind(ref)
        except UnknownSubject:
            if kind is None:
                raise
            return evaluate([], self.active_rulebook(), as_of or self.today(), subject=kind)
        with self.engine.connect() as conn:
            served = served_subject(conn, self.ledger, ref)  # the recorded facts, not the rows
        return evaluate(
            served.engine_events(),
            self.active_rulebook(),
            as_of or self.today(),
            effects=served.engine_effects(),
            red_list=served.red,
            subject=kind,
        )

    def measures_for(
        self, ref: bytes, scenario: str, kind: SubjectKind
    ) -> tuple[Assessment, list[AppliedMeasure]]:
        """The measures that apply to a subject in a scenario (an unknown subject has a fresh account)."""
        assessment = self.assess(ref, kind=kind)
        return assessment, measures(assessment, scenario, self.active_rulebook(), subject=kind)

    # --- reading ---------------------------------------------------------------------------------

    def score(self, ref: bytes) -> dict[str, Any]:
        """The stored current score of a subject."""
        with self.engine.connect() as conn:
            row = conn.execute(select(SCORES).where(SCORES.c.subject_ref == ref)).first()
        if row is None:
            raise UnknownSubject("no credit data for this subject", reason="unknown-subject")
        return dict(row._mapping)

    def history(self, ref: bytes) -> list[dict[str, Any]]:
        """Every score change of a subject, oldest first, with its record id — read from the
        ``credit_change`` records themselves (see :func:`credit.integrity.served_history`)."""
        with self.engine.connect() as conn:
            return served_history(conn, self.ledger, ref)

    def events(self, ref: bytes) -> list[dict[str, Any]]:
        """A subject's events with their effects and open cases; the events' facts and the effects
        are read from their ledger records, the cases' current states from the database."""
        with self.engine.connect() as conn:
            served = served_subject(conn, self.ledger, ref)
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
        with self.engine.connect() as conn:
            row = conn.execute(
                select(EVENTS.c.record_id).where(EVENTS.c.id == event_id, EVENTS.c.subject_ref == ref)
            ).first()
        if row is None:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        return str(row[0])

    # --- access log ------------------------------------------------------------------------------

    def check_purpose(self, purpose: str, role: str, note: str | None = None) -> tuple[str, str | None]:
        """A reader's purpose code from the catalogue (:class:`~credit.access.UnknownPurpose`
        otherwise) and its note, checked as bounded text; call before reading."""
        self.access_policy.purpose(purpose, role)
        return purpose, check_text(note, name="purpose note", max_length=MAX_NOTE) if note else None

    def log_access(
        self, ref: bytes, *, accessor: str, role: str, purpose: str, what: str, note: str | None = None
    ) -> None:
        """Record that ``accessor`` read ``what`` of the subject's data for ``purpose``: an
        ``access`` ledger record, or within its window a repeat counted on it (:mod:`credit.access`).
        Call it last, once the read succeeded: a failed read leaves nothing behind."""
        purpose, note = self.check_purpose(purpose, role, note)
        now = time.time_ns() // 1000
        window = self.access_policy.window_s(role)
        who = {"accessor": accessor, "role": role, "purpose": purpose, "what": what}
        if count_repeat(self.engine, ref, **who, window_s=window, now_us=now):
            return
        document: dict[str, Any] = {"v": 1, **who, "window_s": window} | ({"note": note} if note else {})
        row = {"subject_ref": ref, **who, "note": note, "window_s": window, "at_us": now, "last_at_us": now}
        write = _Write()
        write.add(_record(RecordKind.ACCESS, document, ref), ACCESSES, row)
        self._commit(write)

    def access_log(self, ref: bytes, *, limit: int = 200) -> list[dict[str, Any]]:
        """Who read the subject's data, newest first; ``count`` reads in the window from ``at_us``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ACCESSES)
                .where(ACCESSES.c.subject_ref == ref)
                .order_by(ACCESSES.c.seq.desc())
                .limit(limit)
            ).all()
        keys = ("accessor", "role", "purpose", "note", "what", "at_us", "count", "window_s", "record_id")
        return [{k: getattr(r, k) for k in keys} | {"last_at_us": r.last_at_us or r.at_us} for r in rows]

    # --- objections (异议) -----------------------------------------------------------------------

    def _case(self, case_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(CASES).where(CASES.c.id == case_id)).first()
        if row is None:
            raise NotFoundError(f"no case {case_id!r}", reason="unknown-case")
        return row

    def _event(self, event_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(EVENTS).where(EVENTS.c.id == event_id)).first()
        if row is None:
            raise NotFoundError(f"no event {event_id!r}", reason="unknown-event")
        return row

    def _step(
        self, write: _Write, case: Mapping[str, Any], step: str, actor: str, today: date, **detail: Any
    ) -> None:
        """Queue a workflow step: its ``credit_workflow`` record and its row."""
        document = {"v": 1, "case": case["id"], "kind": case["kind"], "step": step, "on": today.isoformat()}
        if case.get("event_id"):
            document["event"] = case["event_id"]
        document |= {k: v for k, v in detail.items() if v is not None}
        row = {"case_id": case["id"], "step": step, "actor": actor, "on": today, "detail": document}
        write.add(_record(RecordKind.CREDIT_WORKFLOW, document, case["subject_ref"]), CASE_STEPS, row)

    def _open_case(
        self,
        write: _Write,
        *,
        kind: str,
        ref: bytes,
        event_id: str | None,
        state: str,
        due_on: date | None,
        detail: dict[str, Any],
        today: date,
    ) -> dict[str, Any]:
        case = {
            "id": secrets.token_hex(16),
            "kind": kind,
            "subject_ref": ref,
            "event_id": event_id,
            "state": state,
            "opened_on": today,
            "due_on": due_on,
            "detail": detail,
            "updated_at_us": time.time_ns() // 1000,
        }
        write.rows.append((CASES, {**case, "_position": None}, None))
        return case

    def _move_case(self, case_id: str, state: str, **detail: Any) -> Callable[[Connection], None]:
        def move(conn: Connection) -> None:
            row = conn.execute(select(CASES.c.detail, CASES.c.state).where(CASES.c.id == case_id)).one()
            done = conn.execute(
                update(CASES)
                .where(CASES.c.id == case_id, CASES.c.state == row.state)
                .values(state=state, detail={**row.detail, **detail}, updated_at_us=time.time_ns() // 1000)
            )
            if done.rowcount != 1:
                raise _Stale("case changed concurrently")

        return move

    def file_objection(self, ref: bytes, event_id: str, statement: str) -> dict[str, Any]:
        """A subject objects to one of its events: marked "under objection" at once (征信业管理条例 art. 25).

        The source must answer within the rulebook's working-day deadline; the statement itself
        stays in the database, the ledger gets its hash.
        """
        today = self.today()
        event = self._event(event_id)
        if bytes(event.subject_ref) != ref:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        if not statement.strip():
            raise WorkflowError(
                "an objection needs a statement of what is wrong", reason="statement-required"
            )
        with self.engine.connect() as conn:
            open_ = conn.execute(
                select(CASES.c.id).where(
                    CASES.c.event_id == event_id, CASES.c.kind == "objection", CASES.c.state.in_(_OPEN)
                )
            ).first()
        if open_ is not None:
            raise WorkflowError(
                f"event {event_id} is already under objection (case {open_[0]})", reason="duplicate"
            )
        rulebook = self.active_rulebook()
        due = self.calendar.add_working_days(today, rulebook.deadlines.objection_answer_working_days)
        write = _Write()
        case = self._open_case(
            write,
            kind="objection",
            ref=ref,
            event_id=event_id,
            state="under-objection",
            due_on=due,
            detail={"statement": statement, "source": event.source},
            today=today,
        )
        statement_hash = _sm3(statement.encode()).hex()
        self._step(
            write, case, "objection-filed", "subject", today, due_on=due.isoformat(), statement=statement_hash
        )
        self._commit(write)
        return self.case(case["id"])

    def answer_objection(
        self,
        case_id: str,
        source: Source,
        outcome: str,
        *,
        note: str = "",
        replacement: Mapping[str, Any] | None = None,
        confirmed_by: str | None = None,
    ) -> dict[str, Any]:
        """The source's answer: ``uphold``, ``correct`` (withdraw, optionally with a replacement event:
        a new compensating event, never an edit) or ``cannot-verify`` (item and objection both stay).

        A correction that changes list status needs ``confirmed_by``: a person, not the engine.
        """
        if outcome not in ("uphold", "correct", "cannot-verify"):
            raise WorkflowError("outcome must be uphold, correct or cannot-verify", reason="invalid-outcome")
        case = self._case(case_id)
        if case.kind != "objection" or case.state not in _OPEN:
            raise WorkflowError(f"case {case_id} is not an open objection ({case.state})")
        event = self._event(case.event_id)
        if event.source != source.name:
            raise WorkflowError(f"only {event.source}, which reported the event, answers this objection")
        today = self.today()
        rulebook = self.active_rulebook()
        ref = bytes(case.subject_ref)
        write = _Write()
        state = {"uphold": "upheld", "correct": "corrected", "cannot-verify": "unverifiable"}[outcome]
        self._step(write, dict(case._mapping), f"objection-{state}", source.name, today, note=note or None)
        if outcome == "correct":
            effect = {"kind": EffectKind.WITHDRAWN.value, "effective_on": today.isoformat()}
            new_events: dict[bytes, list[Event]] = {}
            if replacement is not None:
                fields = {**replacement, "subject": self.personal_data(ref)["identifier"]}
                fields.setdefault("source_ref", f"{event.source_ref}#correction")
                ev = self._validate(source, fields, rulebook, today)
                with self.engine.connect() as conn:
                    if conn.execute(select(EVENTS.c.id).where(EVENTS.c.id == ev["id"])).first() is not None:
                        raise Conflict(
                            f"source_ref {ev['source_ref']!r} is already used; give the correction its own"
                        )
                document = self._event_document(ev) | {"corrects": event.id}
                row = _event_row(ev)
                write.add(
                    _record(RecordKind.CREDIT_EVENT, document, ref, f"credit-event:{ev['id']}"), EVENTS, row
                )
                new_events[ref] = [
                    Event(
                        ev["id"],
                        ev["type"],
                        ev["occurred_on"],
                        ev["source"],
                        ev["quantity"],
                        ev["ended_on"],
                        ev["refers_to"],
                    )
                ]
            self._add_effect(
                write, dict(case._mapping), event.id, EffectKind.WITHDRAWN, source.name, today, effect
            )
            before = self.score(ref)
            assessments = self._rescore(
                write,
                rulebook,
                [ref],
                today,
                {"kind": "objection", "ref": case_id},
                new_events=new_events,
                new_effects={ref: [Effect(event.id, EffectKind.WITHDRAWN, today)]},
            )
            after = assessments[ref]
            moved = (
                sorted(before["black"]) != sorted({b.list for b in after.lists.black})
                or bool(before["red"]) != after.lists.red_member
            )
            if moved and not confirmed_by:
                raise WorkflowError(
                    "this correction changes the subject's list status; a person must confirm it "
                    "(confirmed_by)",
                    reason="confirmation-required",
                )
        self._commit(
            write, extra=self._move_case(case_id, state, answer=outcome, note=note, confirmed_by=confirmed_by)
        )
        return self.case(case_id)

    def _add_effect(
        self,
        write: _Write,
        case: dict[str, Any],
        event_id: str,
        kind: EffectKind,
        actor: str,
        today: date,
        effect: dict[str, Any],
    ) -> None:
        self._step(write, case, f"effect-{kind.value}", actor, today, effect=effect)
        row = {
            "subject_ref": case["subject_ref"],
            "event_id": event_id,
            "kind": kind.value,
            "effective_on": today,
        }
        write.rows.append((EFFECTS, {**row, "_position": len(write.subs) - 1}, "record_id"))

    # --- repair (信用修复) ------------------------------------------------------------------------

    def apply_repair(self, ref: bytes, event_id: str, commitment: str) -> dict[str, Any]:
        """A subject applies to repair a negative event after the tier's minimum period, with a signed
        credit commitment (信用承诺书); the department decides within the rulebook's deadline."""
        today = self.today()
        event = self._event(event_id)
        if bytes(event.subject_ref) != ref:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        if not commitment.strip():
            raise WorkflowError(
                "a repair needs the signed credit commitment (信用承诺书)", reason="commitment-required"
            )
        rulebook = self.active_rulebook()
        assessment = self.assess(ref)
        item = next((c for c in assessment.contributions if c.event_id == event_id), None)
        if item is None or item.points >= 0 or item.state not in ("counting", "capped"):
            raise WorkflowError(
                "only a negative event that still counts can be repaired", reason="not-repairable"
            )
        et = rulebook.event_types[event.type]
        route = repair_route(et, event_of(event), rulebook)
        if route.route != "repair" or route.eligible_from is None:
            how = (
                "it ends by the source list's exit rule"
                if route.route == "list-exit"
                else "it ends only by expiry"
            )
            raise WorkflowError(f"{event.type} cannot be repaired: {how}", reason="not-repairable")
        if today < route.eligible_from:
            raise WorkflowError(f"repair is possible from {route.eligible_from}", reason="too-early")
        with self.engine.connect() as conn:
            open_ = conn.execute(
                select(CASES.c.id).where(
                    CASES.c.event_id == event_id, CASES.c.kind == "repair", CASES.c.state == "applied"
                )
            ).first()
        if open_ is not None:
            raise WorkflowError(
                f"a repair of event {event_id} is already pending (case {open_[0]})", reason="duplicate"
            )
        due = self.calendar.add_working_days(today, rulebook.deadlines.repair_decision_working_days)
        write = _Write()
        case = self._open_case(
            write,
            kind="repair",
            ref=ref,
            event_id=event_id,
            state="applied",
            due_on=due,
            detail={"commitment": commitment, "source": event.source},
            today=today,
        )
        self._step(
            write,
            case,
            "repair-applied",
            "subject",
            today,
            due_on=due.isoformat(),
            commitment=_sm3(commitment.encode()).hex(),
        )
        self._commit(write)
        return self.case(case["id"])

    def decide_repair(self, case_id: str, actor: str, approve: bool, *, note: str = "") -> dict[str, Any]:
        """Record the department's decision; an approval ends the event's effect today and the score
        change is recorded (and so anchored) the same day."""
        case = self._case(case_id)
        if case.kind != "repair" or case.state != "applied":
            raise WorkflowError(f"case {case_id} is not a pending repair ({case.state})")
        today = self.today()
        ref = bytes(case.subject_ref)
        write = _Write()
        state = "approved" if approve else "rejected"
        self._step(write, dict(case._mapping), f"repair-{state}", actor, today, note=note or None)
        if approve:
            effect = {"kind": EffectKind.REPAIRED.value, "effective_on": today.isoformat()}
            self._add_effect(
                write, dict(case._mapping), case.event_id, EffectKind.REPAIRED, actor, today, effect
            )
            self._rescore(
                write,
                self.active_rulebook(),
                [ref],
                today,
                {"kind": "repair", "ref": case_id},
                new_effects={ref: [Effect(case.event_id, EffectKind.REPAIRED, today)]},
            )
        self._commit(write, extra=self._move_case(case_id, state, decided_by=actor, note=note))
        return self.case(case_id)

    # --- red list decisions ------------------------------------------------------------------------

    def propose_red_list(
        self, write: _Write, ref: bytes, action: RedListAction, reason: str, today: date
    ) -> None:
        """Queue a red-list proposal; a person confirms it (:meth:`decide_list_case`)."""
        case = self._open_case(
            write,
            kind="list",
            ref=ref,
            event_id=None,
            state="proposed",
            due_on=None,
            detail={"list": "red", "action": action.value, "reason": reason},
            today=today,
        )
        self._step(
            write,
            case,
            "list-proposed",
            "credit-engine",
            today,
            list="red",
            action=action.value,
            reason=reason,
        )

    def decide_list_case(
        self, case_id: str, officer: str, confirm: bool, *, note: str = ""
    ) -> dict[str, Any]:
        """A person confirms or rejects a proposed list entry or exit."""
        if not officer.strip():
            raise WorkflowError("name the person who decides", reason="officer-required")
        case = self._case(case_id)
        if case.kind != "list" or case.state != "proposed":
            raise WorkflowError(f"case {case_id} is not a pending list proposal ({case.state})")
        today = self.today()
        ref = bytes(case.subject_ref)
        write = _Write()
        state = "confirmed" if confirm else "rejected"
        action = RedListAction(case.detail["action"])
        red = {"action": action.value, "effective_on": today.isoformat()} if confirm else None
        self._step(write, dict(case._mapping), f"list-{state}", officer, today, red=red, note=note or None)
        if confirm:
            row = {"subject_ref": ref, "action": action.value, "effective_on": today}
            write.rows.append((RED_DECISIONS, {**row, "_position": len(write.subs) - 1}, "record_id"))
            self._rescore(
                write,
                self.active_rulebook(),
                [ref],
                today,
                {"kind": "list", "ref": case_id},
                new_red={ref: [RedListDecision(action, today)]},
            )
        self._commit(write, extra=self._move_case(case_id, state, decided_by=officer, note=note))
        return self.case(case_id)

    def case(self, case_id: str) -> dict[str, Any]:
        """A case with its steps."""
        row = self._case(case_id)
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        views = [_case_view(r) for r in rows]
        return [v for v in views if source is None or v["detail"].get("source") == source]

    # --- scheduled jobs ----------------------------------------------------------------------------

    def run_daily(self, today: date | None = None) -> JobReport:
        """The daily jobs: rescore subjects whose events expire or lists end today, flag overdue
        objections and repairs, send reminders, and run the yearly red-list review when due."""
        day = today or self.today()
        report = JobReport()
        with self.engine.connect() as conn:
            due = [
                bytes(r[0])
                for r in conn.execute(select(SCORES.c.subject_ref).where(SCORES.c.next_change_on <= day))
            ]
        if due:
            part = self.recompute(due, cause={"kind": "scheduled"}, today=day)
            report.recomputed, report.changed = part.recomputed, part.changed
        self._deadlines(day, report)
        rulebook = self.active_rulebook()
        review = date(day.year, rulebook.red_list.review_month, rulebook.red_list.review_day)
        if day >= review and not self._reviewed(day.year):
            report.proposals = self.red_list_review(day)
        return report

    def _deadlines(self, day: date, report: JobReport) -> None:
        rulebook = self.active_rulebook()
        ahead = rulebook.deadlines.reminder_working_days_before
        with self.engine.connect() as conn:
            open_cases = conn.execute(
                select(CASES).where(
                    CASES.c.state.in_(("under-objection", "applied")), CASES.c.due_on.is_not(None)
                )
            ).all()
        for case in open_cases:
            flags = case.detail
            write = _Write()
            if case.due_on < day and not flags.get("overdue_flagged"):
                self._step(
                    write,
                    dict(case._mapping),
                    "overdue",
                    "credit-engine",
                    day,
                    due_on=case.due_on.isoformat(),
                )
                self._commit(write, extra=self._flag(case.id, overdue_flagged=day.isoformat()))
                report.overdue += 1
            elif (
                day <= case.due_on
                and not flags.get("reminded")
                and self.calendar.working_days_between(day, case.due_on) <= ahead
            ):
                self._step(
                    write,
                    dict(case._mapping),
                    "reminder",
                    "credit-engine",
                    day,
                    due_on=case.due_on.isoformat(),
                )
                self._commit(write, extra=self._flag(case.id, reminded=day.isoformat()))
                report.reminders += 1

    def _flag(self, case_id: str, **flags: Any) -> Callable[[Connection], None]:
        def flag(conn: Connection) -> None:
            detail = conn.execute(select(CASES.c.detail).where(CASES.c.id == case_id)).scalar_one()
            conn.execute(update(CASES).where(CASES.c.id == case_id).values(detail={**detail, **flags}))

        return flag

    def _reviewed(self, year: int) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(func.count())
                    .select_from(CASE_STEPS)
                    .where(CASE_STEPS.c.step == "red-list-reviewed", CASE_STEPS.c.on >= date(year, 1, 1))
                ).scalar_one()
                > 0
            )

    def red_list_review(self, today: date) -> int:
        """The yearly red-list review: propose entries for eligible subjects and exits for members
        who no longer qualify. A person confirms each proposal."""
        proposals = 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SCORES.c.subject_ref, SCORES.c.red, SCORES.c.red_eligible).where(
                    SCORES.c.red != SCORES.c.red_eligible
                )
            ).all()
            pending = {
                bytes(r[0])
                for r in conn.execute(
                    select(CASES.c.subject_ref).where(CASES.c.kind == "list", CASES.c.state == "proposed")
                )
            }
        for start in range(0, len(rows), 500):
            write = _Write()
            for ref_, red, eligible in rows[start : start + 500]:
                ref = bytes(ref_)
                if ref in pending:
                    continue
                action = RedListAction.ENTER if eligible and not red else RedListAction.EXIT
                reason = (
                    "meets the red-list criteria" if eligible else "no longer meets the red-list criteria"
                )
                self.propose_red_list(write, ref, action, f"yearly review {today.year}: {reason}", today)
                proposals += 1
            self._commit(write)
        marker = {"id": f"review-{today.year}", "kind": "review", "subject_ref": None}
        write = _Write()
        document = {
            "v": 1,
            "case": marker["id"],
            "kind": "review",
            "step": "red-list-reviewed",
            "on": today.isoformat(),
            "proposals": proposals,
        }
        write.add(
            _record(RecordKind.CREDIT_WORKFLOW, document, None),
            CASE_STEPS,
            {
                "case_id": marker["id"],
                "step": "red-list-reviewed",
                "actor": "credit-engine",
                "on": today,
                "detail": document,
            },
        )
        self._commit(write)
        return proposals

    # --- replay and list snapshots ------------------------------------------------------------

    def replay(self, ref: bytes) -> ReplayReport:
        """Recompute one subject's whole history from its ledger records and compare every row of
        the subject with its record (see :mod:`credit.integrity`). The records are found through
        the database's record ids; :meth:`replay_all` also scans the ledger itself."""
        self.subject_kind(ref)
        return scan(self.engine, self.ledger, rulebook_of=self.rulebook, subject=ref)

    def replay_all(self) -> ReplayReport:
        """Every stored row against its record, every credit record against its row, and every
        score change recomputed — streaming, one range of subjects at a time."""
        return scan(self.engine, self.ledger, rulebook_of=self.rulebook)

    def check_rows(self) -> ReplayReport:
        """:meth:`replay_all` without the recomputation: the row check ``trustledger audit`` runs."""
        return scan(self.engine, self.ledger)

    def list_members(self, list_name: str) -> list[bytes]:
        """Subjects on ``list_name`` now ("red", or a black list's key), sorted by reference."""
        rulebook = self.active_rulebook()
        if list_name != "red" and list_name not in rulebook.black_lists:
            raise NotFoundError(f"unknown list {list_name!r}", reason="unknown-list")
        members = []
        with self.engine.connect() as conn:
            for ref, black, red in conn.execute(select(SCORES.c.subject_ref, SCORES.c.black, SCORES.c.red)):
                if (list_name == "red" and red) or list_name in black:
                    members.append(bytes(ref))
        return sorted(members)

    def publish_list_snapshot(self, list_name: str, *, by: str) -> dict[str, Any]:
        """Publish a list as of today: a ``credit_list`` record committing to the Merkle root (SM3,
        RFC 9162) of its members' references, so the list as published can be proven later."""
        members = self.list_members(list_name)
        hasher = tree_hasher(HashAlgorithm.SM3)
        root = hasher.root_of([hasher.leaf_hash(ref) for ref in members])
        today = self.today()
        document = {"v": 1, "list": list_name, "as_of": today.isoformat(), "size": len(members), "by": by}
        document["root"] = root.hex()
        row = {"list_name": list_name, "as_of": today, "size": len(members), "root": root}
        row["members"] = [m.hex() for m in members]
        write = _Write()
        write.add(
            Submission(kind=RecordKind.CREDIT_LIST, content_hash=root, metadata=document), SNAPSHOTS, row
        )
        (accepted,) = self._commit(write)
        return {**document, "record_id": accepted.id}

    def list_snapshots(self, list_name: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """Published snapshots of a list, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SNAPSHOTS)
                .where(SNAPSHOTS.c.list_name == list_name)
                .order_by(SNAPSHOTS.c.seq.desc())
                .limit(limit)
            ).all()
        return [
            {
                "list": r.list_name,
                "as_of": r.as_of.isoformat(),
                "size": r.size,
                "root": bytes(r.root).hex(),
                "record_id": r.record_id,
                "seq": r.seq,
            }
            for r in rows
        ]

    def snapshot_proof(self, seq: int, ref: bytes) -> dict[str, Any]:
        """Whether ``ref`` was on a published snapshot, with an RFC 9162 inclusion proof if so."""
        with self.engine.connect() as conn:
            row = conn.execute(select(SNAPSHOTS).where(SNAPSHOTS.c.seq == seq)).first()
        if row is None:
            raise NotFoundError(f"no list snapshot {seq}", reason="unknown-snapshot")
        members = [bytes.fromhex(m) for m in row.members]
        result: dict[str, Any] = {
            "list": row.list_name,
            "as_of": row.as_of.isoformat(),
            "size": row.size,
            "root": bytes(row.root).hex(),
            "record_id": row.record_id,
            "member": ref in members,
        }
        if ref in members:
            tree = MemoryTree(tree_hasher(HashAlgorithm.SM3))
            for m in members:
                tree.append(m)
            index = members.index(ref)
            result["index"] = index
            result["proof"] = [
                h.hex() for h in inclusion_proof(tree.hasher, index, tree.size, tree.read_node)
            ]
        return result

    # --- the write path --------------------------------------------------------------------------

    def _commit(
        self, write: _Write, *, extra: Callable[[Connection], None] | None = None, retryable: bool = False
    ) -> list[Accepted]:
        """Submit the queued records and store the queued rows in the same transaction.

        A concurrent change is :class:`_Stale` for callers that recompute and retry (``retryable``),
        otherwise a :class:`~ledger.errors.Conflict` (HTTP 409) the client may retry.
        """
        try:
            return self._commit_once(write, extra)
        except _Stale as e:
            if retryable:
                raise
            raise Conflict(f"the subject's data changed concurrently ({e}); retry", reason="busy") from e

    def _commit_once(self, write: _Write, extra: Callable[[Connection], None] | None) -> list[Accepted]:

        def store(conn: Connection, accepted: Sequence[Accepted]) -> None:
            if any(a.duplicate for a in accepted):
                raise _Stale("an event was stored concurrently")
            # Rows go in as one executemany per table (per-row statements dominated bulk recomputes).
            batches: dict[tuple[Any, frozenset[str]], list[dict[str, Any]]] = {}
            for table, values, column in write.rows:
                row = dict(values)
                position = row.pop("_position", None)
                if column is not None and position is not None:
                    row[column] = accepted[position].id
                batches.setdefault((table, frozenset(row)), []).append(row)
            new_scores, updates = [], []
            for ref, version, values in write.score_updates:
                row = dict(values)
                position = row.pop("_position", None)
                row["change_record_id"] = accepted[position].id if position is not None else None
                if version is None:
                    new_scores.append({"subject_ref": ref, "version": 1, **row})
                else:
                    if position is None:
                        del row["change_record_id"]  # unchanged score: keep the last change's record
                    updates.append({"b_ref": ref, "b_version": version, "version": version + 1, **row})
            if new_scores:
                batches.setdefault((SCORES, frozenset(new_scores[0])), []).extend(new_scores)
            for (table, _keys), rows in batches.items():
                conn.execute(insert(table), rows)
            _update_scores(conn, updates)
            if extra is not None:
                extra(conn)

        if not write.subs:
            if write.rows or write.score_updates or extra is not None:
                with self.ledger.store.transaction() as conn:
                    store(conn, [])
            return []
        try:
            return self.ledger.submit(SUBMITTER, write.subs, on_stored=store)
        except Conflict as e:
            raise _Stale(str(e)) from e


_FORKED: CreditService | None = None


def _after_fork() -> None:
    """In a forked worker: never reuse the parent's pooled connections."""
    if _FORKED is not None:
        _FORKED.engine.dispose(close=False)


def _recompute_share(batches: list[list[bytes]], cause: dict[str, Any], day: date) -> JobReport:
    if _FORKED is None:
        raise CreditError("no service in this worker", reason="internal")
    return _recompute_batches(_FORKED, batches, cause, day)


def _recompute_batches(
    service: CreditService, batches: Sequence[Sequence[bytes]], cause: dict[str, Any], day: date
) -> JobReport:
    report = JobReport()
    for refs in batches:
        part = service.recompute(refs, cause=cause, today=day, chunk=len(refs), contiguous=True)
        report.recomputed += part.recomputed
        report.changed += part.changed
    return report


def _update_scores(conn: Connection, updates: Sequence[dict[str, Any]]) -> None:
    """Apply score updates, each only if the row still has the version it was computed from."""
    guard = (SCORES.c.subject_ref == bindparam("b_ref"), SCORES.c.version == bindparam("b_version"))
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for values in updates:
        groups.setdefault(frozenset(values), []).append(values)
    for rows in groups.values():
        if conn.dialect.supports_sane_multi_rowcount:
            done = conn.execute(update(SCORES).where(*guard), rows).rowcount
        else:
            done = sum(conn.execute(update(SCORES).where(*guard), row).rowcount for row in rows)
        if done != len(rows):
            raise _Stale("a score changed concurrently")


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


def _summary_of_row(row: Any) -> dict[str, Any]:
    return {"score": row.score, "level": row.level, "black": sorted(row.black), "red": bool(row.red)}


def _score_values(a: Assessment, kind: SubjectKind, position: int | None, today: date) -> dict[str, Any]:
    return {
        "kind": kind.value,
        "score": a.score,
        "level": a.level,
        "black": sorted({b.list for b in a.lists.black}),
        "red": a.lists.red_member,
        "red_eligible": a.lists.red_eligible,
        "rulebook_version": a.rulebook_version,
        "as_of": today,
        "next_change_on": a.next_change_on,
        "_position": position,
    }


def _reason_document(r: Any) -> dict[str, Any]:
    return {
        "code": r.code,
        "event": r.event_id,
        "occurred_on": r.occurred_on.isoformat(),
        "source": r.source,
        "points": r.points,
        "expires_on": r.expires_on.isoformat() if r.expires_on else None,
        "repair": {
            "route": r.repair.route,
            "eligible_from": r.repair.eligible_from.isoformat() if r.repair.eligible_from else None,
        },
    }


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


def _event_row(ev: Mapping[str, Any]) -> dict[str, Any]:
    """The ``credit_event`` row of a validated event (its record id is filled in on commit)."""
    row = {k: ev[k] for k in ("id", "subject_ref", "type", "occurred_on", "ended_on", "quantity", "source")}
    row |= {
        "source_ref": ev["source_ref"],
        "refers_to": ev["refers_to"],
        "evidence_record_id": ev["evidence_record_id"],
    }
    row["recorded_at_us"] = time.time_ns() // 1000
    return row
