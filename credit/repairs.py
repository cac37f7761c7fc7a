"""Credit repair (信用修复): a subject applies to end a negative event's effect early, and the
department decides.

Possible once the event's tier allows it (the rulebook's minimum period), with a signed credit
commitment (信用承诺书); events that end only by expiry or by their source list's exit rule are not
repairable. An approval ends the event's effect from that day and the score change is recorded
(and so anchored) the same day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from credit.cases import load_case, load_event, move_case, open_case, pending_case, queue_effect, queue_step
from credit.engine import Effect, EffectKind, repair_route
from credit.errors import NotFoundError, WorkflowError
from credit.models import CaseKind, CaseState, CaseWithSteps, ChangeCause
from credit.rulebooks_in_force import RulebooksInForce
from credit.scoring import Scoring
from credit.store import event_of
from credit.unit_of_work import LedgerGateway, PendingWrite
from credit.views import Views
from credit.workdays import WorkingCalendar
from ledger.core.crypto import HashAlgorithm, digest_function

_sm3 = digest_function(HashAlgorithm.SM3)


class Repairs:
    """Repair applications and decisions (see the module docstring)."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        scoring: Scoring,
        views: Views,
        *,
        calendar: WorkingCalendar,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.scoring = scoring
        self.views = views
        self.calendar = calendar
        self.today = today

    def apply(self, ref: bytes, event_id: str, commitment: str) -> CaseWithSteps:
        """A subject applies to repair a negative event after the tier's minimum period, with a signed
        credit commitment (信用承诺书); the department decides within the rulebook's deadline."""
        today = self.today()
        with self.gateway.reading() as conn:
            event = load_event(conn, event_id)
        if bytes(event.subject_ref) != ref:
            raise NotFoundError(f"no event {event_id!r} for this subject", reason="unknown-event")
        if not commitment.strip():
            raise WorkflowError(
                "a repair needs the signed credit commitment (信用承诺书)", reason="commitment-required"
            )
        rulebook = self.rulebooks.in_force()
        assessment = self.scoring.assess(ref)
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
        with self.gateway.reading() as conn:
            open_ = pending_case(conn, event_id, CaseKind.REPAIR, (CaseState.APPLIED,))
        if open_ is not None:
            raise WorkflowError(
                f"a repair of event {event_id} is already pending (case {open_})", reason="duplicate"
            )
        due = self.calendar.add_working_days(today, rulebook.deadlines.repair_decision_working_days)
        write = PendingWrite()
        case = open_case(
            write,
            kind=CaseKind.REPAIR,
            ref=ref,
            event_id=event_id,
            state=CaseState.APPLIED,
            due_on=due,
            detail={"commitment": commitment, "source": event.source},
            today=today,
        )
        commitment_hash = _sm3(commitment.encode()).hex()
        queue_step(
            write,
            case,
            "repair-applied",
            "subject",
            today,
            due_on=due.isoformat(),
            commitment=commitment_hash,
        )
        self.gateway.commit(write)
        return self.views.case(case.id)

    def decide(self, case_id: str, actor: str, approve: bool, *, note: str = "") -> CaseWithSteps:
        """Record the department's decision; an approval ends the event's effect today and the score
        change is recorded (and so anchored) the same day."""
        with self.gateway.reading() as conn:
            case = load_case(conn, case_id)
        if case.kind is not CaseKind.REPAIR or case.state is not CaseState.APPLIED or case.event_id is None:
            raise WorkflowError(f"case {case_id} is not a pending repair ({case.state})")
        today = self.today()
        ref = case.subject_ref
        write = PendingWrite()
        state = CaseState.APPROVED if approve else CaseState.REJECTED
        queue_step(write, case, f"repair-{state.value}", actor, today, note=note or None)
        if approve:
            queue_effect(write, case, case.event_id, EffectKind.REPAIRED, actor, today)
            self.scoring.rescore(
                write,
                self.rulebooks.in_force(),
                [ref],
                today,
                ChangeCause("repair", case_id),
                new_effects={ref: [Effect(case.event_id, EffectKind.REPAIRED, today)]},
            )
        self.gateway.commit(write, extra=move_case(case_id, state, decided_by=actor, note=note))
        return self.views.case(case_id)
