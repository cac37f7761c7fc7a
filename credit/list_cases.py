"""List cases: a person, not the engine, confirms every change of red-list status.

The engine proposes (:func:`credit.cases.queue_red_list_proposal`): the yearly review proposes
entries for eligible subjects and exits for members who no longer qualify, and a serious event
that removes a member proposes the exit at once. An officer confirms or rejects each proposal;
a confirmation is a ``credit_workflow`` record of the red-list decision, and the subject is
rescored in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from credit.cases import load_case, move_case, queue_step
from credit.engine import RedListAction, RedListDecision
from credit.errors import WorkflowError
from credit.models import CaseKind, CaseState, CaseWithSteps, ChangeCause
from credit.rulebooks_in_force import RulebooksInForce
from credit.scoring import Scoring
from credit.store import RED_DECISIONS
from credit.unit_of_work import LedgerGateway, PendingWrite
from credit.views import Views


class ListCases:
    """Deciding proposed list entries and exits (see the module docstring)."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        scoring: Scoring,
        views: Views,
        *,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.scoring = scoring
        self.views = views
        self.today = today

    def decide(self, case_id: str, officer: str, confirm: bool, *, note: str = "") -> CaseWithSteps:
        """A person confirms or rejects a proposed list entry or exit."""
        if not officer.strip():
            raise WorkflowError("name the person who decides", reason="officer-required")
        with self.gateway.reading() as conn:
            case = load_case(conn, case_id)
        if case.kind is not CaseKind.LIST or case.state is not CaseState.PROPOSED:
            raise WorkflowError(f"case {case_id} is not a pending list proposal ({case.state})")
        today = self.today()
        ref = case.subject_ref
        write = PendingWrite()
        state = CaseState.CONFIRMED if confirm else CaseState.REJECTED
        action = RedListAction(case.detail["action"])
        red = {"action": action.value, "effective_on": today.isoformat()} if confirm else None
        position = queue_step(write, case, f"list-{state.value}", officer, today, red=red, note=note or None)
        if confirm:
            row = {"subject_ref": ref, "action": action.value, "effective_on": today}
            write.row(RED_DECISIONS, row, record=position)
            self.scoring.rescore(
                write,
                self.rulebooks.in_force(),
                [ref],
                today,
                ChangeCause("list", case_id),
                new_red={ref: [RedListDecision(action, today)]},
            )
        self.gateway.commit(write, extra=move_case(case_id, state, decided_by=officer, note=note))
        return self.views.case(case_id)
