"""The credit API: sources, approval systems, citizens and enterprises, officers and auditors.

Every read of a subject's credit data — by the subject, an approval system or an auditor — is
logged as an ``access`` record the subject can see (``GET /v1/credit/me/access-log``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.deps import (
    ApprovalDep,
    AuditorDep,
    Citizen,
    CitizenDep,
    Client,
    CreditDep,
    LedgerDep,
    OfficerDep,
    OfficerOrSourceDep,
    Role,
    SourceDep,
)
from api.errors import Forbidden
from credit.access import MAX_NOTE, PURPOSE_CODE, SELF_QUERY, SUBJECT_ROLE, check_text
from credit.engine import Assessment
from credit.errors import CreditError, UnknownSubject
from credit.service import CreditService, Source
from ledger.core.receipt import Receipt
from ledger.errors import InvalidRequest

router = APIRouter(prefix="/v1/credit", tags=["credit"])
_HEX64 = r"^[0-9a-f]{64}$"
_KEY = r"^[a-z][a-z0-9_]{0,63}$"  # rulebook keys: event types, scenarios, lists
_EVENT_ID = r"^[0-9a-f]{40}$"
_CASE_ID = r"^[0-9a-f]{32}$"
_RECORD_ID = r"^[0-9a-f]{46}$"
_IDENTIFIER = r"^[0-9A-Za-z]{15,18}$"  # 18-digit resident IDs (15 for old cards), 18-character codes


def _visible(max_length: int, *, blank: bool = True) -> AfterValidator:
    """Bounded human text (see :func:`credit.access.check_text`) as a pydantic check. With ``blank``
    a blank value passes through, for the service to refuse with its own reason (statement-required,
    source-ref, …)."""

    def check(value: str) -> str:
        if blank and not value.strip():
            return value
        try:
            check_text(value, name="text", max_length=max_length)
        except CreditError as e:
            raise ValueError(e.message.removeprefix("text ")) from e
        return value  # unchanged: a source_ref is an idempotency key

    return AfterValidator(check)


Name = Annotated[str, Field(min_length=1, max_length=64), _visible(64)]
Reference = Annotated[str, Field(max_length=200), _visible(200)]
Note = Annotated[str, Field(min_length=1, max_length=2000), _visible(2000)]
Person = Annotated[str, Field(min_length=1, max_length=128), _visible(128, blank=False)]
Statement = Annotated[str, Field(max_length=4000), _visible(4000)]
Commitment = Annotated[str, Field(max_length=8000), _visible(8000)]
PurposeCode = Annotated[str, Field(pattern=PURPOSE_CODE, description="a code of the purpose catalogue")]
PurposeNote = Annotated[str, Field(min_length=1, max_length=MAX_NOTE), _visible(MAX_NOTE, blank=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _EventFields(BaseModel):
    # Other fields are kept so that the service can refuse each with its reason (a field 征信业管理条例
    # art. 14 forbids, one needing consent, an unknown one).
    model_config = ConfigDict(extra="allow", frozen=True)

    type: Annotated[str, Field(pattern=_KEY, description="an event type of the rulebook")]
    subject_kind: Literal["person", "organization"] | None = None
    # Dates are bounded here and parsed by the service, which names the problem (invalid-date).
    occurred_on: Annotated[str, Field(min_length=1, max_length=10, description="YYYY-MM-DD")]
    ended_on: Annotated[str, Field(min_length=1, max_length=10)] | None = None
    quantity: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 1
    refers_to: Reference | None = Field(default=None, description="the source_ref of the listing it ends")
    evidence_record_id: Annotated[str, Field(pattern=_RECORD_ID)] | None = None

    def fields(self) -> dict[str, Any]:
        """The fields the client sent (defaults are the service's to apply)."""
        return self.model_dump(exclude_unset=True)


class EventIn(_EventFields):
    """One credit event from a source."""

    subject: Annotated[
        str, Field(pattern=_IDENTIFIER, description="resident ID or unified social credit code")
    ]
    name: Name | None = None
    source_ref: Reference = Field(description="the source document's reference (idempotency key)")


class ReplacementIn(_EventFields):
    """The corrected event replacing a withdrawn one (its subject is the objection's)."""

    source_ref: Reference | None = None


class EventsIn(_In):
    """A batch of credit events from one source (all or none). Each event is an object with
    ``type``, ``subject`` (resident ID or unified social credit code), ``occurred_on``,
    ``source_ref`` and optionally ``name``, ``ended_on``, ``quantity``, ``refers_to``,
    ``evidence_record_id``; any other field is refused with the reason."""

    events: list[EventIn] = Field(min_length=1, max_length=5000)


class AnswerIn(_In):
    """A source's answer to an objection."""

    outcome: Literal["uphold", "correct", "cannot-verify"]
    note: Note | None = None
    replacement: ReplacementIn | None = Field(default=None, description="a corrected event (correct only)")
    confirmed_by: Person | None = Field(default=None, description="the person confirming")


class DecisionIn(_In):
    """A decision on a repair application or a list proposal."""

    approve: bool
    decided_by: Person = Field(description="the person deciding")
    note: Note | None = None


class MeasuresIn(_In):
    """Which measures apply to an applicant in a scenario (the "一键搞定" check)."""

    subject: Annotated[
        str, Field(pattern=_IDENTIFIER, description="resident ID or unified social credit code")
    ]
    scenario: Annotated[str, Field(pattern=_KEY)]
    purpose: PurposeCode
    purpose_note: PurposeNote | None = Field(
        default=None, description="shown to the subject with the purpose"
    )


class ObjectionIn(_In):
    """An objection against one of the subject's events."""

    event_id: Annotated[str, Field(pattern=_EVENT_ID)]
    statement: Statement


class RepairIn(_In):
    """A repair application with the signed credit commitment (信用承诺书)."""

    event_id: Annotated[str, Field(pattern=_EVENT_ID)]
    commitment: Commitment


class ReplayIn(_In):
    """Which subject to replay, and why."""

    subject_ref: str = Field(pattern=_HEX64)
    purpose: PurposeCode
    purpose_note: PurposeNote | None = None


SubjectRefQuery = Annotated[str, Query(pattern=_HEX64)]
PurposeQuery = Annotated[str, Query(pattern=PURPOSE_CODE, description="a code of the purpose catalogue")]
NoteQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_NOTE)]
CaseId = Annotated[str, Path(pattern=_CASE_ID)]
EventId = Annotated[str, Path(pattern=_EVENT_ID)]
ListName = Annotated[str, Path(pattern=_KEY)]


