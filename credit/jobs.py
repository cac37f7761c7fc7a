"""Jobs: the daily run (expiries, deadlines, reminders, the yearly red-list review) and putting a
rulebook in force (its activation record, then every subject rescored under it).

The daily run is scheduled by :func:`credit.setup.schedule_credit_jobs` and can be run by hand
(``trustledger credit jobs``); it is safe to run twice on a day: each reminder, overdue flag and
review happens once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import func, select

from credit.cases import ENGINE, flag_case, queue_red_list_proposal, queue_step
from credit.engine import RedListAction
from credit.errors import Conflict, NoRulebookInForce
from credit.models import Case, CaseKind, CaseState, ChangeCause, JobReport
from credit.rulebook import Rulebook, default_rulebook
from credit.rulebooks_in_force import RulebooksInForce
from credit.scoring import Scoring
from credit.store import CASE_STEPS, CASES, SCORES
from credit.unit_of_work import LedgerGateway, PendingWrite, credit_record
from credit.workdays import WorkingCalendar
from ledger.core.leaf import RecordKind

_REVIEWED = "red-list-reviewed"


class DailyJobs:
    """The daily run (see the module docstring)."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        scoring: Scoring,
        *,
        calendar: WorkingCalendar,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.scoring = scoring
        self.calendar = calendar
        self.today = today

    def run(self, today: date | None = None) -> JobReport:
        """The daily jobs: rescore subjects whose events expire or lists end today, flag overdue
        objections and repairs, send reminders, and run the yearly red-list review when due."""
        day = today or self.today()
        with self.gateway.reading() as conn:
            due = [
                bytes(r[0])
                for r in conn.execute(select(SCORES.c.subject_ref).where(SCORES.c.next_change_on <= day))
            ]
        report = (
            self.scoring.recompute(due, cause=ChangeCause("scheduled"), today=day) if due else JobReport()
        )
        report += self._deadlines(day)
        rulebook = self.rulebooks.in_force()
        review = date(day.year, rulebook.red_list.review_month, rulebook.red_list.review_day)
        if day >= review and not self._reviewed(day.year):
            report += JobReport(proposals=self.red_list_review(day))
        return report

    def _deadlines(self, day: date) -> JobReport:
        """Flag open objections and repairs that are overdue, remind those due soon (once each)."""
        rulebook = self.rulebooks.in_force()
        ahead = rulebook.deadlines.reminder_working_days_before
        waiting = (CaseState.UNDER_OBJECTION.value, CaseState.APPLIED.value)
        with self.gateway.reading() as conn:
            rows = conn.execute(
                select(CASES).where(CASES.c.state.in_(waiting), CASES.c.due_on.is_not(None))
            ).all()
        overdue = reminders = 0
        for case in (Case.from_row(row) for row in rows):
            due = case.due_on
            if due is None:
                continue
            write = PendingWrite()
            if due < day and not case.detail.get("overdue_flagged"):
                queue_step(write, case, "overdue", ENGINE, day, due_on=due.isoformat())
                self.gateway.commit(write, extra=flag_case(case.id, overdue_flagged=day.isoformat()))
                overdue += 1
            elif (
                day <= due
                and not case.detail.get("reminded")
                and self.calendar.working_days_between(day, due) <= ahead
            ):
                queue_step(write, case, "reminder", ENGINE, day, due_on=due.isoformat())
                self.gateway.commit(write, extra=flag_case(case.id, reminded=day.isoformat()))
                reminders += 1
        return JobReport(overdue=overdue, reminders=reminders)

    def _reviewed(self, year: int) -> bool:
        with self.gateway.reading() as conn:
            done: int = conn.execute(
                select(func.count())
                .select_from(CASE_STEPS)
                .where(CASE_STEPS.c.step == _REVIEWED, CASE_STEPS.c.on >= date(year, 1, 1))
            ).scalar_one()
        return done > 0

    def red_list_review(self, today: date) -> int:
        """The yearly red-list review: propose entries for eligible subjects and exits for members
        who no longer qualify. A person confirms each proposal."""
        proposals = 0
        with self.gateway.reading() as conn:
            rows = conn.execute(
                select(SCORES.c.subject_ref, SCORES.c.red, SCORES.c.red_eligible).where(
                    SCORES.c.red != SCORES.c.red_eligible
                )
            ).all()
            pending = {
                bytes(r[0])
                for r in conn.execute(
                    select(CASES.c.subject_ref).where(
                        CASES.c.kind == CaseKind.LIST.value, CASES.c.state == CaseState.PROPOSED.value
                    )
                )
            }
        for start in range(0, len(rows), 500):
            write = PendingWrite()
            for ref_, red, eligible in rows[start : start + 500]:
                ref = bytes(ref_)
                if ref in pending:
                    continue
                action = RedListAction.ENTER if eligible and not red else RedListAction.EXIT
                reason = (
                    "meets the red-list criteria" if eligible else "no longer meets the red-list criteria"
                )
                queue_red_list_proposal(write, ref, action, f"yearly review {today.year}: {reason}", today)
                proposals += 1
            self.gateway.commit(write)
        marker = f"review-{today.year}"  # a step of no case: the review itself
        document = {"v": 1, "case": marker, "kind": "review", "step": _REVIEWED, "on": today.isoformat()}
        document["proposals"] = proposals
        row = {"case_id": marker, "step": _REVIEWED, "actor": ENGINE, "on": today, "detail": document}
        write = PendingWrite()
        write.record(credit_record(RecordKind.CREDIT_WORKFLOW, document, None), CASE_STEPS, row)
        self.gateway.commit(write)
        return proposals


class RulebookActivation:
    """Putting a rulebook in force: its activation record, then every subject rescored under it."""

    def __init__(self, rulebooks: RulebooksInForce, scoring: Scoring) -> None:
        self.rulebooks = rulebooks
        self.scoring = scoring

    def activate(self, rulebook: Rulebook, *, by: str, workers: int = 1) -> JobReport:
        """Put ``rulebook`` in force: record its canonical hash, then recompute every subject."""
        self.rulebooks.record_activation(rulebook, by=by)
        return self.scoring.recompute_all(cause=ChangeCause("rulebook", rulebook.version), workers=workers)

    def ensure(self) -> str:
        """The version in force, activating the shipped default first if none is (recorded like any
        activation). Set-up calls this (``trustledger init``, the app's start, the CLI's credit
        commands); reading which rulebook is in force never activates one."""
        version = self.rulebooks.version_in_force()
        if version is None:
            try:
                self.activate(default_rulebook(), by="trustledger (default rulebook)")
            except Conflict:
                pass  # another process activated it at the same moment
            version = self.rulebooks.version_in_force()
        if version is None:
            raise NoRulebookInForce("no rulebook is active")
        return version
