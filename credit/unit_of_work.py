"""The unit of work: the one place where credit meets the ledger and its database.

Every credit write is one transaction that stores ledger records and the credit rows that refer to
them, or nothing: a ``credit_event`` record and its row, a score and its ``credit_change`` record,
a workflow step and its ``credit_workflow`` record. The writers queue what they store in a
:class:`PendingWrite`; :meth:`LedgerGateway.commit` stores it. Scores carry a version per subject
(optimistic concurrency): a score row that moved since it was read, or an event stored by a
concurrent writer, is a :class:`~credit.errors.StaleWrite`, and the writer re-reads and retries.

This module is the only one in ``credit`` that writes to the ledger or opens a connection to its
database, and it does so only through ``Ledger``'s public surface: ``unit_of_work()`` (records and
credit rows in one transaction), ``reading()``, ``create_tables()`` and ``after_fork()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import Connection

from credit.errors import Conflict, CreditError, StaleWrite
from credit.store import SCORES, TABLES, add_missing_columns
from ledger import errors as ledger_errors
from ledger.core.leaf import RecordKind
from ledger.log import Accepted, Ledger, Submission

SUBMITTER = "credit"  # the ledger submitter of every credit record (sources are named inside)


def credit_record(
    kind: RecordKind, document: Mapping[str, object], subject: bytes | None, key: str | None = None
) -> Submission:
    """A credit record: its metadata is ``document``, its content hash the SM3 of the document's
    RFC 8785 encoding (:meth:`~ledger.log.Submission.of_document`)."""
    return Submission.of_document(kind, document, subject_ref=subject, idempotency_key=key)


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
    return ledger.reading()


class LedgerGateway:
    """Credit's one door to the ledger: read connections, and units of work (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for reading credit rows."""
        return read_connection(self.ledger)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction for credit rows that no ledger record backs (access counters)."""
        with self.ledger.unit_of_work() as unit:
            yield unit.connection

    def create_schema(self) -> None:
        """Create the credit tables in the ledger's database (idempotent): columns added since a
        table was first created go in first, then the missing tables and indexes."""
        try:
            with self.ledger.unit_of_work() as unit:
                add_missing_columns(unit.connection)
            self.ledger.create_tables(TABLES)
        except ledger_errors.LedgerError as e:
            raise CreditError(f"cannot create the credit schema: {e.message}", reason="storage") from e

    def after_fork(self) -> None:
        """In a forked worker: never reuse the parent's pooled connections."""
        self.ledger.after_fork()

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
        if not write.submissions and write.empty and extra is None:
            return []
        try:
            with self.ledger.unit_of_work() as unit:
                accepted = unit.submit(SUBMITTER, write.submissions) if write.submissions else []
                if any(a.duplicate for a in accepted):
                    raise StaleWrite("an event was stored concurrently")
                _store_rows(unit.connection, write, accepted)
                if extra is not None:
                    extra(unit.connection)
        except ledger_errors.WriteConflict as e:  # a key raced with a concurrent writer
            raise StaleWrite(e.message) from e
        return accepted


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
