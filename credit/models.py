"""The typed values credit hands out: outcomes, reports, views of scores, histories, events, cases,
access records, rulebook versions and list snapshots — frozen, and the states as ``str`` enums.

The HTTP API builds its response models from these (``api/credit_responses.py``); the stored strings
of the enums are the ones in the database rows and ledger records, so they never change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, cast

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts before Python 3.12

from credit.engine import EffectKind, Reason, Repair, RepairRoute
from credit.errors import IntegrityFailure
from credit.identifiers import SubjectKind
from credit.rulebook import Category

# --- cases ----------------------------------------------------------------------------------------


class CaseKind(StrEnum):
    """What a case is about."""

    OBJECTION = "objection"  # 异议: the subject disputes one of its events
    REPAIR = "repair"  # 信用修复: the subject applies to end a negative event's effect early
    LIST = "list"  # a proposed red-list entry or exit, for a person to decide


class CaseState(StrEnum):
    """Where a case stands (objections: under-objection → upheld | corrected | unverifiable;
    repairs: applied → approved | rejected; list cases: proposed → confirmed | rejected)."""

    UNDER_OBJECTION = "under-objection"
    UPHELD = "upheld"
    CORRECTED = "corrected"
    UNVERIFIABLE = "unverifiable"
    APPLIED = "applied"
    APPROVED = "approved"
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class ObjectionOutcome(StrEnum):
    """A source's answer to an objection."""

    UPHOLD = "uphold"  # the event stands
    CORRECT = "correct"  # the event is withdrawn (optionally replaced by a compensating event)
    CANNOT_VERIFY = "cannot-verify"  # event and objection both stay on record

    @property
    def state(self) -> CaseState:
        """The objection's state after this answer."""
        return _ANSWERED[self]


_ANSWERED = {
    ObjectionOutcome.UPHOLD: CaseState.UPHELD,
    ObjectionOutcome.CORRECT: CaseState.CORRECTED,
    ObjectionOutcome.CANNOT_VERIFY: CaseState.UNVERIFIABLE,
}


class CaseDetail(TypedDict, total=False):
    """A case's details as stored with it; which keys are present depends on the kind and state."""

    statement: Annotated[str, Field(description="objection: what the subject says is wrong")]
    commitment: Annotated[str, Field(description="repair: the signed credit commitment (信用承诺书)")]
    source: Annotated[str, Field(description="the source that reported the event (it answers or decides)")]
    list: Annotated[str, Field(description="list case: which list (red)")]
    action: Annotated[str, Field(description="list case: enter or exit")]
    reason: Annotated[str, Field(description="list case: why the engine proposes it")]
    reminded: Annotated[str, Field(description="the day a reminder of the deadline went out")]
    overdue_flagged: Annotated[str, Field(description="the day the case was flagged overdue")]
    answer: Annotated[str, Field(description="objection: the source's outcome")]
    decided_by: Annotated[str, Field(description="repair, list case: who decided")]
    note: Annotated[str, Field(description="the answer's or decision's note (empty when none)")]
    confirmed_by: Annotated[
        str | None, Field(description="objection: the person who confirmed a correction that changed lists")
    ]


def case_detail(stored: Mapping[str, Any]) -> CaseDetail:
    """A case's stored detail (a JSON column) as a :class:`CaseDetail`: the known keys, as stored."""
    return cast(CaseDetail, {key: stored[key] for key in CaseDetail.__annotations__ if key in stored})


@dataclass(frozen=True)
class Case:
    """An objection, repair application or list case, and its current state."""

    id: str
    kind: CaseKind
    subject_ref: bytes
    event_id: str | None
    state: CaseState
    opened_on: date
    due_on: date | None
    detail: CaseDetail

    @classmethod
    def from_row(cls, row: Any) -> Case:
        """The case of a ``credit_case`` row."""
        return cls(
            id=row.id,
            kind=CaseKind(row.kind),
            subject_ref=bytes(row.subject_ref),
            event_id=row.event_id,
            state=CaseState(row.state),
            opened_on=row.opened_on,
            due_on=row.due_on,
            detail=case_detail(row.detail),
        )


@dataclass(frozen=True)
class CaseStep:
    """One step of a case, with its ``credit_workflow`` record."""

    step: str
    actor: str
    on: date
    record_id: str


