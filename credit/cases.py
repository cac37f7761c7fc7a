"""What every case shares: opening one, its steps, its effects on events, and moving its state.

A case is an objection (:mod:`credit.objections`), a repair application (:mod:`credit.repairs`) or a
list decision (:mod:`credit.list_cases`). Its current state is a ``credit_case`` row; every step is a
``credit_workflow`` ledger record with a ``credit_case_step`` row, queued in the pending write of
the transaction that makes the step. The functions here only queue; the caller commits.
"""

from __future__ import annotations

import secrets
import time
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from credit.engine import EffectKind, RedListAction
from credit.errors import NotFoundError, StaleWrite
from credit.models import Case, CaseDetail, CaseKind, CaseState
from credit.store import CASE_STEPS, CASES, EFFECTS, EVENTS
from credit.unit_of_work import PendingWrite, RowWriter, credit_record
from ledger.core.leaf import RecordKind

OPEN_OBJECTION = (CaseState.UNDER_OBJECTION,)
ENGINE = "credit-engine"  # the actor of the steps the service takes by itself


def open_case(
    write: PendingWrite,
    *,
    kind: CaseKind,
    ref: bytes,
    event_id: str | None,
    state: CaseState,
    due_on: date | None,
    detail: CaseDetail,
    today: date,
) -> Case:
    """Queue a new case's row; the case."""
    case = Case(secrets.token_hex(16), kind, ref, event_id, state, today, due_on, detail)
    row = {
        "id": case.id,
        "kind": kind.value,
        "subject_ref": ref,
        "event_id": event_id,
        "state": state.value,
        "opened_on": today,
        "due_on": due_on,
        "detail": dict(detail),
        "updated_at_us": time.time_ns() // 1000,
    }
    write.row(CASES, row)
    return case


def queue_step(write: PendingWrite, case: Case, step: str, actor: str, today: date, **detail: object) -> int:
    """Queue a workflow step: its ``credit_workflow`` record and its row; the record's position."""
    document: dict[str, object] = {
        "v": 1,
        "case": case.id,
        "kind": case.kind.value,
        "step": step,
        "on": today.isoformat(),
    }
    if case.event_id:
        document["event"] = case.event_id
    document |= {k: v for k, v in detail.items() if v is not None}
    row = {"case_id": case.id, "step": step, "actor": actor, "on": today, "detail": document}
    return write.record(
        credit_record(RecordKind.CREDIT_WORKFLOW, document, case.subject_ref), CASE_STEPS, row
    )


def queue_effect(
    write: PendingWrite, case: Case, event_id: str, kind: EffectKind, actor: str, today: date
) -> None:
    """Queue a case's outcome on an event (repaired, withdrawn) from today: a step and its effect row."""
    effect = {"kind": kind.value, "effective_on": today.isoformat()}
    position = queue_step(write, case, f"effect-{kind.value}", actor, today, effect=effect)
    row = {"subject_ref": case.subject_ref, "event_id": event_id, "kind": kind.value, "effective_on": today}
    write.row(EFFECTS, row, record=position)


def queue_red_list_proposal(
    write: PendingWrite, ref: bytes, action: RedListAction, reason: str, today: date
) -> None:
    """Queue a red-list proposal; a person confirms it (:class:`credit.list_cases.ListCases`)."""
    case = open_case(
        write,
        kind=CaseKind.LIST,
        ref=ref,
        event_id=None,
        state=CaseState.PROPOSED,
        due_on=None,
        detail={"list": "red", "action": action.value, "reason": reason},
        today=today,
    )
    queue_step(write, case, "list-proposed", ENGINE, today, list="red", action=action.value, reason=reason)


def move_case(case_id: str, state: CaseState, **detail: object) -> RowWriter:
    """Work for the step's transaction: move the case to ``state``, adding ``detail``, unless it
    moved concurrently (:class:`StaleWrite`)."""

    def move(conn: Connection) -> None:
        row = conn.execute(select(CASES.c.detail, CASES.c.state).where(CASES.c.id == case_id)).one()
        done = conn.execute(
            update(CASES)
            .where(CASES.c.id == case_id, CASES.c.state == row.state)
            .values(state=state.value, detail={**row.detail, **detail}, updated_at_us=time.time_ns() // 1000)
        )
        if done.rowcount != 1:
            raise StaleWrite("case changed concurrently")

    return move


def flag_case(case_id: str, **flags: str) -> RowWriter:
    """Work for the step's transaction: note ``flags`` (reminded, overdue) in the case's detail."""

    def flag(conn: Connection) -> None:
        detail = conn.execute(select(CASES.c.detail).where(CASES.c.id == case_id)).scalar_one()
        conn.execute(update(CASES).where(CASES.c.id == case_id).values(detail={**detail, **flags}))

    return flag


def load_case(conn: Connection, case_id: str) -> Case:
    """A case (:class:`NotFoundError` if there is none)."""
    row = conn.execute(select(CASES).where(CASES.c.id == case_id)).first()
    if row is None:
        raise NotFoundError(f"no case {case_id!r}", reason="unknown-case")
    return Case.from_row(row)


def load_event(conn: Connection, event_id: str) -> Row[Any]:
    """An event's row (:class:`NotFoundError` if there is none)."""
    row = conn.execute(select(EVENTS).where(EVENTS.c.id == event_id)).first()
    if row is None:
        raise NotFoundError(f"no event {event_id!r}", reason="unknown-event")
    return row


def pending_case(
    conn: Connection, event_id: str, kind: CaseKind, states: tuple[CaseState, ...]
) -> str | None:
    """The id of a case of ``kind`` about the event that is still in one of ``states``, if any."""
    row = conn.execute(
        select(CASES.c.id).where(
            CASES.c.event_id == event_id,
            CASES.c.kind == kind.value,
            CASES.c.state.in_([s.value for s in states]),
        )
    ).first()
    return None if row is None else str(row[0])
