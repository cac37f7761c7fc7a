"""Stored credit rows against the ledger records they came from.

Every credit row is written in the same transaction as its ledger record (see :mod:`credit.store`),
so the record — hashed into the log, signed in checkpoints, anchored — is the authority, and the
row a copy that anyone with write access to the database could edit or delete. This module
compares, streaming, every stored row with its record and every credit record with its row
(:func:`scan`), for ``trustledger credit replay`` and ``trustledger audit``; each difference names
the record and its log index. Serving a subject's data from its records, refusing rows that differ,
is :mod:`credit.served`.

Row fields that no record states (a workflow step's ``actor``, a case's current state, an access
row's repeat counter) are not checked here; they are labelled as such in the docs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from credit.replay import LedgerEntry, replay_subject
from credit.rulebook import Rulebook
from credit.served import Leaves, leaf_problems, where_is
from credit.store import (
    ACCESSES,
    CASE_STEPS,
    CASES,
    CHANGES,
    EFFECTS,
    EVENTS,
    RED_DECISIONS,
    RULEBOOKS,
    SCORES,
    SNAPSHOTS,
    SUBJECTS,
    keyset_pages,
    subject_ranges,
)
from credit.subjects import ERASED_STEP
from credit.unit_of_work import read_connection
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import LeafData, RecordKind
from ledger.log import Ledger

_logger = logging.getLogger(__name__)
_sm3 = digest_function(HashAlgorithm.SM3)
CREDIT_RECORD_KINDS = (
    RecordKind.CREDIT_EVENT,
    RecordKind.CREDIT_CHANGE,
    RecordKind.CREDIT_WORKFLOW,
    RecordKind.CREDIT_LIST,
    RecordKind.CREDIT_RULEBOOK,
    RecordKind.ACCESS,
)
_DOCUMENT_KINDS = frozenset(
    {RecordKind.CREDIT_EVENT, RecordKind.CREDIT_CHANGE, RecordKind.CREDIT_WORKFLOW, RecordKind.ACCESS}
)
_CHUNK = 5000


@dataclass
class IntegrityReport:
    """What a replay or row check found: subjects checked, score changes recomputed, differences."""

    subjects: int = 0
    changes: int = 0
    events: int = 0
    rows: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No differences."""
        return not self.problems


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _field_problems(stored: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    return [
        f"{name}: stored {value!r}, recorded {recorded.get(name)!r}"
        for name, value in stored.items()
        if recorded.get(name) != value
    ]


def event_fields(row: Any) -> dict[str, object]:
    """The fields of an event row that its ``credit_event`` record states."""
    return {
        "id": row.id,
        "type": row.type,
        "occurred_on": _iso(row.occurred_on),
        "ended_on": _iso(row.ended_on),
        "quantity": row.quantity,
        "source": row.source,
        "source_ref": row.source_ref,
        "refers_to": row.refers_to,
        "evidence": row.evidence_record_id,
    }


def _snapshot_root(members: Sequence[str]) -> bytes | None:
    try:
        refs = [bytes.fromhex(m) for m in members]
    except (TypeError, ValueError):
        return None
    hasher = tree_hasher(HashAlgorithm.SM3)
    return hasher.root_of([hasher.leaf_hash(ref) for ref in refs])


# --- comparing one row with its record ---------------------------------------------------------------


def compare_row(table: str, row: Any, leaf: LeafData, subject: bytes | None = None) -> list[str]:
    """Differences between a stored row of ``table`` and its ledger record (empty: they agree).

    ``subject`` is the case's subject for a ``credit_case_step`` row (steps do not store it).
    """
    if table == "credit_event":
        problems = leaf_problems(leaf, RecordKind.CREDIT_EVENT, bytes(row.subject_ref))
        return problems or _field_problems(event_fields(row), leaf.metadata)
    if table == "credit_change":
        problems = leaf_problems(leaf, RecordKind.CREDIT_CHANGE, bytes(row.subject_ref))
        if problems:
            return problems
        recorded = leaf.metadata
        stored = dict(row.document)
        if stored != recorded:
            keys = sorted(k for k in stored.keys() | recorded.keys() if stored.get(k) != recorded.get(k))
            problems.append(
                "document differs from the record in "
                + ", ".join(f"{k} (stored {stored.get(k)!r}, recorded {recorded.get(k)!r})" for k in keys)
            )
        if _iso(row.as_of) != recorded.get("as_of"):
            problems.append(f"as_of: stored {_iso(row.as_of)}, recorded {recorded.get('as_of')}")
        return problems
    if table == "credit_case_step":
        problems = leaf_problems(leaf, RecordKind.CREDIT_WORKFLOW, subject)
        if problems:
            return problems
        recorded = leaf.metadata
        stored = {"case": row.case_id, "step": row.step, "on": _iso(row.on)}
        problems = _field_problems(stored, recorded)
        if dict(row.detail) != recorded:
            problems.append("detail differs from the record")
        return problems
    if table == "credit_effect":
        problems = leaf_problems(leaf, RecordKind.CREDIT_WORKFLOW, bytes(row.subject_ref))
        effect = {"kind": row.kind, "effective_on": _iso(row.effective_on)}
        return problems or _field_problems({"event": row.event_id, "effect": effect}, leaf.metadata)
    if table == "credit_red_decision":
        problems = leaf_problems(leaf, RecordKind.CREDIT_WORKFLOW, bytes(row.subject_ref))
        red = {"action": row.action, "effective_on": _iso(row.effective_on)}
        return problems or _field_problems({"red": red}, leaf.metadata)
    if table == "credit_access":
        problems = leaf_problems(leaf, RecordKind.ACCESS, bytes(row.subject_ref))
        stored = {"accessor": row.accessor, "role": row.role, "purpose": row.purpose, "what": row.what}
        if row.note is not None or "note" in leaf.metadata:
            stored["note"] = row.note
        if row.window_s is not None or "window_s" in leaf.metadata:
            stored["window_s"] = row.window_s
        return problems or _field_problems(stored, leaf.metadata)
    if table == "credit_list_snapshot":
        problems = leaf_problems(leaf, RecordKind.CREDIT_LIST, None)
        if problems:
            return problems
        root = bytes(row.root)
        stored = {"list": row.list_name, "as_of": _iso(row.as_of), "size": row.size, "root": root.hex()}
        problems = _field_problems(stored, leaf.metadata)
        if leaf.content_hash != root:
            problems.append("the record's content hash is not the stored root")
        if len(row.members) != row.size or _snapshot_root(row.members) != root:
            problems.append("the stored members do not have the stored size and root")
        return problems
    if table == "credit_rulebook":
        problems = leaf_problems(leaf, RecordKind.CREDIT_RULEBOOK, None)
        if problems:
            return problems
        problems = _field_problems({"version": row.version}, leaf.metadata)
        if leaf.content_hash != bytes(row.hash):
            problems.append("the record's content hash is not the stored rulebook hash")
        if _sm3(bytes(row.canonical)) != bytes(row.hash):
            problems.append("the stored canonical rulebook does not have the stored hash")
        return problems
    raise ValueError(f"no ledger record backs table {table}")  # pragma: no cover - a programming error


# --- the streaming comparison of everything (replay and audit) ------------------------------------------


@dataclass
class _SubjectRows:
    """What one range of rows says about a subject: its record ids (in row order), its events'
    stored facts, and its newest stored change."""

    ids: dict[str, bool] = field(default_factory=dict)
    events: dict[str, dict[str, object]] = field(default_factory=dict)
    newest: str | None = None


class _Scan:
    """One pass over the credit tables and the ledger's credit records (see :func:`scan`)."""

    def __init__(
        self,
        conn: Connection,
        ledger: Ledger,
        report: IntegrityReport,
        rulebook_of: Callable[[str], Rulebook] | None,
    ) -> None:
        self.conn = conn
        self.ledger = ledger
        self.report = report
        self.rulebook_of = rulebook_of

    def differ(self, record_id: str | None, problem: str, subject: bytes | None = None) -> None:
        who = f"subject {subject.hex()[:16]}…: " if subject is not None else ""
        if record_id is None:
            self.report.problems.append(f"{who}{problem}")
        else:
            where = where_is(self.ledger, record_id)
            self.report.problems.append(f"{who}record {record_id} ({where}): {problem}")

    def compare(
        self, table: str, rows: Iterable[Any], leaves: Leaves, subject_of: Callable[[Any], bytes | None]
    ) -> None:
        for row in rows:
            self.report.rows += 1
            subject = subject_of(row)
            found = leaves.get(row.record_id)
            if found is None:
                self.differ(row.record_id, f"a {table} row names a record that is not in the ledger", subject)
                continue
            for problem in compare_row(table, row, found[1], subject):
                self.differ(row.record_id, f"{table} row: {problem}", subject)

    # pass 1: every row of every subject, compared with its record, and the scores recomputed

    def subjects(self, refs: Sequence[bytes] | None) -> None:
        """Rows of the subjects in ``refs`` (None: every subject, in ranges of references)."""
        for low, high in subject_ranges(self.conn, refs):
            self.subject_range(low, high)

    def subject_range(self, low: bytes | None, high: bytes | None) -> None:
        def within(column: Any) -> Any:
            clauses = []
            if low is not None:
                clauses.append(column > low if high is None or low != high else column == low)
            if high is not None and low != high:
                clauses.append(column <= high)
            return clauses

        conn = self.conn
        events = conn.execute(select(EVENTS).where(*within(EVENTS.c.subject_ref))).all()
        changes = conn.execute(
            select(CHANGES).where(*within(CHANGES.c.subject_ref)).order_by(CHANGES.c.seq)
        ).all()
        steps = conn.execute(
            select(CASE_STEPS, CASES.c.subject_ref.label("case_subject"))
            .join(CASES, CASES.c.id == CASE_STEPS.c.case_id)
            .where(*within(CASES.c.subject_ref))
        ).all()
        effects = conn.execute(select(EFFECTS).where(*within(EFFECTS.c.subject_ref))).all()
        reds = conn.execute(select(RED_DECISIONS).where(*within(RED_DECISIONS.c.subject_ref))).all()
        scores = {
            bytes(r.subject_ref): r for r in conn.execute(select(SCORES).where(*within(SCORES.c.subject_ref)))
        }
        known = {bytes(r[0]) for r in conn.execute(select(SUBJECTS.c.ref).where(*within(SUBJECTS.c.ref)))}
        ids = {r.record_id for r in (*events, *changes, *steps, *effects, *reds)}
        leaves = self.ledger.records(sorted(ids))
        self.report.records += len(leaves)
        self.compare("credit_event", events, leaves, lambda r: bytes(r.subject_ref))
        self.compare("credit_change", changes, leaves, lambda r: bytes(r.subject_ref))
        self.compare("credit_case_step", steps, leaves, lambda r: bytes(r.case_subject))
        self.compare("credit_effect", effects, leaves, lambda r: bytes(r.subject_ref))
        self.compare("credit_red_decision", reds, leaves, lambda r: bytes(r.subject_ref))
        by_subject: dict[bytes, _SubjectRows] = {}

        def bucket(ref: bytes) -> _SubjectRows:
            found = by_subject.get(ref)
            if found is None:
                found = by_subject[ref] = _SubjectRows()
            return found

        for row in events:
            b = bucket(bytes(row.subject_ref))
            b.ids[row.record_id] = True
            b.events[row.id] = {"type": row.type, "occurred_on": row.occurred_on, "quantity": row.quantity}
        for row in changes:
            b = bucket(bytes(row.subject_ref))
            b.ids[row.record_id] = True
            b.newest = row.record_id
        for row in steps:
            bucket(bytes(row.case_subject)).ids[row.record_id] = True
        for ref in scores:
            bucket(ref)
        for ref, b in sorted(by_subject.items()):
            if ref not in known:
                self.differ(None, "has credit rows but no subject row", ref)
            score = scores.get(ref)
            if score is not None and score.change_record_id != b.newest:
                self.differ(
                    score.change_record_id,
                    f"the score row names change record {score.change_record_id}, "
                    f"the newest stored change is {b.newest}",
                    ref,
                )
            self.report.subjects += 1
            if self.rulebook_of is None:
                continue
            entries = [
                LedgerEntry(
                    rid,
                    leaves[rid][0],
                    leaves[rid][1].kind,
                    leaves[rid][1].metadata,
                    leaves[rid][1].content_hash,
                )
                for rid in b.ids
                if rid in leaves and leaves[rid][1].kind in _REPLAYED and leaves[rid][1].subject_ref == ref
            ]
            result = replay_subject(
                entries,
                self.rulebook_of,
                stored_score=dict(score._mapping) if score is not None else None,
                stored_events=b.events,
            )
            self.report.changes += result.changes
            self.report.events += result.events
            self.report.problems.extend(f"subject {ref.hex()[:16]}…: {p}" for p in result.problems)

    # pass 2: rows not tied to a subject's range (accesses, snapshots, rulebooks, review markers)

    def free_rows(self, subject: bytes | None = None) -> None:
        """Access rows (of ``subject``, or all), and with ``subject`` None also the list snapshots,
        rulebooks and workflow steps that belong to no case (the yearly review markers)."""
        tables: list[tuple[str, Any, Any, int]] = [("credit_access", ACCESSES, ACCESSES.c.seq, _CHUNK)]
        if subject is None:
            tables += [
                ("credit_list_snapshot", SNAPSHOTS, SNAPSHOTS.c.seq, 50),
                ("credit_rulebook", RULEBOOKS, RULEBOOKS.c.seq, 50),
            ]
        for name, table, key, size in tables:
            condition = (
                [] if subject is None or name != "credit_access" else [ACCESSES.c.subject_ref == subject]
            )
            for rows in keyset_pages(self.conn, select(table).where(*condition), key, size):
                leaves = self.ledger.records([r.record_id for r in rows])
                self.report.records += len(leaves)
                if name == "credit_access":
                    self.compare(name, rows, leaves, lambda r: bytes(r.subject_ref))
                else:
                    self.compare(name, rows, leaves, lambda _r: None)
        if subject is None:
            orphans = (
                select(CASE_STEPS)
                .outerjoin(CASES, CASES.c.id == CASE_STEPS.c.case_id)
                .where(CASES.c.id.is_(None))
            )
            for rows in keyset_pages(self.conn, orphans, CASE_STEPS.c.seq, _CHUNK):
                leaves = self.ledger.records([r.record_id for r in rows])
                self.compare("credit_case_step", rows, leaves, lambda _r: None)

    # pass 3: every credit record in the ledger has its row

    def records_have_rows(self) -> None:
        batch: list[tuple[str, LeafData]] = []
        for record_id, _position, leaf in self.ledger.iter_records(CREDIT_RECORD_KINDS):
            batch.append((record_id, leaf))
            if len(batch) >= _CHUNK:
                self.rows_of(batch)
                batch = []
        if batch:
            self.rows_of(batch)

    def rows_of(self, batch: Sequence[tuple[str, LeafData]]) -> None:
        conn = self.conn
        by_kind: dict[RecordKind, list[tuple[str, LeafData]]] = {}
        for item in batch:
            by_kind.setdefault(item[1].kind, []).append(item)

        def present(column: Any, values: Sequence[Any], *extra: Any) -> set[Any]:
            found: set[Any] = set()
            unique = sorted(set(values))
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                found.update(r[0] for r in conn.execute(select(column, *extra).where(column.in_(part))))
            return found

        events = by_kind.get(RecordKind.CREDIT_EVENT, [])
        stored_events = {}
        ids = sorted({str(leaf.metadata.get("id")) for _rid, leaf in events})
        for start in range(0, len(ids), 500):
            for event_id, record_id in conn.execute(
                select(EVENTS.c.id, EVENTS.c.record_id).where(EVENTS.c.id.in_(ids[start : start + 500]))
            ):
                stored_events[event_id] = record_id
        for record_id, leaf in events:
            if stored_events.get(str(leaf.metadata.get("id"))) != record_id:
                self.differ(record_id, "a credit_event record has no credit_event row", leaf.subject_ref)
        simple = [
            (RecordKind.CREDIT_CHANGE, CHANGES.c.record_id, "credit_change"),
            (RecordKind.CREDIT_LIST, SNAPSHOTS.c.record_id, "credit_list_snapshot"),
            (RecordKind.CREDIT_RULEBOOK, RULEBOOKS.c.record_id, "credit_rulebook"),
            (RecordKind.ACCESS, ACCESSES.c.record_id, "credit_access"),
        ]
        for kind, column, table in simple:
            items = by_kind.get(kind, [])
            if not items:
                continue
            found = present(column, [rid for rid, _leaf in items])
            for record_id, leaf in items:
                if record_id not in found:
                    self.differ(record_id, f"a {kind.value} record has no {table} row", leaf.subject_ref)
        steps = by_kind.get(RecordKind.CREDIT_WORKFLOW, [])
        if steps:
            documents = [(rid, leaf, leaf.metadata) for rid, leaf in steps]
            found = present(
                CASE_STEPS.c.record_id, [rid for rid, _l, d in documents if d.get("step") != ERASED_STEP]
            )
            effects = present(EFFECTS.c.record_id, [rid for rid, _l, d in documents if d.get("effect")])
            reds = present(RED_DECISIONS.c.record_id, [rid for rid, _l, d in documents if d.get("red")])
            erased = present(
                SUBJECTS.c.ref,
                [
                    leaf.subject_ref
                    for _rid, leaf, d in documents
                    if d.get("step") == ERASED_STEP and leaf.subject_ref
                ],
            )
            erased_rows = (
                {
                    bytes(r[0])
                    for r in conn.execute(
                        select(SUBJECTS.c.ref).where(
                            SUBJECTS.c.ref.in_(sorted(erased)), SUBJECTS.c.erased_at_us.is_not(None)
                        )
                    )
                }
                if erased
                else set()
            )
            for record_id, leaf, doc in documents:
                if doc.get("step") == ERASED_STEP:
                    if leaf.subject_ref not in erased_rows:
                        self.differ(
                            record_id,
                            "an erasure record, but the subject row is not erased",
                            leaf.subject_ref,
                        )
                    continue
                if record_id not in found:
                    self.differ(
                        record_id, "a credit_workflow record has no credit_case_step row", leaf.subject_ref
                    )
                if doc.get("effect") and record_id not in effects:
                    self.differ(
                        record_id, "a workflow outcome record has no credit_effect row", leaf.subject_ref
                    )
                if doc.get("red") and record_id not in reds:
                    self.differ(
                        record_id,
                        "a red-list decision record has no credit_red_decision row",
                        leaf.subject_ref,
                    )
        self.report.records += len(batch)


_REPLAYED = frozenset({RecordKind.CREDIT_EVENT, RecordKind.CREDIT_CHANGE, RecordKind.CREDIT_WORKFLOW})


def scan(
    ledger: Ledger,
    *,
    rulebook_of: Callable[[str], Rulebook] | None = None,
    subject: bytes | None = None,
) -> IntegrityReport:
    """Compare stored credit rows with their ledger records, streaming.

    With ``rulebook_of`` every score change is also recomputed (:func:`credit.replay.replay_subject`).
    Without ``subject``: every row of every table, then every credit record in the ledger against
    its row (a deleted row is found this way). With ``subject``: that subject's rows only (the
    ledger has no index by subject, so a deleted row of one subject is found only by the full scan).
    """
    report = IntegrityReport()
    with read_connection(ledger) as conn:
        walk = _Scan(conn, ledger, report, rulebook_of)
        walk.subjects([subject] if subject is not None else None)
        walk.free_rows(subject)
        if subject is None:
            walk.records_have_rows()
    return report
