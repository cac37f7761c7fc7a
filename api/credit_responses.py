"""Response models of the credit API (pydantic; every field appears in the OpenAPI document).

Each is read from the credit package's typed value of the same shape (:mod:`credit.models`), by
attribute, and its JSON is what the routes have always returned: the fields are listed in the
order the JSON has always had them. The requests are :mod:`api.credit_requests`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Literal, NotRequired, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from typing_extensions import TypedDict

from credit.as_of import ScoreOnDate
from credit.engine import EffectKind
from credit.identifiers import SubjectKind
from credit.models import CaseDetail, CaseKind, CaseState, ChangeCause, ExplainedScore
from credit.rulebook import Category


def _hex(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


def _cause(value: object) -> object:
    return value.document() if isinstance(value, ChangeCause) else value


Hex = Annotated[str, BeforeValidator(_hex)]
SubjectRefHex = Annotated[
    str, BeforeValidator(_hex), Field(description="the subject's keyed reference (HMAC-SM3), 64 hex digits")
]
RecordId = Annotated[str, Field(description="a ledger record id: its receipt is at /v1/records/{id}/receipt")]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class EventOutcomeOut(_Out):
    """The answer for one submitted event."""

    event_id: str = Field(description="the event's id (stable per source and source_ref)")
    record_id: RecordId
    subject_ref: SubjectRefHex
    duplicate: bool = Field(description="submitted before: this is the first submission's record")
    score: int | None = Field(description="the subject's score after the batch (null for a duplicate)")
    level: str | None


class EventOutcomeList(_Out):
    """The answers for a batch, in the order the events were submitted (a repeat once)."""

    data: list[EventOutcomeOut]
    count: int


class CaseOut(_Out):
    """An objection, repair application or list case, and where it stands."""

    id: str
    kind: CaseKind
    subject_ref: SubjectRefHex
    event_id: str | None = Field(description="the event it is about (null for a list case)")
    state: CaseState
    opened_on: date
    due_on: date | None = Field(description="the answer or decision is due by this day")
    detail: CaseDetail


class CaseStepOut(_Out):
    """One step of a case, with its ``credit_workflow`` record."""

    step: str
    actor: str
    on: date
    record_id: RecordId


class CaseWithStepsOut(CaseOut):
    """A case with every step it went through, oldest first."""

    steps: list[CaseStepOut]


class CaseList(_Out):
    """Cases, oldest first."""

    data: list[CaseOut]
    count: int


class RepairRouteOut(_Out):
    """How a negative event can end early: repair (from ``eligible_from``), list-exit or expiry."""

    route: str
    eligible_from: date | None


class ReasonOut(_Out):
    """A reason for the score: an event that counts, its points, expiry and repair route."""

    code: str = Field(description="the event type")
    label: str
    event_id: str
    occurred_on: date
    source: str
    points: int
    expires_on: date | None
    repair: RepairRouteOut


class BlackListingOut(_Out):
    """A black-list entry: the lawful source list, the event that put the subject on it, its exit."""

    list: str
    name: str
    event_id: str
    entered_on: date
    exit_due: date
    exit_rule: str


class ListsOut(_Out):
    """The subject's list status."""

    black: list[BlackListingOut]
    red: bool
    red_eligible: bool


class ScoreOut(_Out):
    """A subject's score, level, points by category, lists and reasons, computed from the ledger."""

    subject_ref: str = Field(description="the subject's keyed reference, hex")
    as_of: date
    rulebook_version: str
    score: int
    level: str
    breakdown: dict[Category, int] = Field(description="points by category of credit information")
    lists: ListsOut
    reasons: list[ReasonOut]
    next_change_on: date | None = Field(description="the next day the score, level or lists may change")

    @classmethod
    def of(cls, subject_ref: str, explained: ExplainedScore) -> ScoreOut:
        """The public form of an explained assessment of ``subject_ref``."""
        return cls.model_validate({"subject_ref": subject_ref, **vars(explained)})


