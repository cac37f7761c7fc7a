"""The unit of work: ledger records and a caller's own rows stored in one database transaction.

A package built on the ledger (the credit engine) keeps its own tables in the ledger's database.
What it writes there refers to the records it submits (a score row names its change record), so
both must be stored together or not at all: :meth:`ledger.log.Ledger.unit_of_work` opens one
write transaction, the caller submits records through :meth:`UnitOfWork.submit` (the same checks,
seals, idempotency answers and streaming insert as :meth:`~ledger.log.Ledger.submit`) and writes
its rows through :attr:`UnitOfWork.connection`; a clean exit commits both, an exception rolls
both back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Connection

from ledger.errors import WriteConflict
from ledger.intake import Accepted, Intake, Submission
from ledger.store import DuplicateRecord, LogStore


class UnitOfWork:
    """One open write transaction of the ledger's database (see the module docstring).

    A submit that raises leaves the unit unusable (the database may hold part of its rows): the
    exception must end the unit, which then rolls back. A unit whose caller swallowed such an
    exception refuses to commit and raises it again at the end of its ``with`` block.
    """

    def __init__(
        self, connection: Connection, *, store: LogStore, intake: Intake, admit: Callable[[int], None]
    ) -> None:
        self._connection = connection
        self._store = store
        self._intake = intake
        self._admit = admit  # back-pressure: raises LogOverloaded when the backlog is full
        self._failure: Exception | None = None
        self.stored = 0
        """How many new records the unit has inserted (duplicates of stored ones not counted)."""

    @property
    def connection(self) -> Connection:
        """The SQLAlchemy connection in the unit's open transaction, for the caller's own rows.

        Use it only inside the ``with`` block; do not commit or roll it back yourself.
        """
        return self._connection

    def submit(self, submitter: str, submissions: Sequence[Submission]) -> list[Accepted]:
        """Store records in this unit's transaction; their ids and leaf hashes, in order.

        Like :meth:`ledger.log.Ledger.submit`: a reused idempotency key with the same content
        answers the first record (``duplicate``, also within this unit), with other content it is
        a :class:`~ledger.errors.Conflict`; seals are verified before anything is stored. May be
        called more than once. An idempotency key taken by a concurrent writer raises
        :class:`~ledger.errors.WriteConflict`: retry the whole unit.
        """
        self.raise_failure()
        if not submissions:
            return []
        try:
            self._admit(len(submissions))
            keys = [s.idempotency_key for s in submissions if s.idempotency_key is not None]
            existing = self._store.find_idempotent(submitter, keys, self._connection) if keys else {}
            results: list[Accepted] = []
            rows = self._intake.rows(submitter, submissions, existing, results)
            self.stored += self._store.insert_rows(self._connection, rows, expected=len(submissions))
        except DuplicateRecord as e:
            # A concurrent writer used the same idempotency key between lookup and insert.
            self._failure = WriteConflict("idempotency key raced with a concurrent submission")
            raise self._failure from e
        except Exception as e:
            self._failure = e
            raise
        return results

    def raise_failure(self) -> None:
        """Raise the error an earlier :meth:`submit` raised, if any (the unit cannot commit)."""
        if self._failure is not None:
            raise self._failure