def _source(client: Client) -> Source:
    if client.role is Role.ADMIN:
        raise Forbidden("use a source system's own key (its role names the source)", reason="source-required")
    if client.source_role is None:
        raise Forbidden(
            f"{client.name} has no source role (register it as source:<role>)", reason="source-role"
        )
    return Source(client.name, client.source_role)


def assessment_view(a: Assessment, service: CreditService) -> dict[str, Any]:
    """The public form of an assessment: score, level, breakdown, lists and reasons."""
    rulebook = service.rulebook(a.rulebook_version)
    return {
        "as_of": a.as_of.isoformat(),
        "rulebook_version": a.rulebook_version,
        "score": a.score,
        "level": a.level,
        "breakdown": {k.value: v for k, v in a.breakdown.items()},
        "lists": {
            "black": [
                {
                    "list": b.list,
                    "name": rulebook.black_lists[b.list].name,
                    "event_id": b.event_id,
                    "entered_on": b.entered_on.isoformat(),
                    "exit_due": b.exit_due.isoformat(),
                    "exit_rule": rulebook.black_lists[b.list].exit_rule,
                }
                for b in a.lists.black
            ],
            "red": a.lists.red_member,
            "red_eligible": a.lists.red_eligible,
        },
        "reasons": [
            {
                "code": r.code,
                "label": rulebook.event_types[r.code].label,
                "event_id": r.event_id,
                "occurred_on": r.occurred_on.isoformat(),
                "source": r.source,
                "points": r.points,
                "expires_on": r.expires_on.isoformat() if r.expires_on else None,
                "repair": {
                    "route": r.repair.route,
                    "eligible_from": r.repair.eligible_from.isoformat() if r.repair.eligible_from else None,
                },
            }
            for r in a.reasons
        ],
        "next_change_on": a.next_change_on.isoformat() if a.next_change_on else None,
    }


