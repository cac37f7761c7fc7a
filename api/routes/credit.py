"""The credit API: sources, approval systems, citizens and enterprises, officers and auditors.

Every read of a subject's credit data — by the subject, an approval system or an auditor — is
logged as an ``access`` record the subject can see (``GET /v1/credit/me/access-log``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.credit_requests import (
    CASE_ID,
    EVENT_ID,
    HEX64,
    KEY,
    AnswerIn,
    DecisionIn,
    EventsIn,
    MeasuresIn,
    ObjectionIn,
    RepairIn,
    ReplayIn,
)
from api.credit_responses import (
    AccessLogOut,
    CaseList,
    CaseWithStepsOut,
    EventList,
    EventOutcomeList,
    HistoryList,
    MeasureOut,
    MeasuresOut,
    PublishedSnapshotOut,
    ReplayOut,
    RulebookVersionList,
    ScoreOnDateOut,
    ScoreOut,
    SnapshotList,
    SnapshotProofOut,
    SubjectOut,
    listing,
)
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
from credit.access import MAX_NOTE, PURPOSE_CODE, SELF_QUERY, SUBJECT_ROLE
from credit.errors import UnknownSubject
from credit.models import CaseKind, CaseState
from credit.service import CreditService, Source
from ledger.core.receipt import Receipt
from ledger.errors import InvalidRequest

router = APIRouter(prefix="/v1/credit", tags=["credit"])
SubjectRefQuery = Annotated[str, Query(pattern=HEX64)]
PurposeQuery = Annotated[str, Query(pattern=PURPOSE_CODE, description="a code of the purpose catalogue")]
NoteQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_NOTE)]
CaseId = Annotated[str, Path(pattern=CASE_ID)]
EventId = Annotated[str, Path(pattern=EVENT_ID)]
ListName = Annotated[str, Path(pattern=KEY)]


def _source(client: Client) -> Source:
    if client.role is Role.ADMIN:
        raise Forbidden("use a source system's own key (its role names the source)", reason="source-required")
    if client.source_role is None:
        raise Forbidden(
            f"{client.name} has no source role (register it as source:<role>)", reason="source-role"
        )
    return Source(client.name, client.source_role)


# --- sources ------------------------------------------------------------------------------------


@router.post("/events", status_code=status.HTTP_201_CREATED, summary="Submit credit events (sources)")
def submit_events(body: EventsIn, credit: CreditDep, client: SourceDep) -> EventOutcomeList:
    """Record events as ``credit_event`` records and rescore each subject at once; idempotent by
    ``source_ref``."""
    outcomes = credit.submit_events(_source(client), [event.fields() for event in body.events])
    return listing(EventOutcomeList, outcomes)


@router.get("/objections", summary="Objections waiting for this source's answer")
def source_objections(credit: CreditDep, client: SourceDep) -> CaseList:
    """Open objections against this source's events, oldest first, with their deadlines."""
    cases = credit.cases(kind=CaseKind.OBJECTION, states=[CaseState.UNDER_OBJECTION], source=client.name)
    return listing(CaseList, cases)


@router.post("/objections/{case_id}/answer", summary="Answer an objection (sources)")
def answer_objection(
    case_id: CaseId, body: AnswerIn, credit: CreditDep, client: SourceDep
) -> CaseWithStepsOut:
    """Uphold, correct (a compensating event, never an edit) or declare unverifiable."""
    case = credit.answer_objection(
        case_id,
        _source(client),
        body.outcome,
        note=body.note or "",
        replacement=body.replacement.fields() if body.replacement else None,
        confirmed_by=body.confirmed_by,
    )
    return CaseWithStepsOut.model_validate(case)


@router.get("/repairs", summary="Repair applications waiting for a decision")
def pending_repairs(credit: CreditDep, client: OfficerOrSourceDep) -> CaseList:
    """Pending repairs: a source sees those of its own events, an officer all."""
    source = client.name if client.role is Role.SOURCE else None
    return listing(CaseList, credit.cases(kind=CaseKind.REPAIR, states=[CaseState.APPLIED], source=source))


@router.post("/repairs/{case_id}/decision", summary="Decide a repair application")
def decide_repair(
    case_id: CaseId, body: DecisionIn, credit: CreditDep, client: OfficerOrSourceDep
) -> CaseWithStepsOut:
    """Approve (the event stops counting today) or reject, naming the person who decided."""
    case = credit.case(case_id)
    if client.role is Role.SOURCE and case.detail.get("source") != client.name:
        raise Forbidden(
            "only the source that reported the event, or an officer, decides", reason="not-your-case"
        )
    decided = credit.decide_repair(
        case_id, f"{client.name}/{body.decided_by}", body.approve, note=body.note or ""
    )
    return CaseWithStepsOut.model_validate(decided)


# --- approval systems ----------------------------------------------------------------------------


