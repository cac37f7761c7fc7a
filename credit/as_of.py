"""A subject's credit as it stood on a past date: what an auditor needs to check a decision.

Two answers, side by side, because they can differ and the difference is the point of an audit:

- **recomputed**: the engine run over the subject's ledger records with the date as ``as_of`` and
  the rulebook version that was in force that day (the last one activated on or before it). Events
  dated after the day do not count yet; objection corrections and repairs count only from the day
  they took effect; red-list decisions likewise. This is what the score *was* under the facts now
  on record — including facts dated before the day but reported after it.
- **recorded**: the score change in force that day as the log holds it (the last ``credit_change``
  record dated on or before the day): what the service had stated and anchored at the time, and so
  what a decision taken that day could rely on.

They agree unless a fact was reported late, or a correction withdrew an event with effect from a
later day; ``agrees`` says which, and both carry what they rest on (rulebook version, record id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from credit.engine import Assessment, evaluate
from credit.errors import InvalidDate, NotFoundError, UnknownSubject
from credit.identifiers import SubjectKind
from credit.measures import AppliedMeasure, measures
from credit.models import HistoryEntry, RulebookVersion, ScoreSummary
from credit.rulebook import Rulebook
from credit.rulebooks_in_force import RulebooksInForce
from credit.served import ServedSubject, served_subject
from credit.subjects import Subjects
from credit.unit_of_work import LedgerGateway
from credit.views import Views


@dataclass(frozen=True)
class ScoreOnDate:
    """A subject's score, level, lists and measures on one past date (see the module docstring)."""

    day: date
    assessment: Assessment  # recomputed from the records under the rulebook in force that day
    measures: tuple[tuple[str, tuple[AppliedMeasure, ...]], ...]  # (scenario, measures) for each scenario
    recorded: HistoryEntry | None  # the change in force that day; None before the first score

    @property
    def agrees(self) -> bool | None:
        """Whether the recomputed score, level and lists equal the recorded ones (None: no record yet)."""
        if self.recorded is None:
            return None
        a = self.assessment
        recomputed = ScoreSummary(
            a.score, a.level, tuple(sorted({b.list for b in a.lists.black})), a.lists.red_member
        )
        after = self.recorded.after
        return recomputed == ScoreSummary(after.score, after.level, tuple(sorted(after.black)), after.red)


def version_in_force_on(versions: list[RulebookVersion], day: date) -> str:
    """The rulebook version in force on ``day``: the last activated on or before it."""
    in_force = [v for v in versions if v.activated_on <= day]
    if not in_force:
        raise NotFoundError(f"no rulebook was in force on {day.isoformat()}", reason="no-rulebook-then")
    return in_force[-1].version


def recorded_on(history: list[HistoryEntry], day: date) -> HistoryEntry | None:
    """The score change in force on ``day``: the last one (in log order) dated on or before it."""
    in_force = [entry for entry in history if entry.as_of <= day]
    return in_force[-1] if in_force else None


def score_on(
    day: date,
    rulebook: Rulebook,
    kind: SubjectKind,
    served: ServedSubject | None,
    history: list[HistoryEntry],
) -> ScoreOnDate:
    """The subject's credit on ``day`` from its served records (None: no events on record) and its
    recorded history, under ``rulebook`` (the version in force that day)."""
    assessment = evaluate(
        served.engine_events() if served else [],
        rulebook,
        day,
        effects=served.engine_effects() if served else (),
        red_list=served.red if served else (),
        subject=kind,
    )
    applied = tuple(
        (scenario, tuple(measures(assessment, scenario, rulebook, subject=kind)))
        for scenario in rulebook.scenarios
    )
    return ScoreOnDate(day, assessment, applied, recorded_on(history, day))


class PastScores:
    """Answers "what was this subject's credit on that day?" from the ledger's records."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        subjects: Subjects,
        views: Views,
        *,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.subjects = subjects
        self.views = views
        self.today = today

    def on(self, ref: bytes, day: date, *, kind: SubjectKind | None = None) -> ScoreOnDate:
        """The subject's credit on ``day`` (today or earlier). With ``kind``, a subject without
        events has a fresh account, as :meth:`credit.scoring.Scoring.assess` gives it."""
        if day > self.today():
            raise InvalidDate(f"{day.isoformat()} has not come yet; ask about today or a past day")
        rulebook = self.rulebooks.version(version_in_force_on(self.rulebooks.versions(), day))
        try:
            kind = self.subjects.kind_of(ref)
        except UnknownSubject:
            if kind is None:
                raise
            return score_on(day, rulebook, kind, None, [])
        with self.gateway.reading() as conn:
            served = served_subject(conn, self.gateway.ledger, ref)
        return score_on(day, rulebook, kind, served, self.views.history(ref))