# --- sources ------------------------------------------------------------------------------------


@router.post("/events", status_code=status.HTTP_201_CREATED, summary="Submit credit events (sources)")
def submit_events(body: EventsIn, credit: CreditDep, client: SourceDep) -> dict[str, Any]:
    """Record events as ``credit_event`` records and rescore each subject at once; idempotent by
    ``source_ref``."""
    outcomes = credit.submit_events(_source(client), [event.fields() for event in body.events])
    return {"data": [o.__dict__ for o in outcomes], "count": len(outcomes)}


@router.get("/objections", summary="Objections waiting for this source's answer")
def source_objections(credit: CreditDep, client: SourceDep) -> dict[str, Any]:
    """Open objections against this source's events, oldest first, with their deadlines."""
    cases = credit.cases(kind="objection", states=["under-objection"], source=client.name)
    return {"data": cases, "count": len(cases)}


@router.post("/objections/{case_id}/answer", summary="Answer an objection (sources)")
def answer_objection(case_id: CaseId, body: AnswerIn, credit: CreditDep, client: SourceDep) -> dict[str, Any]:
    """Uphold, correct (a compensating event, never an edit) or declare unverifiable."""
    return credit.answer_objection(
        case_id,
        _source(client),
        body.outcome,
        note=body.note or "",
        replacement=body.replacement.fields() if body.replacement else None,
        confirmed_by=body.confirmed_by,
    )


@router.get("/repairs", summary="Repair applications waiting for a decision")
def pending_repairs(credit: CreditDep, client: OfficerOrSourceDep) -> dict[str, Any]:
    """Pending repairs: a source sees those of its own events, an officer all."""
    source = client.name if client.role is Role.SOURCE else None
    cases = credit.cases(kind="repair", states=["applied"], source=source)
    return {"data": cases, "count": len(cases)}


@router.post("/repairs/{case_id}/decision", summary="Decide a repair application")
def decide_repair(
    case_id: CaseId, body: DecisionIn, credit: CreditDep, client: OfficerOrSourceDep
) -> dict[str, Any]:
    """Approve (the event stops counting today) or reject, naming the person who decided."""
    case = credit.case(case_id)
    if client.role is Role.SOURCE and case["detail"].get("source") != client.name:
        raise Forbidden(
            "only the source that reported the event, or an officer, decides", reason="not-your-case"
        )
    return credit.decide_repair(
        case_id, f"{client.name}/{body.decided_by}", body.approve, note=body.note or ""
    )


# --- approval systems ----------------------------------------------------------------------------


@router.post("/measures", summary="Reward and punishment measures for an applicant (approval systems)")
def applicable_measures(body: MeasuresIn, credit: CreditDep, client: ApprovalDep) -> dict[str, Any]:
    """The measures that apply in ``scenario``, each with its legal basis and triggering facts."""
    credit.check_purpose(body.purpose, client.role.value, body.purpose_note)
    ref, kind, _number = credit.subject_ref(body.subject)
    assessment, applied = credit.measures_for(ref, body.scenario, kind)
    # Turning an ID into its credit reference for a caller is itself an access: recorded, last.
    credit.log_access(
        ref,
        accessor=client.name,
        role=client.role.value,
        purpose=body.purpose,
        what="measures",
        note=body.purpose_note,
    )
    return {
        "subject_ref": ref.hex(),
        "scenario": body.scenario,
        "score": assessment.score,
        "level": assessment.level,
        "red": assessment.lists.red_member,
        "black": sorted({b.list for b in assessment.lists.black}),
        "measures": [m.__dict__ for m in applied],
    }


# --- citizens and enterprises ----------------------------------------------------------------------