class SummaryOut(_Out):
    """Score, level and lists, as a ``credit_change`` record states them."""

    black: list[str]
    level: str
    red: bool
    score: int


class CauseOut(TypedDict):
    """Why a score was recomputed: event, objection, repair, list, rulebook or scheduled, and the
    case id or rulebook version it refers to (absent for events and scheduled recomputes)."""

    kind: str
    ref: NotRequired[str]


class RecordedRepairOut(_Out):
    """A reason's repair route, as recorded."""

    eligible_from: date | None
    route: str


class RecordedReasonOut(_Out):
    """A reason for the score, as a ``credit_change`` record states it."""

    code: str
    event: str = Field(validation_alias="event_id", description="the event id")
    expires_on: date | None
    occurred_on: date
    points: int
    repair: RecordedRepairOut
    source: str


class HistoryEntryOut(_Out):
    """One change of a subject's score: its ``credit_change`` record's document and record id."""

    after: SummaryOut
    as_of: date
    before: SummaryOut | None = Field(description="null for the subject's first score")
    breakdown: dict[str, int] = Field(description="the non-zero points by category")
    cause: Annotated[CauseOut, BeforeValidator(_cause)]
    reasons: list[RecordedReasonOut]
    rulebook: str = Field(description="the rulebook version it was computed under")
    rulebook_hash: str = Field(description="that version's SM3 canonical hash, hex")
    subject_kind: SubjectKind
    v: int
    record_id: RecordId


class HistoryList(_Out):
    """Every change of a subject's score, oldest first."""

    data: list[HistoryEntryOut]
    count: int


class EffectOut(_Out):
    """A case's outcome on an event and the day it took effect."""

    kind: EffectKind
    effective_on: date


class CaseOfEventOut(_Out):
    """A case about the event."""

    id: str
    kind: CaseKind
    state: CaseState


class EventOut(_Out):
    """One of the subject's events as its ledger record states it, with its effects and cases."""

    id: str
    type: str
    occurred_on: date
    ended_on: date | None
    quantity: int
    source: str
    source_ref: str
    record_id: RecordId
    effects: list[EffectOut]
    cases: list[CaseOfEventOut]


class EventList(_Out):
    """A subject's events."""

    data: list[EventOut]
    count: int


class StoredScoreOut(_Out):
    """The score as stored (the last recorded change; the live score is computed from the ledger)."""

    score: int
    level: str
    as_of: date
    rulebook_version: str


class SubjectOut(ScoreOut):
    """A subject's credit data for an auditor: the live assessment, the stored score, events, history."""

    stored: StoredScoreOut | None = Field(description="null when no score is stored")
    events: list[EventOut]
    history: list[HistoryEntryOut]


class AccessEntryOut(_Out):
    """A read of the subject's data: who, in what role, for what purpose, how often in its window."""

    accessor: str
    role: str
    purpose: str = Field(description="a code of the purpose catalogue")
    note: str | None
    what: str = Field(description="the kind of data read (score, history, events, measures, …)")
    at_us: int = Field(description="the first read in the window, µs since the epoch")
    count: int = Field(description="reads in the window")
    window_s: int | None
    record_id: RecordId
    last_at_us: int


class AccessLogOut(_Out):
    """Every read of the subject's data, newest first."""

    data: list[AccessEntryOut]
    count: int


class MeasureOut(_Out):
    """A reward or punishment measure that applies, its legal basis and the facts that trigger it."""

    id: str
    kind: str = Field(description="reward | punishment")
    effect: str
    legal_basis: str
    facts: list[str]


class MeasuresOut(_Out):
    """The measures that apply to an applicant in a scenario."""

    subject_ref: SubjectRefHex
    scenario: str
    score: int
    level: str
    red: bool
    black: list[str] = Field(description="the black lists the subject is on")
    measures: list[MeasureOut]


