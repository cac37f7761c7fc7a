"""Scoring: where a subject's score is computed and every change of it recorded.

The engine (:func:`credit.engine.evaluate`) is pure; this module feeds it a subject's stored events,
workflow outcomes and red-list decisions (plus those about to be stored in the same write), and
queues a ``credit_change`` record with the new score row wherever the score, level or lists moved.
:meth:`Scoring.recompute_all` rescores every subject after a rulebook change, optionally in forked
worker processes.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection as Pipe
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from credit.cases import queue_red_list_proposal
from credit.engine import Assessment, Effect, Event, Reason, RedListAction, RedListDecision, evaluate
from credit.errors import Conflict, CreditError, StaleWrite, SubjectStateError, UnknownSubject
from credit.identifiers import SubjectKind
from credit.measures import AppliedMeasure, measures
from credit.models import ChangeCause, JobReport
from credit.rulebook import Rulebook
from credit.rulebooks_in_force import RulebooksInForce
from credit.served import served_subject
from credit.store import CHANGES, SUBJECTS, SubjectInputs, iter_subject_refs, pending_red_exits, scores
from credit.subject_state import apply_inputs, assess_state, state_from_history, supports_state
from credit.subject_state_types import SubjectState
from credit.subjects import Subjects
from credit.unit_of_work import LedgerGateway, PendingWrite, ScoreUpdate, credit_record
from ledger.core.leaf import RecordKind

RETRIES = 5  # attempts of a write whose subjects' scores keep changing concurrently
Progress = Callable[[int], None]
"""Called with the number of subjects rescored, after each range (in the worker that did them)."""


class Scoring:
    """Rescoring subjects and recording their score changes (see the module docstring)."""

    def __init__(
        self,
        gateway: LedgerGateway,
        rulebooks: RulebooksInForce,
        subjects: Subjects,
        *,
        today: Callable[[], date],
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.subjects = subjects
        self.today = today

    def rescore(
        self,
        write: PendingWrite,
        rulebook: Rulebook,
        refs: Sequence[bytes],
        today: date,
        cause: ChangeCause,
        *,
        new_events: Mapping[bytes, Sequence[Event]] | None = None,
        new_effects: Mapping[bytes, Sequence[Effect]] | None = None,
        new_red: Mapping[bytes, Sequence[RedListDecision]] | None = None,
        kinds: Mapping[bytes, SubjectKind] | None = None,
        contiguous: bool = False,
    ) -> dict[bytes, Assessment]:
        """Recompute ``refs`` (plus unstored events, effects, decisions); queue a change where it moved.

        Incremental where it can be (:mod:`credit.subject_state`): a subject whose stored state was
        built under ``rulebook`` takes the new inputs (or just the date) without its history being
        read; the others — no state yet, another rulebook, an input the state cannot take — are
        rebuilt from their stored inputs. Either way the assessment is what ``evaluate`` gives on
        the whole history (tests/credit/test_subject_state.py proves the two equal).
        """
        if not refs:
            return {}
        stateful = supports_state(rulebook)
        with self.gateway.reading() as conn:
            current = scores(conn, refs, contiguous=contiguous)
            states: dict[bytes, SubjectState | None] = {}
            if stateful:
                for ref in refs:
                    moved = _moved_state(
                        current.get(ref),
                        rulebook,
                        today,
                        (new_events or {}).get(ref, ()),
                        (new_effects or {}).get(ref, ()),
                        (new_red or {}).get(ref, ()),
                    )
                    if moved is not None:
                        states[ref] = moved
            rebuild = [ref for ref in refs if ref not in states]
            inputs = SubjectInputs()
            if rebuild:
                whole_range = contiguous and len(rebuild) == len(refs)
                inputs = SubjectInputs.load(conn, rebuild, contiguous=whole_range)
            missing = [r for r in refs if r not in current and (kinds is None or r not in kinds)]
            stored_kinds = {}
            if missing:
                stored_kinds = {
                    bytes(r[0]): SubjectKind(r[1])
                    for r in conn.execute(
                        select(SUBJECTS.c.ref, SUBJECTS.c.kind).where(SUBJECTS.c.ref.in_(missing))
                    )
                }
            leaving_red = [r for r in states if (row := current.get(r)) is not None and row.red]
            pending_exit = pending_red_exits(conn, leaving_red) | inputs.pending_red_exit
        digest = self.rulebooks.hash_hex(rulebook)
        results: dict[bytes, Assessment] = {}
        for ref in refs:
            row = current.get(ref)
            kind = (kinds or {}).get(ref) or (SubjectKind(row.kind) if row is not None else stored_kinds[ref])
            state = states.get(ref)
            if state is None:
                events = inputs.events.get(ref, []) + list((new_events or {}).get(ref, ()))
                effects = inputs.effects.get(ref, []) + list((new_effects or {}).get(ref, ()))
                red = inputs.red.get(ref, []) + list((new_red or {}).get(ref, ()))
                if stateful:
                    state = state_from_history(
                        events, rulebook, today, effects=effects, red_list=red, subject=kind
                    )
                else:
                    a = evaluate(
                        events, rulebook, today, effects=effects, red_list=red, subject=kind, explain=False
                    )
            if state is not None:
                a = assess_state(state, rulebook, today)
            stored_state = state.to_bytes() if state is not None else None
            results[ref] = a
            if row is not None and row.red and not a.lists.red_member and ref not in pending_exit:
                queue_red_list_proposal(
                    write, ref, RedListAction.EXIT, "a serious event removed the subject", today
                )
            before = _summary_of_row(row) if row is not None else None
            after = a.summary()
            if before == after and row is not None:
                # Unchanged (also under a new rulebook): no change record; the row notes the version,
                # the next date to look again and the state (as_of stays the date of the last change).
                if (row.next_change_on, row.rulebook_version, row.state) != (
                    a.next_change_on,
                    rulebook.version,
                    stored_state,
                ):
                    values = _score_values(a, kind, today, stored_state)
                    del values["as_of"]
                    write.score_updates.append(ScoreUpdate(ref, row.version, values, None))
                continue
            document: dict[str, object] = {
                "v": 1,
                "subject_kind": kind.value,
                "as_of": today.isoformat(),
                "before": before,
                "after": after,
                "cause": cause.document(),
                "rulebook": rulebook.version,
                "rulebook_hash": digest,
                "breakdown": {k.value: v for k, v in a.breakdown.items() if v},
                "reasons": [_reason_document(r) for r in a.reasons],
            }
            change = write.record(
                credit_record(RecordKind.CREDIT_CHANGE, document, ref),
                CHANGES,
                {"subject_ref": ref, "as_of": today, "document": document, "at_us": time.time_ns() // 1000},
            )
            version = row.version if row is not None else None
            values = _score_values(a, kind, today, stored_state)
            write.score_updates.append(ScoreUpdate(ref, version, values, change))
        return results

    def recompute(
        self,
        refs: Sequence[bytes],
        *,
        cause: ChangeCause,
        today: date | None = None,
        chunk: int = 1000,
        contiguous: bool = False,
    ) -> JobReport:
        """Rescore ``refs`` at ``today`` (default: the service clock), recording changes, ``chunk``
        subjects per transaction (``contiguous``: see :meth:`SubjectInputs.load`)."""
        day = today or self.today()
        rulebook = self.rulebooks.in_force()
        changed = 0
        for start in range(0, len(refs), chunk):
            part = refs[start : start + chunk]
            for _attempt in range(RETRIES):
                write = PendingWrite()
                try:
                    self.rescore(write, rulebook, part, day, cause, contiguous=contiguous)
                    self.gateway.commit(write, retryable=True)
                    break
                except StaleWrite:
                    continue
            else:
                raise Conflict("scores kept changing concurrently; retry", reason="busy")
            changed += write.count(RecordKind.CREDIT_CHANGE)
        return JobReport(recomputed=len(refs), changed=changed)

    def recompute_all(
        self,
        *,
        cause: ChangeCause,
        today: date | None = None,
        workers: int = 1,
        chunk: int = 5000,
        progress: Progress | None = None,
    ) -> JobReport:
        """Rescore every subject (after a rulebook change), in ranges of ``chunk`` subjects.

        With ``workers`` > 1 the ranges are shared among forked processes (the engine is pure
        and each range is its own transaction; the database serialises the writes).
        """
        day = today or self.today()
        with self.gateway.reading() as conn:
            batches = list(iter_subject_refs(conn, chunk=chunk))
        context = RecomputeContext(self, cause, day, progress)
        if workers <= 1 or len(batches) <= 1:
            return context.run(batches)
        return _in_forked_workers(context, [batches[i::workers] for i in range(workers)])

    def assess(self, ref: bytes, *, as_of: date | None = None, kind: SubjectKind | None = None) -> Assessment:
        """Compute a subject's assessment now (or at ``as_of``) from its ledger records.

        With ``kind``, a subject without any events has a fresh account (the base score)."""
        try:
            kind = self.subjects.kind_of(ref)
        except UnknownSubject:
            if kind is None:
                raise
            return evaluate([], self.rulebooks.in_force(), as_of or self.today(), subject=kind)
        with self.gateway.reading() as conn:
            served = served_subject(conn, self.gateway.ledger, ref)  # the recorded facts, not the rows
        return evaluate(
            served.engine_events(),
            self.rulebooks.in_force(),
            as_of or self.today(),
            effects=served.engine_effects(),
            red_list=served.red,
            subject=kind,
        )

    def measures_for(
        self, ref: bytes, scenario: str, kind: SubjectKind
    ) -> tuple[Assessment, list[AppliedMeasure]]:
        """The measures that apply to a subject in a scenario (an unknown subject has a fresh account)."""
        assessment = self.assess(ref, kind=kind)
        return assessment, measures(assessment, scenario, self.rulebooks.in_force(), subject=kind)


@dataclass(frozen=True)
class RecomputeContext:
    """One recompute's work, handed explicitly to each forked worker (inherited by ``fork``, never
    pickled: the service and its database engine arrive as they are)."""

    scoring: Scoring
    cause: ChangeCause
    day: date
    progress: Progress | None

    def run(self, batches: Sequence[Sequence[bytes]]) -> JobReport:
        """Rescore each range of subjects, one transaction per range."""
        report = JobReport()
        for refs in batches:
            report += self.scoring.recompute(
                refs, cause=self.cause, today=self.day, chunk=len(refs), contiguous=True
            )
            if self.progress is not None:
                self.progress(len(refs))
        return report


def _in_forked_workers(context: RecomputeContext, shares: Sequence[Sequence[Sequence[bytes]]]) -> JobReport:
    """Run each share of ranges in its own forked process; the sum of their reports."""
    fork = multiprocessing.get_context("fork")
    running = []
    for share in shares:
        if not share:
            continue
        receive, send = fork.Pipe(duplex=False)
        process = fork.Process(target=_worker, args=(context, share, send), daemon=True)
        process.start()
        send.close()  # the parent's copy: the worker's end closes when it exits
        running.append((process, receive))
    report = JobReport()
    failure: BaseException | None = None
    for process, receive in running:
        try:
            result = receive.recv()
        except EOFError:
            result = CreditError("a recompute worker exited without a report", reason="internal")
        finally:
            receive.close()
        process.join()
        if isinstance(result, BaseException):
            failure = failure or result
        else:
            report += result
    if failure is not None:
        raise failure
    return report


def _worker(context: RecomputeContext, share: Sequence[Sequence[bytes]], results: Pipe) -> None:
    """A forked worker: its report (or its failure) goes back through ``results``."""
    try:
        context.scoring.gateway.after_fork()
        outcome: JobReport | BaseException = context.run(share)
    except Exception as e:  # handed to the parent, which raises it
        outcome = e
    try:
        results.send(outcome)
    except Exception as e:  # noqa: BLE001 - an exception that does not pickle
        results.send(CreditError(f"recompute worker failed: {outcome!r} ({e})", reason="internal"))
    finally:
        results.close()


def _summary_of_row(row: Row[Any]) -> dict[str, object]:
    return {"score": row.score, "level": row.level, "black": sorted(row.black), "red": bool(row.red)}


def _moved_state(
    row: Row[Any] | None,
    rulebook: Rulebook,
    today: date,
    events: Sequence[Event],
    effects: Sequence[Effect],
    red: Sequence[RedListDecision],
) -> SubjectState | None:
    """The subject's stored state moved to ``today`` with the new inputs, or None: rebuild it (no
    state stored, one of another rulebook version, or inputs it cannot take without the history)."""
    if row is None or row.state is None or row.rulebook_version != rulebook.version:
        return None
    try:
        state = SubjectState.from_bytes(bytes(row.state))
    except SubjectStateError:
        return None  # a state of an older format: rebuilt like a missing one
    if state.rulebook_version != rulebook.version:
        return None
    return apply_inputs(state, rulebook, today, events=events, effects=effects, red_list=red)


def _score_values(a: Assessment, kind: SubjectKind, today: date, state: bytes | None) -> dict[str, object]:
    return {
        "kind": kind.value,
        "score": a.score,
        "level": a.level,
        "black": sorted({b.list for b in a.lists.black}),
        "red": a.lists.red_member,
        "red_eligible": a.lists.red_eligible,
        "rulebook_version": a.rulebook_version,
        "as_of": today,
        "next_change_on": a.next_change_on,
        "state": state,
    }


def _reason_document(r: Reason) -> dict[str, object]:
    return {
        "code": r.code,
        "event": r.event_id,
        "occurred_on": r.occurred_on.isoformat(),
        "source": r.source,
        "points": r.points,
        "expires_on": r.expires_on.isoformat() if r.expires_on else None,
        "repair": {
            "route": r.repair.route,
            "eligible_from": r.repair.eligible_from.isoformat() if r.repair.eligible_from else None,
        },
    }