@router.post("/measures", summary="Reward and punishment measures for an applicant (approval systems)")
def applicable_measures(body: MeasuresIn, credit: CreditDep, client: ApprovalDep) -> MeasuresOut:
    """The measures that apply in ``scenario``, each with its legal basis and triggering facts."""
    credit.check_purpose(body.purpose, client.role.value, body.purpose_note)
    ref, kind, _number = credit.subject_ref(body.subject)
    assessment, applied = credit.measures_for(ref, body.scenario, kind)
    # Turning an ID into its credit reference for a caller is itself an access: recorded, last.
    _client_read(credit, client, ref, "measures", body.purpose, body.purpose_note)
    return MeasuresOut(
        subject_ref=ref.hex(),
        scenario=body.scenario,
        score=assessment.score,
        level=assessment.level,
        red=assessment.lists.red_member,
        black=sorted({b.list for b in assessment.lists.black}),
        measures=[MeasureOut.model_validate(m) for m in applied],
    )


# --- citizens and enterprises ----------------------------------------------------------------------


def _client_read(
    credit: CreditService, client: Client, ref: bytes, what: str, purpose: str, note: str | None
) -> None:
    """Record a calling system's read of the subject's ``what`` (call last: a failed read records nothing)."""
    role = client.role.value
    credit.log_access(ref, accessor=client.name, role=role, purpose=purpose, what=what, note=note)


def _self_read(credit: CreditService, citizen: Citizen, what: str) -> None:
    credit.log_access(
        citizen.subject_ref, accessor="the subject", role=SUBJECT_ROLE, purpose=SELF_QUERY, what=what
    )


@router.get("/me", summary="My score, level, lists and reasons")
def my_score(credit: CreditDep, citizen: CitizenDep) -> ScoreOut:
    """Your current integrity points with the reasons behind them (free self-query)."""
    view = ScoreOut.of(citizen.subject_ref.hex(), credit.explain(credit.assess(citizen.subject_ref)))
    _self_read(credit, citizen, "score")  # last: a read that fails leaves no access record
    return view


@router.get("/me/on/{day}", summary="My score on a past day")
def my_score_on(day: date, credit: CreditDep, citizen: CitizenDep) -> ScoreOnDateOut:
    """Your score, level, lists and measures on ``day``: recomputed from the ledger under the
    rulebook then in force, beside the score recorded then (free self-query)."""
    on = credit.score_on(citizen.subject_ref, day, kind=citizen.kind)
    view = ScoreOnDateOut.of(citizen.subject_ref, on, credit.explain(on.assessment))
    _self_read(credit, citizen, "score-on-date")
    return view


@router.get("/me/history", summary="Every change of my score")
def my_history(credit: CreditDep, citizen: CitizenDep) -> HistoryList:
    """Score changes with their causes, reasons and ledger records."""
    changes = listing(HistoryList, credit.history(citizen.subject_ref))
    _self_read(credit, citizen, "history")
    return changes


@router.get("/me/events", summary="My credit events")
def my_events(credit: CreditDep, citizen: CitizenDep) -> EventList:
    """Every event on record, with effects (repaired, withdrawn) and cases (objections, repairs)."""
    events = listing(EventList, credit.events(citizen.subject_ref))
    _self_read(credit, citizen, "events")
    return events


@router.get("/me/events/{event_id}/receipt", summary="The receipt of one of my events")
def my_event_receipt(event_id: EventId, credit: CreditDep, ledger: LedgerDep, citizen: CitizenDep) -> Receipt:
    """The ledger receipt of the event's ``credit_event`` record: verify it offline."""
    return ledger.receipt(credit.event_record(citizen.subject_ref, event_id))


@router.get("/me/access-log", summary="Who read my credit data")
def my_access_log(credit: CreditDep, citizen: CitizenDep) -> AccessLogOut:
    """Every read of your data by anyone, newest first (kept at least 6 months; never deleted here)."""
    return listing(AccessLogOut, credit.access_log(citizen.subject_ref))


@router.get("/me/cases", summary="My objections and repair applications")
def my_cases(credit: CreditDep, citizen: CitizenDep) -> CaseList:
    """Objections, repairs and list decisions concerning you, with states and deadlines."""
    return listing(CaseList, credit.cases(ref=citizen.subject_ref))


@router.post("/me/objections", status_code=status.HTTP_201_CREATED, summary="Object to one of my events")
def file_objection(body: ObjectionIn, credit: CreditDep, citizen: CitizenDep) -> CaseWithStepsOut:
    """The event is marked "under objection" at once; the source answers within the deadline."""
    return CaseWithStepsOut.model_validate(
        credit.file_objection(citizen.subject_ref, body.event_id, body.statement)
    )


@router.post("/me/repairs", status_code=status.HTTP_201_CREATED, summary="Apply to repair one of my events")
def apply_repair(body: RepairIn, credit: CreditDep, citizen: CitizenDep) -> CaseWithStepsOut:
    """Possible after the tier's minimum period, with a signed credit commitment."""
    return CaseWithStepsOut.model_validate(
        credit.apply_repair(citizen.subject_ref, body.event_id, body.commitment)
    )


# --- officers -----------------------------------------------------------------------------------------