def _self_read(credit: CreditService, citizen: Citizen, what: str) -> None:
    credit.log_access(
        citizen.subject_ref, accessor="the subject", role=SUBJECT_ROLE, purpose=SELF_QUERY, what=what
    )


@router.get("/me", summary="My score, level, lists and reasons")
def my_score(credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """Your current integrity points with the reasons behind them (free self-query)."""
    view = {
        "subject_ref": citizen.subject_ref.hex(),
        **assessment_view(credit.assess(citizen.subject_ref), credit),
    }
    _self_read(credit, citizen, "score")  # last: a read that fails leaves no access record
    return view


@router.get("/me/history", summary="Every change of my score")
def my_history(credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """Score changes with their causes, reasons and ledger records."""
    changes = credit.history(citizen.subject_ref)
    _self_read(credit, citizen, "history")
    return {"data": changes, "count": len(changes)}


@router.get("/me/events", summary="My credit events")
def my_events(credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """Every event on record, with effects (repaired, withdrawn) and cases (objections, repairs)."""
    events = credit.events(citizen.subject_ref)
    _self_read(credit, citizen, "events")
    return {"data": events, "count": len(events)}


@router.get("/me/events/{event_id}/receipt", summary="The receipt of one of my events")
def my_event_receipt(event_id: EventId, credit: CreditDep, ledger: LedgerDep, citizen: CitizenDep) -> Receipt:
    """The ledger receipt of the event's ``credit_event`` record: verify it offline."""
    return ledger.receipt(credit.event_record(citizen.subject_ref, event_id))


@router.get("/me/access-log", summary="Who read my credit data")
def my_access_log(credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """Every read of your data by anyone, newest first (kept at least 6 months; never deleted here)."""
    entries = credit.access_log(citizen.subject_ref)
    return {"data": entries, "count": len(entries)}


@router.get("/me/cases", summary="My objections and repair applications")
def my_cases(credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """Objections, repairs and list decisions concerning you, with states and deadlines."""
    cases = credit.cases(ref=citizen.subject_ref)
    return {"data": cases, "count": len(cases)}


@router.post("/me/objections", status_code=status.HTTP_201_CREATED, summary="Object to one of my events")
def file_objection(body: ObjectionIn, credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """The event is marked "under objection" at once; the source answers within the deadline."""
    return credit.file_objection(citizen.subject_ref, body.event_id, body.statement)


@router.post("/me/repairs", status_code=status.HTTP_201_CREATED, summary="Apply to repair one of my events")
def apply_repair(body: RepairIn, credit: CreditDep, citizen: CitizenDep) -> dict[str, Any]:
    """Possible after the tier's minimum period, with a signed credit commitment."""
    return credit.apply_repair(citizen.subject_ref, body.event_id, body.commitment)


# --- officers -----------------------------------------------------------------------------------------


@router.get("/list-cases", summary="Proposed list entries and exits")
def list_cases(credit: CreditDep, _client: OfficerDep) -> dict[str, Any]:
    """Red-list proposals from the yearly review and from serious events, waiting for a person."""
    cases = credit.cases(kind="list", states=["proposed"])
    return {"data": cases, "count": len(cases)}


@router.post("/list-cases/{case_id}/decision", summary="Confirm or reject a list change")
def decide_list_case(
    case_id: CaseId, body: DecisionIn, credit: CreditDep, client: OfficerDep
) -> dict[str, Any]:
    """A person, not the engine, confirms any change of list status."""
    return credit.decide_list_case(
        case_id, f"{client.name}/{body.decided_by}", body.approve, note=body.note or ""
    )


@router.post("/lists/{list_name}/snapshots", status_code=status.HTTP_201_CREATED, summary="Publish a list")
def publish_snapshot(list_name: ListName, credit: CreditDep, client: OfficerDep) -> dict[str, Any]:
    """Publish the list as of today: a ``credit_list`` record with the Merkle root of its members."""
    return credit.publish_list_snapshot(list_name, by=client.name)


# --- auditors and the public -----------------------------------------------------------------------------


@router.get("/lists/{list_name}/snapshots", summary="Published snapshots of a list")
def snapshots(list_name: ListName, credit: CreditDep, _client: AuditorDep) -> dict[str, Any]:
    """Snapshots, newest first: date, size, Merkle root and ledger record."""
    data = credit.list_snapshots(list_name)
    return {"data": data, "count": len(data)}


@router.get("/lists/snapshots/{seq}/proof", summary="Was a subject on a published list?")
def snapshot_proof(
    seq: Annotated[int, Path(ge=1, le=2**53)],
    credit: CreditDep,
    client: AuditorDep,
    subject_ref: SubjectRefQuery,
    purpose: PurposeQuery,
    note: NoteQuery = None,
) -> dict[str, Any]:
    """Membership with an RFC 9162 inclusion proof against the snapshot's root."""
    credit.check_purpose(purpose, client.role.value, note)
    ref = bytes.fromhex(subject_ref)
    proof = credit.snapshot_proof(seq, ref)
    credit.log_access(
        ref, accessor=client.name, role=client.role.value, purpose=purpose, what="list-membership", note=note
    )
    return proof


@router.get("/subjects/{subject_ref}", summary="A subject's credit data (auditors)")
def subject_data(
    subject_ref: Annotated[str, Path(max_length=64)],
    credit: CreditDep,
    client: AuditorDep,
    purpose: PurposeQuery,
    note: NoteQuery = None,
) -> dict[str, Any]:
    """Score, reasons, events and history by keyed reference; the read is logged for the subject."""
    credit.check_purpose(purpose, client.role.value, note)
    ref = _ref(subject_ref)
    assessment = credit.assess(ref)
    view = {
        "subject_ref": subject_ref,
        **assessment_view(assessment, credit),
        "stored": _stored_view(credit, ref),
        "events": credit.events(ref),
        "history": credit.history(ref),
    }
    credit.log_access(
        ref, accessor=client.name, role=client.role.value, purpose=purpose, what="subject", note=note
    )
    return view


@router.post("/replay", summary="Recompute a subject's history from the ledger (auditors)")
def replay(body: ReplayIn, credit: CreditDep, client: AuditorDep) -> dict[str, Any]:
    """Recompute every recorded score change from the anchored events and rulebooks; list differences."""
    credit.check_purpose(body.purpose, client.role.value, body.purpose_note)
    ref = _ref(body.subject_ref)
    report = credit.replay(ref)
    credit.log_access(
        ref,
        accessor=client.name,
        role=client.role.value,
        purpose=body.purpose,
        what="replay",
        note=body.purpose_note,
    )
    return {
        "clean": report.clean,
        "changes": report.changes,
        "events": report.events,
        "problems": report.problems,
    }


@router.get("/rulebooks", summary="Activated rulebook versions")
def rulebooks(credit: CreditDep) -> dict[str, Any]:
    """Every version with its SM3 canonical hash and activation record (public)."""
    data = credit.rulebook_versions()
    return {"data": data, "count": len(data)}


@router.get("/rulebooks/{version}", summary="One rulebook version, canonical")
def rulebook(
    version: Annotated[str, Path(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,39}$")], credit: CreditDep
) -> Response:
    """The rulebook as RFC 8785 canonical JSON: hash it with SM3 to check it against its record."""
    return Response(credit.rulebook(version).canonical_json(), media_type="application/json")


def _ref(text: str) -> bytes:
    try:
        ref = bytes.fromhex(text)
    except ValueError:
        ref = b""
    if len(ref) != 32:
        raise InvalidRequest("subject_ref must be 64 hex digits", reason="invalid-subject-ref")
    return ref


def _stored_view(credit: CreditService, ref: bytes) -> dict[str, Any] | None:
    try:
        row = credit.score(ref)
    except UnknownSubject:
        return None
    return {
        "score": row["score"],
        "level": row["level"],
        "as_of": row["as_of"].isoformat(),
        "rulebook_version": row["rulebook_version"],
    }