@dataclass(frozen=True)
class CaseWithSteps(Case):
    """A case and every step it went through, oldest first."""

    steps: tuple[CaseStep, ...] = ()

    @classmethod
    def of(cls, case: Case, steps: Iterable[CaseStep]) -> CaseWithSteps:
        """``case`` with ``steps``."""
        return cls(
            case.id,
            case.kind,
            case.subject_ref,
            case.event_id,
            case.state,
            case.opened_on,
            case.due_on,
            case.detail,
            tuple(steps),
        )


# --- subjects and events ------------------------------------------------------------------------


class SubjectReference(NamedTuple):
    """A validated identifier: the subject's keyed reference, its kind and its canonical number."""

    ref: bytes
    kind: SubjectKind
    identifier: str


@dataclass(frozen=True)
class PersonalData:
    """A subject's identifier and name, decrypted."""

    identifier: str
    name: str | None


@dataclass(frozen=True)
class EventOutcome:
    """The answer for one submitted event: its record, and the subject's score after the batch."""

    event_id: str
    record_id: str
    subject_ref: bytes
    duplicate: bool  # the same event was submitted before (this is the first one's record)
    score: int | None = None  # None for a duplicate
    level: str | None = None


@dataclass(frozen=True)
class EventEffect:
    """A case's outcome on an event (repaired, withdrawn) and the date it took effect."""

    kind: EffectKind
    effective_on: date


@dataclass(frozen=True)
class CaseOfEvent:
    """A case about an event, as listed with the event."""

    id: str
    kind: CaseKind
    state: CaseState


@dataclass(frozen=True)
class EventView:
    """One of a subject's events as its ledger record states it, with its effects and cases."""

    id: str
    type: str
    occurred_on: date
    ended_on: date | None
    quantity: int
    source: str
    source_ref: str
    record_id: str
    effects: tuple[EventEffect, ...]
    cases: tuple[CaseOfEvent, ...]


# --- scores ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeCause:
    """Why a score was recomputed: ``kind`` (event, objection, repair, list, rulebook, scheduled, …)
    and what it refers to (a case id, a rulebook version), if anything."""

    kind: str
    ref: str | None = None

    def document(self) -> dict[str, str]:
        """Its form in a ``credit_change`` record."""
        return {"kind": self.kind} if self.ref is None else {"kind": self.kind, "ref": self.ref}


@dataclass(frozen=True)
class ScoreSummary:
    """Score, level and lists: what a ``credit_change`` record states before and after a change."""

    score: int
    level: str
    black: tuple[str, ...]
    red: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ScoreSummary:
        """The summary a record states."""
        return cls(int(doc["score"]), str(doc["level"]), tuple(doc["black"]), bool(doc["red"]))