class ScenarioMeasuresOut(_Out):
    """The measures that applied in one scenario."""

    scenario: str
    measures: list[MeasureOut]


class ScoreOnDateOut(_Out):
    """A subject's credit on a past day, for checking a decision taken that day: recomputed from
    the ledger's records under the rulebook in force that day, beside the change recorded then."""

    subject_ref: SubjectRefHex
    day: date
    recomputed: ScoreOut = Field(
        description="the engine over the records now on record, as of the day (late reports included)"
    )
    measures: list[ScenarioMeasuresOut] = Field(
        description="every scenario's measures on the recomputed score"
    )
    recorded: HistoryEntryOut | None = Field(
        description="the score change in force that day as recorded then; null before the first score"
    )
    agrees: bool | None = Field(
        description="whether score, level and lists agree; false after a late report or a later "
        "expiry not yet recorded; null without a recorded score"
    )

    @classmethod
    def of(cls, subject_ref: bytes, on: ScoreOnDate, explained: ExplainedScore) -> ScoreOnDateOut:
        """The public form of a score on a date (``explained``: its assessment with names)."""
        return cls.model_validate(
            {
                "subject_ref": subject_ref,
                "day": on.day,
                "recomputed": ScoreOut.of(subject_ref.hex(), explained),
                "measures": [{"scenario": s, "measures": list(m)} for s, m in on.measures],
                "recorded": on.recorded,
                "agrees": on.agrees,
            }
        )


class PublishedSnapshotOut(_Out):
    """A list as just published: its ``credit_list`` record's document and record id."""

    v: Literal[1] = 1
    list: str
    as_of: date
    size: int
    by: str
    root: Hex = Field(description="SM3 Merkle root (RFC 9162) of the members' references, hex")
    record_id: RecordId


class SnapshotOut(_Out):
    """A published list snapshot."""

    list: str
    as_of: date
    size: int
    root: Hex = Field(description="SM3 Merkle root (RFC 9162) of the members' references, hex")
    record_id: RecordId
    seq: int = Field(description="its number, for /v1/credit/lists/snapshots/{seq}/proof")


class SnapshotList(_Out):
    """Published snapshots of a list, newest first."""

    data: list[SnapshotOut]
    count: int


class SnapshotProofOut(_Out):
    """Whether the subject was on the snapshot; for a member, its index and an RFC 9162 inclusion
    proof against ``root`` (both absent for a non-member)."""

    list: str
    as_of: date
    size: int
    root: Hex
    record_id: RecordId
    member: bool
    index: int | None = None
    proof: builtins.list[Hex] | None = Field(default=None, description="sibling hashes, hex, leaf to root")


class ReplayOut(_Out):
    """What recomputing a subject's history from the ledger found."""

    clean: bool
    changes: int = Field(description="score changes recomputed")
    events: int
    problems: list[str] = Field(description="each difference, naming its record and log index")


class RulebookVersionOut(_Out):
    """An activated rulebook version with its SM3 canonical hash and activation record."""

    version: str
    hash: Hex = Field(description="SM3 of the version's RFC 8785 canonical JSON, hex")
    activated_on: date
    activated_by: str
    record_id: RecordId


class RulebookVersionList(_Out):
    """Every activated rulebook version, oldest first."""

    data: list[RulebookVersionOut]
    count: int


class JobReportOut(_Out):
    """What a run of the daily jobs did (the CLI prints it)."""

    recomputed: int
    changed: int
    reminders: int
    overdue: int
    proposals: int


Listing = TypeVar(
    "Listing",
    CaseList,
    EventOutcomeList,
    HistoryList,
    EventList,
    AccessLogOut,
    SnapshotList,
    RulebookVersionList,
)


def listing(model: type[Listing], items: Sequence[object]) -> Listing:
    """A ``{"data": [...], "count": n}`` response of ``items`` (credit values, read by attribute)."""
    return model.model_validate({"data": list(items), "count": len(items)})
