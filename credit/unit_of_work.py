"""The unit of work: the one place where credit meets the ledger and its database.

Every credit write is one transaction that stores ledger records and the credit rows that refer to
them, or nothing: a ``credit_event`` record and its row, a score and its ``credit_change`` record,
a workflow step and its ``credit_workflow`` record. The writers queue what they store in a
:class:`PendingWrite`; :meth:`LedgerGateway.commit` stores it. Scores carry a version per subject
(optimistic concurrency): a score row that moved since it was read, or an event stored by a
concurrent writer, is a :class:`~credit.errors.StaleWrite`, and the writer re-reads and retries.

This module is the only one in ``credit`` that calls ``Ledger.submit``, opens a connection to the
ledger's database or touches ``ledger.store``: moving to the ledger's public ``unit_of_work()`` and
``reading()`` is an edit of :class:`LedgerGateway` and :func:`read_connection` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import Connection

from credit.errors import Conflict, StaleWrite
from credit.store import SCORES, create_credit_schema
from ledger import errors as ledger_errors
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import RecordKind, canonical_metadata
from ledger.log import Accepted, Ledger, Submission

SUBMITTER = "credit"  # the ledger submitter of every credit record (sources are named inside)
_sm3 = digest_function(HashAlgorithm.SM3)


def credit_record(
    kind: RecordKind, document: Mapping[str, object], subject: bytes | None, key: str | None = None
) -> Submission:
    """A credit record: its metadata is ``document``, its content hash the SM3 of the document's
    RFC 8785 encoding (encoded once, by the ledger's core, and handed to the ledger with it)."""
    encoded = canonical_metadata(document)
    return Submission(
        kind=kind,
        content_hash=_sm3(encoded),
        metadata=document,
        metadata_json=encoded,
        subject_ref=subject,
        idempotency_key=key,
    )


@dataclass(frozen=True)
class QueuedRow:
    """A credit row to insert; with ``record`` set, it gets that submission's record id in ``column``."""

    table: Table
    values: Mapping[str, object]
    record: int | None = None  # position of the submission in the pending write
    column: str = "record_id"


@dataclass(frozen=True)
class ScoreUpdate:
    """A subject's new score row values, written only if the row still has ``version``.

    ``version`` None: the subject's first score (inserted). ``change``: the position of the score's
    ``credit_change`` submission, whose record id the row names; None for an unchanged score (the
    row keeps naming the last change).
    """

    ref: bytes
    version: int | None
    values: Mapping[str, object]
    change: int | None


@dataclass
class PendingWrite:
    """Everything one transaction stores: ledger submissions and the rows that refer to them."""

    submissions: list[Submission] = field(default_factory=list)
    rows: list[QueuedRow] = field(default_factory=list)
    score_updates: list[ScoreUpdate] = field(default_factory=list)

    def record(
        self, sub: Submission, table: Table | None = None, values: Mapping[str, object] | None = None
    ) -> int:
        """Queue a record (and a row of ``table`` that gets its record id); its position."""
        position = len(self.submissions)
        self.submissions.append(sub)
        if table is not None and values is not None:
            self.rows.append(QueuedRow(table, values, position))
        return position

    def row(self, table: Table, values: Mapping[str, object], *, record: int | None = None) -> None:
        """Queue a row, optionally naming the record queued at position ``record``."""
        self.rows.append(QueuedRow(table, values, record))

    def count(self, kind: RecordKind) -> int:
        """How many records of ``kind`` are queued."""
        return sum(1 for sub in self.submissions if sub.kind is kind)

    @property
    def empty(self) -> bool:
        """Nothing queued at all."""
        return not (self.submissions or self.rows or self.score_updates)


RowWriter = Callable[[Connection], None]
"""Extra work in the write's transaction, after the queued rows (moving a case, flagging it)."""


def read_connection(ledger: Ledger) -> AbstractContextManager[Connection]:
    """A connection for reading credit rows from ``ledger``'s database (every credit read uses one)."""
    return ledger.store.engine.connect()


class LedgerGateway:
    """Credit's one door to the ledger: read connections, and units of work (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for reading credit rows."""
        return read_connection(self.ledger)

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction for credit rows that no ledger record backs (access counters)."""
        return self.ledger.store.transaction()

    def create_schema(self) -> None:
        """Create the credit tables in the ledger's database (idempotent)."""
        create_credit_schema(self.ledger.store.engine)

    def after_fork(self) -> None:
        """In a forked worker: never reuse the parent's pooled connections."""
        self.ledger.store.engine.dispose(close=False)

    def commit(
        self, write: PendingWrite, *, extra: RowWriter | None = None, retryable: bool = False
    ) -> list[Accepted]:
        """Submit the queued records and store the queued rows in the same transaction.

        A concurrent change is :class:`StaleWrite` for callers that recompute and retry
        (``retryable``), otherwise a :class:`~credit.errors.Conflict` (HTTP 409) the client may retry.
        """
        try:
            return self._commit_once(write, extra)
        except StaleWrite as e:
            if retryable:
                raise
            raise Conflict(f"the subject's data changed concurrently ({e}); retry", reason="busy") from e

    def _commit_once(self, write: PendingWrite, extra: RowWriter | None) -> list[Accepted]:
        def store(conn: Connection, accepted: Sequence[Accepted]) -> None:
            if any(a.duplicate for a in accepted):
                raise StaleWrite("an event was stored concurrently")
            _store_rows(conn, write, accepted)
            if extra is not None:
                extra(conn)

        if not write.submissions:
            if not write.empty or extra is not None:
                with self.transaction() as conn:
                    store(conn, [])
            return []
        try:
            return self.ledger.submit(SUBMITTER, write.submissions, on_stored=store)
        except ledger_errors.Conflict as e:  # an idempotency key raced with a concurrent writer
            raise StaleWrite(e.message) from e


def _store_rows(conn: Connection, write: PendingWrite, accepted: Sequence[Accepted]) -> None:
    # Rows go in as one executemany per table (per-row statements dominated bulk recomputes).
    batches: dict[tuple[Table, frozenset[str]], list[dict[str, object]]] = {}
    for queued in write.rows:
        row = dict(queued.values)
        if queued.record is not None:
            row[queued.column] = accepted[queued.record].id
        batches.setdefault((queued.table, frozenset(row)), []).append(row)
    new_scores, updates = [], []
    for score in write.score_updates:
        row = dict(score.values)
        if score.version is None:
            change = accepted[score.change].id if score.change is not None else None
            new_scores.append({"subject_ref": score.ref, "version": 1, **row, "change_record_id": change})
            continue
        if score.change is not None:  # an unchanged score keeps naming the last change's record
            row["change_record_id"] = accepted[score.change].id
        updates.append({"b_ref": score.ref, "b_version": score.version, "version": score.version + 1, **row})
    if new_scores:
        batches.setdefault((SCORES, frozenset(new_scores[0])), []).extend(new_scores)
    for (table, _keys), rows in batches.items():
        conn.execute(insert(table), rows)
    _update_scores(conn, updates)


def _update_scores(conn: Connection, updates: Sequence[dict[str, object]]) -> None:
    """Apply score updates, each only if the row still has the version it was computed from."""
    guard = (SCORES.c.subject_ref == bindparam("b_ref"), SCORES.c.version == bindparam("b_version"))
    groups: dict[frozenset[str], list[dict[str, object]]] = {}
    for values in updates:
        groups.setdefault(frozenset(values), []).append(values)
    for rows in groups.values():
        if conn.dialect.supports_sane_multi_rowcount:
            done = conn.execute(update(SCORES).where(*guard), rows).rowcount
        else:
            done = sum(conn.execute(update(SCORES).where(*guard), row).rowcount for row in rows)
        if done != len(rows):
            raise StaleWrite("a score changed concurrently")