@dataclass(frozen=True)
class StoredScore:
    """A subject's current score as stored (what the daily jobs and list queries read)."""

    subject_ref: bytes
    kind: SubjectKind
    score: int
    level: str
    black: tuple[str, ...]
    red: bool
    red_eligible: bool
    rulebook_version: str
    as_of: date  # the date of the last change
    next_change_on: date | None
    version: int
    change_record_id: str | None

    @classmethod
    def from_row(cls, row: Any) -> StoredScore:
        """The score of a ``credit_score`` row."""
        return cls(
            subject_ref=bytes(row.subject_ref),
            kind=SubjectKind(row.kind),
            score=row.score,
            level=row.level,
            black=tuple(row.black),
            red=bool(row.red),
            red_eligible=bool(row.red_eligible),
            rulebook_version=row.rulebook_version,
            as_of=row.as_of,
            next_change_on=row.next_change_on,
            version=row.version,
            change_record_id=row.change_record_id,
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a subject's score, as its ``credit_change`` record states it."""

    record_id: str
    v: int
    subject_kind: SubjectKind
    as_of: date
    before: ScoreSummary | None  # None: the subject's first score
    after: ScoreSummary
    cause: ChangeCause
    rulebook: str
    rulebook_hash: str
    breakdown: Mapping[str, int]  # the non-zero categories
    reasons: tuple[Reason, ...]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], record_id: str) -> HistoryEntry:
        """The change a ``credit_change`` record's document states (:class:`IntegrityFailure` if it
        is not one)."""
        try:
            cause = doc["cause"]
            return cls(
                record_id=record_id,
                v=int(doc["v"]),
                subject_kind=SubjectKind(doc["subject_kind"]),
                as_of=date.fromisoformat(doc["as_of"]),
                before=ScoreSummary.from_document(doc["before"]) if doc["before"] is not None else None,
                after=ScoreSummary.from_document(doc["after"]),
                cause=ChangeCause(str(cause["kind"]), cause.get("ref")),
                rulebook=str(doc["rulebook"]),
                rulebook_hash=str(doc["rulebook_hash"]),
                breakdown={str(k): int(v) for k, v in doc["breakdown"].items()},
                reasons=tuple(_recorded_reason(r) for r in doc["reasons"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise IntegrityFailure(f"record {record_id} is not a score change: {e!r}") from e


def _recorded_reason(doc: Mapping[str, Any]) -> Reason:
    repair = doc["repair"]
    return Reason(
        code=str(doc["code"]),
        event_id=str(doc["event"]),
        occurred_on=date.fromisoformat(doc["occurred_on"]),
        source=str(doc["source"]),
        points=int(doc["points"]),
        expires_on=_day(doc["expires_on"]),
        repair=Repair(RepairRoute(str(repair["route"])), _day(repair["eligible_from"])),
    )


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text is not None else None


@dataclass(frozen=True)
class NamedListing:
    """A black-list entry with the list's name and exit rule from the rulebook."""

    list: str
    name: str
    event_id: str
    entered_on: date
    exit_due: date
    exit_rule: str


@dataclass(frozen=True)
class ExplainedLists:
    """A subject's list status: its black-list entries (named), red-list membership and eligibility."""

    black: tuple[NamedListing, ...]
    red: bool
    red_eligible: bool


@dataclass(frozen=True)
class ExplainedReason:
    """A reason for the score (an event that counts) with its event type's label from the rulebook."""

    code: str  # the event type
    label: str
    event_id: str
    occurred_on: date
    source: str
    points: int
    expires_on: date | None
    repair: Repair


@dataclass(frozen=True)
class ExplainedScore:
    """An assessment as a subject or an auditor reads it: score, level, the points by category, the
    lists with their names and exit rules, and the reasons with their labels."""

    as_of: date
    rulebook_version: str
    score: int
    level: str
    breakdown: Mapping[Category, int]
    lists: ExplainedLists
    reasons: tuple[ExplainedReason, ...]
    next_change_on: date | None


# --- jobs, reads, rulebooks and lists -----------------------------------------------------------


@dataclass(frozen=True)
class JobReport:
    """What a recompute or a run of the daily jobs did."""

    recomputed: int = 0  # subjects rescored
    changed: int = 0  # score changes recorded
    reminders: int = 0
    overdue: int = 0
    proposals: int = 0  # red-list proposals made

    def __add__(self, other: JobReport) -> JobReport:
        return JobReport(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class AccessEntry:
    """A read of a subject's data: who, in what role, for what purpose, and how often in its window."""

    accessor: str
    role: str
    purpose: str
    note: str | None
    what: str
    at_us: int  # the first read in the window (µs since the epoch)
    count: int  # reads in the window
    window_s: int | None  # None: recorded before windows existed
    record_id: str
    last_at_us: int


@dataclass(frozen=True)
class RulebookVersion:
    """An activated rulebook version: its SM3 canonical hash and activation record."""

    version: str
    hash: bytes
    activated_on: date
    activated_by: str
    record_id: str


@dataclass(frozen=True)
class ListSnapshot:
    """A published list snapshot: the Merkle root of its members' references and its record."""

    list: str
    as_of: date
    size: int
    root: bytes
    record_id: str
    seq: int | None = None  # its number among published snapshots (None: just published)
    by: str | None = None  # who published it (stated in its record)


@dataclass(frozen=True)
class SnapshotProof:
    """Whether a subject was on a published snapshot, with an RFC 9162 inclusion proof if so."""

    list: str
    as_of: date
    size: int
    root: bytes
    record_id: str
    member: bool
    index: int | None = None  # for a member: its position among the sorted references
    proof: tuple[bytes, ...] | None = None  # for a member: the sibling hashes, leaf to root
