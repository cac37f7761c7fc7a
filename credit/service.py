"""The credit service: one object composing credit's parts over one ledger (a thin facade).

Where each job lives:

- :mod:`credit.intake` — events from sources, validated against the rulebook and recorded;
- :mod:`credit.scoring` — where a score is computed and its changes recorded (and recompute-all);
- :mod:`credit.objections`, :mod:`credit.repairs`, :mod:`credit.list_cases` — the cases
  (:mod:`credit.cases` holds what they share);
- :mod:`credit.jobs` — the daily run and putting a rulebook in force;
- :mod:`credit.rulebooks_in_force` — the register of activated rulebook versions;
- :mod:`credit.subjects` — subject references, sealed personal data, crypto-shredding;
- :mod:`credit.lists` — list members, snapshots and proofs;
- :mod:`credit.views` and :mod:`credit.access_log` — the read side and who read what;
- :mod:`credit.unit_of_work` — the only place that writes to the ledger and its database.

The clock is injected (``today``): jobs and tests travel in time by passing another one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from credit.access import AccessPolicy, load_access_policy
from credit.access_log import AccessLog
from credit.as_of import PastScores, ScoreOnDate
from credit.engine import Assessment
from credit.identifiers import SubjectKind
from credit.intake import Intake, Source, event_id_of
from credit.integrity import IntegrityReport, scan
from credit.jobs import DailyJobs, RulebookActivation
from credit.list_cases import ListCases
from credit.lists import Lists
from credit.measures import AppliedMeasure
from credit.models import (
    AccessEntry,
    Case,
    CaseKind,
    CaseState,
    CaseWithSteps,
    ChangeCause,
    EventOutcome,
    EventView,
    ExplainedScore,
    HistoryEntry,
    JobReport,
    ListSnapshot,
    ObjectionOutcome,
    PersonalData,
    RulebookVersion,
    SnapshotProof,
    StoredScore,
    SubjectReference,
)
from credit.objections import Objections
from credit.repairs import Repairs
from credit.rulebook import Rulebook
from credit.rulebooks_in_force import RulebooksInForce
from credit.scoring import Progress, Scoring
from credit.subjects import Subjects
from credit.unit_of_work import LedgerGateway
from credit.views import Views, explain
from credit.workdays import WorkingCalendar
from ledger.log import Ledger

__all__ = ["CreditService", "EventOutcome", "JobReport", "ReplayReport", "Source", "event_id_of"]
ReplayReport = IntegrityReport  # what a replay found (the name the API and CLI use)


class CreditService:
    """Credit operations over one ledger: each method hands over to the part that does the job."""

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
        self.calendar = calendar or WorkingCalendar()
        self.today = today
        self.gateway = LedgerGateway(ledger)
        self.rulebooks = RulebooksInForce(self.gateway, today=today)
        self.subjects = Subjects(self.gateway, master_key=master_key, today=today)
        self.scoring = Scoring(self.gateway, self.rulebooks, self.subjects, today=today)
        self.views = Views(self.gateway)
        self.past_scores = PastScores(self.gateway, self.rulebooks, self.subjects, self.views, today=today)
        self.access = AccessLog(self.gateway, access_policy or load_access_policy())
        self.intake = Intake(self.gateway, self.rulebooks, self.subjects, self.scoring, today=today)
        self.objections = Objections(
            self.gateway,
            self.rulebooks,
            self.subjects,
            self.intake,
            self.scoring,
            self.views,
            calendar=self.calendar,
            today=today,
        )
        self.repairs = Repairs(
            self.gateway, self.rulebooks, self.scoring, self.views, calendar=self.calendar, today=today
        )
        self.list_cases = ListCases(self.gateway, self.rulebooks, self.scoring, self.views, today=today)
        self.jobs = DailyJobs(self.gateway, self.rulebooks, self.scoring, calendar=self.calendar, today=today)
        self.activation = RulebookActivation(self.rulebooks, self.scoring)
        self.lists = Lists(self.gateway, self.rulebooks, today=today)

    @property
    def access_policy(self) -> AccessPolicy:
        """The catalogue of purposes and the record windows in force."""
        return self.access.policy

    @access_policy.setter
    def access_policy(self, policy: AccessPolicy) -> None:
        self.access.policy = policy

    # --- set-up and rulebooks -------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the credit tables (idempotent)."""
        self.gateway.create_schema()

    def ensure_rulebook(self) -> str:
        """The version in force, activating the shipped default first if none is (set-up only)."""
        return self.activation.ensure()

    def active_rulebook(self) -> Rulebook:
        """The rulebook in force (``no-rulebook`` if none was activated; never activates one)."""
        return self.rulebooks.in_force()

    def rulebook(self, version: str) -> Rulebook:
        """An activated rulebook version, checked against the hash recorded at activation."""
        return self.rulebooks.version(version)

    def rulebook_versions(self) -> list[RulebookVersion]:
        """Every activated version: version, hash, activation date and record."""
        return self.rulebooks.versions()

    def activate_rulebook(self, rulebook: Rulebook, *, by: str, workers: int = 1) -> JobReport:
        """Put ``rulebook`` in force: record its canonical hash, then recompute every subject."""
        return self.activation.activate(rulebook, by=by, workers=workers)

    # --- subjects --------------------------------------------------------------------------------

    def subject_ref(self, identifier: str, kind: SubjectKind | None = None) -> SubjectReference:
        """Validate an identifier; its keyed reference, kind and canonical form."""
        return self.subjects.reference(identifier, kind)

    def subject_kind(self, ref: bytes) -> SubjectKind:
        """A known subject's kind."""
        return self.subjects.kind_of(ref)

    def personal_data(self, ref: bytes) -> PersonalData:
        """The subject's identifier and name, decrypted (for the subject and authorised officials)."""
        return self.subjects.personal_data(ref)

    def erase_personal_data(self, ref: bytes, *, by: str) -> None:
        """Crypto-shred the subject's personal data; every receipt and proof stays valid."""
        self.subjects.erase(ref, by=by)

    # --- events and scores -------------------------------------------------------------------------

    def submit_events(self, source: Source, items: Sequence[Mapping[str, Any]]) -> list[EventOutcome]:
        """Accept a batch of events from one source, all or none; rescore each subject at once."""
        return self.intake.submit(source, items)

    def recompute(
        self,
        refs: Sequence[bytes],
        *,
        cause: ChangeCause,
        today: date | None = None,
        chunk: int = 1000,
        contiguous: bool = False,
    ) -> JobReport:
        """Rescore ``refs``, recording the changes (see :meth:`credit.scoring.Scoring.recompute`)."""
        return self.scoring.recompute(refs, cause=cause, today=today, chunk=chunk, contiguous=contiguous)

    def recompute_all(
        self,
        *,
        cause: ChangeCause,
        today: date | None = None,
        workers: int = 1,
        chunk: int = 5000,
        progress: Progress | None = None,
    ) -> JobReport:
        """Rescore every subject (see :meth:`credit.scoring.Scoring.recompute_all`)."""
        return self.scoring.recompute_all(
            cause=cause, today=today, workers=workers, chunk=chunk, progress=progress
        )

    def assess(self, ref: bytes, *, as_of: date | None = None, kind: SubjectKind | None = None) -> Assessment:
        """A subject's assessment now (or at ``as_of``), computed from its ledger records."""
        return self.scoring.assess(ref, as_of=as_of, kind=kind)

    def score_on(self, ref: bytes, day: date, *, kind: SubjectKind | None = None) -> ScoreOnDate:
        """A subject's score, level, lists and measures on a past ``day`` (:mod:`credit.as_of`)."""
        return self.past_scores.on(ref, day, kind=kind)

    def explain(self, assessment: Assessment) -> ExplainedScore:
        """An assessment with its rulebook's names for its lists and labels for its reasons."""
        return explain(assessment, self.rulebooks.version(assessment.rulebook_version))

    def measures_for(
        self, ref: bytes, scenario: str, kind: SubjectKind
    ) -> tuple[Assessment, list[AppliedMeasure]]:
        """The measures that apply to a subject in a scenario (an unknown subject has a fresh account)."""
        return self.scoring.measures_for(ref, scenario, kind)

    # --- reading ---------------------------------------------------------------------------------

    def score(self, ref: bytes) -> StoredScore:
        """The stored current score of a subject."""
        return self.views.score(ref)

    def history(self, ref: bytes) -> list[HistoryEntry]:
        """Every score change of a subject, oldest first, read from its ``credit_change`` records."""
        return self.views.history(ref)

    def events(self, ref: bytes) -> list[EventView]:
        """A subject's events with their effects and cases."""
        return self.views.events(ref)

    def event_record(self, ref: bytes, event_id: str) -> str:
        """The ledger record id of one of the subject's events."""
        return self.views.event_record(ref, event_id)

    def case(self, case_id: str) -> CaseWithSteps:
        """A case with its steps."""
        return self.views.case(case_id)

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
        return self.views.cases(ref=ref, kind=kind, states=states, source=source, limit=limit)

    # --- access log ------------------------------------------------------------------------------

    def check_purpose(self, purpose: str, role: str, note: str | None = None) -> tuple[str, str | None]:
        """A reader's purpose code and note, checked against the catalogue; call before reading."""
        return self.access.check_purpose(purpose, role, note)

    def log_access(
        self, ref: bytes, *, accessor: str, role: str, purpose: str, what: str, note: str | None = None
    ) -> None:
        """Record a read of the subject's data (call it last, once the read succeeded)."""
        self.access.record(ref, accessor=accessor, role=role, purpose=purpose, what=what, note=note)

    def access_log(self, ref: bytes, *, limit: int = 200) -> list[AccessEntry]:
        """Who read the subject's data, newest first."""
        return self.access.entries(ref, limit=limit)

    # --- cases -----------------------------------------------------------------------------------

    def file_objection(self, ref: bytes, event_id: str, statement: str) -> CaseWithSteps:
        """A subject objects to one of its events (see :meth:`credit.objections.Objections.file`)."""
        return self.objections.file(ref, event_id, statement)

    def answer_objection(
        self,
        case_id: str,
        source: Source,
        outcome: ObjectionOutcome,
        *,
        note: str = "",
        replacement: Mapping[str, Any] | None = None,
        confirmed_by: str | None = None,
    ) -> CaseWithSteps:
        """The source's answer to an objection (see :meth:`credit.objections.Objections.answer`)."""
        return self.objections.answer(
            case_id, source, outcome, note=note, replacement=replacement, confirmed_by=confirmed_by
        )

    def apply_repair(self, ref: bytes, event_id: str, commitment: str) -> CaseWithSteps:
        """A subject applies to repair a negative event (see :meth:`credit.repairs.Repairs.apply`)."""
        return self.repairs.apply(ref, event_id, commitment)

    def decide_repair(self, case_id: str, actor: str, approve: bool, *, note: str = "") -> CaseWithSteps:
        """The department's decision on a repair (see :meth:`credit.repairs.Repairs.decide`)."""
        return self.repairs.decide(case_id, actor, approve, note=note)

    def decide_list_case(self, case_id: str, officer: str, confirm: bool, *, note: str = "") -> CaseWithSteps:
        """A person confirms or rejects a proposed list entry or exit."""
        return self.list_cases.decide(case_id, officer, confirm, note=note)

    # --- jobs, replay and lists --------------------------------------------------------------------

    def run_daily(self, today: date | None = None) -> JobReport:
        """The daily jobs (see :meth:`credit.jobs.DailyJobs.run`)."""
        return self.jobs.run(today)

    def red_list_review(self, today: date) -> int:
        """The yearly red-list review: the number of proposals made."""
        return self.jobs.red_list_review(today)

    def replay(self, ref: bytes) -> ReplayReport:
        """Recompute one subject's whole history from its ledger records and compare every row of
        the subject with its record (see :mod:`credit.integrity`)."""
        self.subjects.kind_of(ref)
        return scan(self.ledger, rulebook_of=self.rulebooks.version, subject=ref)

    def replay_all(self) -> ReplayReport:
        """Every stored row against its record, every credit record against its row, and every
        score change recomputed — streaming, one range of subjects at a time."""
        return scan(self.ledger, rulebook_of=self.rulebooks.version)

    def check_rows(self) -> ReplayReport:
        """:meth:`replay_all` without the recomputation: the row check ``trustledger audit`` runs."""
        return scan(self.ledger)

    def list_members(self, list_name: str) -> list[bytes]:
        """Subjects on ``list_name`` now ("red", or a black list's key), sorted by reference."""
        return self.lists.members(list_name)

    def publish_list_snapshot(self, list_name: str, *, by: str) -> ListSnapshot:
        """Publish a list as of today (a ``credit_list`` record of its members' Merkle root)."""
        return self.lists.publish(list_name, by=by)

    def list_snapshots(self, list_name: str, *, limit: int = 50) -> list[ListSnapshot]:
        """Published snapshots of a list, newest first."""
        return self.lists.snapshots(list_name, limit=limit)

    def snapshot_proof(self, seq: int, ref: bytes) -> SnapshotProof:
        """Whether ``ref`` was on a published snapshot, with an inclusion proof if so."""
        return self.lists.proof(seq, ref)