@router.get("/list-cases", summary="Proposed list entries and exits")
def list_cases(credit: CreditDep, _client: OfficerDep) -> CaseList:
    """Red-list proposals from the yearly review and from serious events, waiting for a person."""
    return listing(CaseList, credit.cases(kind=CaseKind.LIST, states=[CaseState.PROPOSED]))


@router.post("/list-cases/{case_id}/decision", summary="Confirm or reject a list change")
def decide_list_case(
    case_id: CaseId, body: DecisionIn, credit: CreditDep, client: OfficerDep
) -> CaseWithStepsOut:
    """A person, not the engine, confirms any change of list status."""
    decided = credit.decide_list_case(
        case_id, f"{client.name}/{body.decided_by}", body.approve, note=body.note or ""
    )
    return CaseWithStepsOut.model_validate(decided)


@router.post("/lists/{list_name}/snapshots", status_code=status.HTTP_201_CREATED, summary="Publish a list")
def publish_snapshot(list_name: ListName, credit: CreditDep, client: OfficerDep) -> PublishedSnapshotOut:
    """Publish the list as of today: a ``credit_list`` record with the Merkle root of its members."""
    return PublishedSnapshotOut.model_validate(credit.publish_list_snapshot(list_name, by=client.name))


# --- auditors and the public -----------------------------------------------------------------------------


@router.get("/lists/{list_name}/snapshots", summary="Published snapshots of a list")
def snapshots(list_name: ListName, credit: CreditDep, _client: AuditorDep) -> SnapshotList:
    """Snapshots, newest first: date, size, Merkle root and ledger record."""
    return listing(SnapshotList, credit.list_snapshots(list_name))


@router.get(
    "/lists/snapshots/{seq}/proof",
    summary="Was a subject on a published list?",
    response_model_exclude_none=True,  # a non-member's answer has no index and no proof
)
def snapshot_proof(
    seq: Annotated[int, Path(ge=1, le=2**53)],
    credit: CreditDep,
    client: AuditorDep,
    subject_ref: SubjectRefQuery,
    purpose: PurposeQuery,
    note: NoteQuery = None,
) -> SnapshotProofOut:
    """Membership with an RFC 9162 inclusion proof against the snapshot's root."""
    credit.check_purpose(purpose, client.role.value, note)
    ref = bytes.fromhex(subject_ref)
    proof = SnapshotProofOut.model_validate(credit.snapshot_proof(seq, ref))
    _client_read(credit, client, ref, "list-membership", purpose, note)
    return proof


@router.get("/subjects/{subject_ref}", summary="A subject's credit data (auditors)")
def subject_data(
    subject_ref: Annotated[str, Path(max_length=64)],
    credit: CreditDep,
    client: AuditorDep,
    purpose: PurposeQuery,
    note: NoteQuery = None,
) -> SubjectOut:
    """Score, reasons, events and history by keyed reference; the read is logged for the subject."""
    credit.check_purpose(purpose, client.role.value, note)
    ref = _ref(subject_ref)
    explained = credit.explain(credit.assess(ref))
    try:
        stored = credit.score(ref)
    except UnknownSubject:
        stored = None
    view = SubjectOut.model_validate(
        {
            "subject_ref": subject_ref,
            **vars(explained),
            "stored": stored,
            "events": credit.events(ref),
            "history": credit.history(ref),
        }
    )
    _client_read(credit, client, ref, "subject", purpose, note)
    return view


@router.get("/subjects/{subject_ref}/on/{day}", summary="A subject's score on a past day (auditors)")
def subject_score_on(
    subject_ref: Annotated[str, Path(max_length=64)],
    day: date,
    credit: CreditDep,
    client: AuditorDep,
    purpose: PurposeQuery,
    note: NoteQuery = None,
) -> ScoreOnDateOut:
    """What a subject's score, level, lists and measures were on ``day`` (e.g. to check a refusal
    taken that day): recomputed and as recorded then; the read is logged for the subject."""
    credit.check_purpose(purpose, client.role.value, note)
    ref = _ref(subject_ref)
    on = credit.score_on(ref, day)
    view = ScoreOnDateOut.of(ref, on, credit.explain(on.assessment))
    _client_read(credit, client, ref, "score-on-date", purpose, note)
    return view


@router.post("/replay", summary="Recompute a subject's history from the ledger (auditors)")
def replay(body: ReplayIn, credit: CreditDep, client: AuditorDep) -> ReplayOut:
    """Recompute every recorded score change from the anchored events and rulebooks; list differences."""
    credit.check_purpose(body.purpose, client.role.value, body.purpose_note)
    ref = _ref(body.subject_ref)
    report = ReplayOut.model_validate(credit.replay(ref))
    _client_read(credit, client, ref, "replay", body.purpose, body.purpose_note)
    return report


@router.get("/rulebooks", summary="Activated rulebook versions")
def rulebooks(credit: CreditDep) -> RulebookVersionList:
    """Every version with its SM3 canonical hash and activation record (public)."""
    return listing(RulebookVersionList, credit.rulebook_versions())


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
