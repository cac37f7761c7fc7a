"""The transparency log service: intake, sequencing, checkpoints, receipts and proofs.

Trillian's model: writers insert records in one transaction and return at once with an id; one
sequencer (per database) assigns log indices and integrates batches into the tile-stored tree;
checkpoints are signed per batch of records on a schedule or on demand, never per record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ledger.core.checkpoint import (
    MAX_NOTE_SIGNATURES,
    Checkpoint,
    NoteSignature,
    SignedCheckpoint,
    sign_checkpoint,
)
from ledger.core.crypto import (
    HashAlgorithm,
    Sm2PrivateKey,
    Sm2PublicKey,
    hmac_sm3,
    subject_ref,
)
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import LeafData, RecordKind, decode_leaf, encode_leaf
from ledger.core.receipt import (
    RECEIPT_FORMAT,
    RECEIPT_VERSION,
    Receipt,
    ReceiptInclusion,
    ReceiptLog,
    receipt_record,
)
from ledger.errors import (
    InvalidRequest,
    LogOverloaded,
    NotFound,
    NotYetAvailable,
    StorageError,
    WriteConflict,
)
from ledger.intake import Accepted, Intake, Submission, new_record_id, now_us
from ledger.proofs import TileProofs, receipt_anchor
from ledger.signing import LogSigningKeys, StaticSigningKey
from ledger.store import INTEGRITY_ERRORS, LogStore
from ledger.stored import RegisteredClient, SequencedBatch, StoredAnchor, StoredCheckpoint
from ledger.unit_of_work import UnitOfWork

__all__ = [
    "Accepted",
    "Ledger",
    "LogProgress",
    "LogSigningKeys",
    "RecordInfo",
    "RecordStatus",
    "StaticSigningKey",
    "SubjectFamily",
    "Submission",
    "UnitOfWork",
    "new_record_id",
    "now_us",
    "receipt_anchor",
]

_logger = logging.getLogger(__name__)
_SUBMIT_ATTEMPTS = 3  # a one-call unit of work retried when an idempotency key raced

CommitListener = Callable[[int], None]
"""Called after each committed unit of work that stored new records, with how many."""


SUBJECT_FAMILY_DOMAIN = b"trustledger/subject-family/v1\x00"


class SubjectFamily(StrEnum):
    """Record families with their own subject references (see :meth:`Ledger.subject_ref`)."""

    CREDIT = "credit"  # the credit engine's records (the original, unseparated key)
    RECORD = "record"  # records notarized through the records API


class RecordStatus(StrEnum):
    """Where a record is in its life."""

    PENDING = "pending"  # accepted, waiting for the sequencer
    SEQUENCED = "sequenced"  # has a log index, no checkpoint covers it yet
    CHECKPOINTED = "checkpointed"  # a signed checkpoint covers it: a receipt is available


@dataclass(frozen=True)
class LogProgress:
    """How far the log is: the sequenced size, the records waiting, the newest checkpoint's size."""

    tree_size: int
    pending: int
    checkpoint_size: int | None


@dataclass(frozen=True)
class RecordInfo:
    """A record's status."""

    id: str
    status: RecordStatus
    log_index: int | None
    received_at_us: int
    leaf: LeafData


class Ledger:
    """One log: the public functions everything else (API, credit engine, CLI) goes through.

    Nothing outside ``ledger/`` touches :attr:`store` (the SQL) or its engine. The public surface:

    - intake: :meth:`submit`; :meth:`unit_of_work` (records and the caller's rows in one
      transaction, see :mod:`ledger.unit_of_work`); :meth:`subject_ref`;
    - reading: :meth:`record`, :meth:`records`, :meth:`iter_records`, :meth:`receipt`,
      :meth:`latest_checkpoint`, :meth:`progress`, :meth:`current_size`, :meth:`pending_count`,
      :meth:`anchors`, proofs (:meth:`inclusion_proof`, :meth:`consistency_proof`);
    - background work: :meth:`sequence`, :meth:`sequence_all`, :meth:`issue_checkpoint`;
      :meth:`add_commit_listener` (the sequencer wakes itself on new records);
    - calling systems: :meth:`register_client`, :meth:`client_by_key_hash`,
      :meth:`register_seal_key`;
    - for packages built on the ledger that keep their own tables in its database (the credit
      engine): :meth:`unit_of_work` to write, :meth:`reading` to read, :meth:`create_tables`,
      :meth:`has_table`, :attr:`dialect`; :meth:`after_fork` in a forked worker and
      :meth:`close` at shutdown.
    """

    def __init__(
        self,
        store: LogStore,
        *,
        origin: str,
        hash_alg: HashAlgorithm,
        signing_key: Sm2PrivateKey | LogSigningKeys,
        subject_secret: bytes,
        max_pending: int = 2_000_000,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.origin = origin
        self.hash_alg = hash_alg
        self.hasher = tree_hasher(hash_alg)
        self._keys: LogSigningKeys = (
            StaticSigningKey(signing_key) if isinstance(signing_key, Sm2PrivateKey) else signing_key
        )
        self._subject_secret = subject_secret
        self.max_pending = max_pending
        self.clock = clock
        self._proofs = TileProofs(store, self.hasher)
        self._pending_estimate = 0
        self._pending_checked_at = 0.0
        self._intake = Intake(store, self.hasher.leaf_hash, self._now)
        self._commit_listeners: tuple[CommitListener, ...] = ()
        self._listeners_lock = threading.Lock()

    def _now(self) -> int:
        return self.clock()

    @property
    def public_key(self) -> Sm2PublicKey:
        """The log key new checkpoints are signed with (after a rotation: the new one)."""
        return self._keys.current().public_key()

    @property
    def _signing_key(self) -> Sm2PrivateKey:
        # The current key, for tests and tools that build a second ledger over the same log.
        return self._keys.current()

    def checkpoint_signer(self, note: str) -> Sm2PublicKey:
        """Which of the log's keys signed the checkpoint ``note`` (by its signature line's key hash).

        A receipt names this key, so receipts against checkpoints signed before a rotation name the
        old key. A note with no line of a known key gives the current key (and fails verification).
        """
        signed = SignedCheckpoint.from_text(note)
        keys = self._keys.public_keys()
        return next((k for k in keys if signed.signature_of(self.origin, k) is not None), keys[0])

    # --- set-up -------------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the tables and the log row, or check that the database holds this log."""
        self.store.create_schema(
            origin=self.origin, hash_alg=self.hash_alg.value, empty_root=self.hasher.empty_root()
        )

    def create_tables(self, tables: Sequence[Table]) -> None:
        """Create a package's own ``tables`` in the ledger's database where missing, with their
        indexes (and any index missing from an existing table); idempotent, one transaction.

        Changes to existing tables (an added column) go first, through a :meth:`unit_of_work`'s
        connection.
        """
        self.store.create_tables(tables)

    def has_table(self, name: str) -> bool:
        """Whether the ledger's database has a table ``name`` (e.g. whether a package set up its own)."""
        return self.store.has_table(name)

    @property
    def dialect(self) -> str:
        """The database's SQLAlchemy dialect name: ``sqlite`` or ``postgresql``."""
        return self.store.dialect

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read connection to the ledger's database, for the tables of packages built on the ledger.

        Its transaction is rolled back at the end: write through :meth:`unit_of_work`. On SQLite
        its reads see one snapshot; on PostgreSQL each statement sees what is committed when it
        starts (read committed). Database errors become :class:`~ledger.errors.StorageError`.
        """
        with self.store.reading() as conn:
            yield conn

    def after_fork(self) -> None:
        """In a forked worker process: drop the pooled connections inherited from the parent
        without closing them (they are the parent's), so the child opens its own."""
        self.store.dispose(close=False)

    def close(self) -> None:
        """Close the pooled database connections (at shutdown; the ledger reconnects if used again)."""
        self.store.dispose()

    # --- calling systems ------------------------------------------------------------------------

    def register_client(self, name: str, role: str, key_hash: bytes) -> None:
        """Register a calling system with its stored role text and the SM3 hash of its API key."""
        self.store.add_client(name, role, key_hash, self.clock())

    def client_by_key_hash(self, key_hash: bytes) -> RegisteredClient | None:
        """The enabled calling system whose API key hashes to ``key_hash``."""
        return self.store.client_by_key_hash(key_hash)

    def register_seal_key(self, key_id: str, system: str, public_key_hex: str) -> None:
        """Register an SM2 public key that ``system`` seals its records with."""
        self.store.add_seal_key(key_id, system, public_key_hex, self.clock())

    def subject_ref(self, identifier: str, *, family: SubjectFamily = SubjectFamily.RECORD) -> bytes:
        """The keyed hash (HMAC-SM3) that stands for a subject in leaves; the raw ID never does.

        References are domain-separated per record family, so that a notarizer who attaches an ID
        to its own record cannot read back the reference the credit engine files that person's
        credit data under. The credit family keeps the original key (existing credit data stays
        valid); every other family keys the same HMAC with ``HMAC-SM3(secret, FAMILY_DOMAIN ||
        family)`` (docs/formats.md).
        """
        if not identifier.strip():
            raise InvalidRequest("empty subject identifier", reason="invalid-subject")
        key = self._subject_secret
        if family is not SubjectFamily.CREDIT:
            key = hmac_sm3(key, SUBJECT_FAMILY_DOMAIN + family.value.encode())
        return bytes.fromhex(subject_ref(key, identifier))

    # --- intake -------------------------------------------------------------------------------

    def submit(self, submitter: str, submissions: Sequence[Submission]) -> list[Accepted]:
        """Accept records atomically (all or none) and return their ids at once: a unit of work
        with one :meth:`UnitOfWork.submit` (see there), retried when an idempotency key raced.
        To store rows of your own with the records, use :meth:`unit_of_work`."""
        if not submissions:
            return []
        for attempt in range(_SUBMIT_ATTEMPTS):
            try:
                with self.unit_of_work() as unit:
                    accepted = unit.submit(submitter, submissions)
                return accepted
            except WriteConflict:
                if attempt == _SUBMIT_ATTEMPTS - 1:
                    raise
        raise StorageError("could not store records")  # pragma: no cover - the loop returns or raises

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """A write transaction for ledger records and the caller's own rows (:mod:`ledger.unit_of_work`).

        Commits on a clean exit, rolls back on an exception: the records and the rows are stored
        together or not at all. A unique key taken by a concurrent writer (an idempotency key, or
        a key of the caller's rows) raises :class:`~ledger.errors.WriteConflict` (a
        :class:`~ledger.errors.Conflict`) and nothing is stored: retry the whole unit. After the
        commit the commit listeners hear how many new records it stored.
        """
        try:
            with self.store.transaction() as conn:
                unit = UnitOfWork(
                    conn, store=self.store, intake=self._intake, admit=self._check_back_pressure
                )
                yield unit
                unit.raise_failure()  # a swallowed submit error: never commit a partial unit
        except INTEGRITY_ERRORS as e:
            # The driver's text (kept as the cause) names tables and values: not for the caller.
            raise WriteConflict("a concurrent writer took a unique key this unit needed; retry") from e
        if unit.stored:
            self._pending_estimate += unit.stored
            self._tell_listeners(unit.stored)

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(n)`` after each committed unit of work that stored ``n`` > 0 new records
        (in the committing thread; exceptions are logged, never passed to the writer)."""
        with self._listeners_lock:
            self._commit_listeners = (*self._commit_listeners, listener)

    def remove_commit_listener(self, listener: CommitListener) -> None:
        """Stop calling ``listener`` (no-op if it was not added)."""
        with self._listeners_lock:
            self._commit_listeners = tuple(x for x in self._commit_listeners if x != listener)

    def _tell_listeners(self, stored: int) -> None:
        for listener in self._commit_listeners:
            try:
                listener(stored)
            except Exception:  # noqa: BLE001 - the records are committed: a listener must not undo that
                _logger.exception("commit listener failed", extra={"records": stored})

    def _check_back_pressure(self, incoming: int) -> None:
        now = time.monotonic()
        if now - self._pending_checked_at > 1.0:
            # Counting a large backlog takes ~200 ms on PostgreSQL; count only near the limit.
            estimate = self.store.pending_upper_bound()
            if estimate + incoming > self.max_pending:
                estimate = self.store.pending_count()
            self._pending_estimate = estimate
            self._pending_checked_at = now
        if self._pending_estimate + incoming > self.max_pending:
            raise LogOverloaded(
                f"{self._pending_estimate} records wait for sequencing "
                f"(limit {self.max_pending}); retry shortly",
                retry_after=2,
            )

    # --- sequencing and checkpoints -------------------------------------------------------------

    def sequence(self, max_records: int = 10_000) -> SequencedBatch | None:
        """Sequence one batch; None when another process holds the sequencer lock."""
        batch = self.store.sequence_batch(self.hasher, max_records)
        if batch is not None and batch.count:
            self._pending_estimate = max(0, self._pending_estimate - batch.count)
            _logger.info("sequenced", extra={"count": batch.count, "tree_size": batch.size})
        return batch

    def sequence_all(self, max_records: int = 10_000) -> int:
        """Sequence until nothing is pending (or another process has the lock); how many were sequenced."""
        total = 0
        while True:
            batch = self.sequence(max_records)
            if batch is None or batch.count == 0:
                return total
            total += batch.count

    def issue_checkpoint(self) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the current tree if it grew since the last one.

        Returns the newest checkpoint (the existing one when nothing changed), or None when the log
        is empty or another process is issuing one right now.
        """
        with self.store.checkpoint_lock() as conn:
            if conn is None:
                return None
            state = self.store.state()
            latest = self.store.latest_checkpoint(conn)
            if latest is not None and latest.tree_size >= state.size:
                return latest
            if state.size == 0:
                return None
            timestamp = self.clock()
            if latest is not None and timestamp <= latest.timestamp_us:
                timestamp = latest.timestamp_us + 1  # checkpoint times never go backwards
            checkpoint = Checkpoint(self.origin, state.size, state.root_hash, self.hash_alg, timestamp)
            note = sign_checkpoint(checkpoint, self.origin, self._keys.signing_key(state.size)).to_text()
            self.store.add_checkpoint(conn, state.size, state.root_hash, timestamp, note)
            _logger.info("checkpoint issued", extra={"tree_size": state.size})
            return StoredCheckpoint(-1, state.size, state.root_hash, timestamp, note)

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The newest signed checkpoint."""
        latest = self.store.latest_checkpoint()
        if latest is None:
            raise NotYetAvailable("no checkpoint has been issued yet", reason="no-checkpoint")
        return SignedCheckpoint.from_text(self.cosigned_note(latest))

    def cosigned_note(self, checkpoint: StoredCheckpoint) -> str:
        """The checkpoint's signed note: the log's line first, then the witnesses' stored cosignatures.

        What is anchored stays the stored, log-signed note alone (``checkpoint.note``); verifiers
        ignore the lines of keys they do not know (C2SP signed-note).
        """
        lines = self.store.cosignature_lines(checkpoint.tree_size)
        if not lines:
            return checkpoint.note
        signed = SignedCheckpoint.from_text(checkpoint.note)
        room = MAX_NOTE_SIGNATURES - len(signed.signatures)
        return signed.with_signatures([NoteSignature.from_line(line) for line in lines[:room]]).to_text()

    # --- reading --------------------------------------------------------------------------------

    def record(self, record_id: str) -> RecordInfo:
        """A record's status by id (ids are 128-bit random capabilities)."""
        return self._record_with_checkpoint(record_id)[0]

    def records(self, record_ids: Sequence[str]) -> dict[str, tuple[int, LeafData]]:
        """Leaves of many records by id: ``{id: (intake position, leaf)}`` (unknown ids are absent).

        The intake position orders records as they were accepted, sequenced or not.
        """
        return {r.id: (r.seq, decode_leaf(r.leaf)) for r in self.store.records(record_ids)}

    def iter_records(self, kinds: Sequence[RecordKind]) -> Iterator[tuple[str, int, LeafData]]:
        """Every record of ``kinds`` as (id, intake position, leaf), in intake order."""
        for r in self.store.iter_records([k.value for k in kinds]):
            yield r.id, r.seq, decode_leaf(r.leaf)

    def pending_count(self) -> int:
        """How many accepted records wait for the sequencer."""
        return self.store.pending_count()

    def progress(self) -> LogProgress:
        """The sequenced size, the records waiting and the newest checkpoint's size."""
        latest = self.store.latest_checkpoint()
        return LogProgress(
            tree_size=self.current_size(),
            pending=self.store.pending_count(),
            checkpoint_size=latest.tree_size if latest is not None else None,
        )

    def anchors(self, *, states: Sequence[str] | None = None, limit: int = 100) -> list[StoredAnchor]:
        """Anchor attempts (all, or those in ``states``), newest first."""
        return self.store.anchors(states=states, limit=limit)

    def _record_with_checkpoint(self, record_id: str) -> tuple[RecordInfo, StoredCheckpoint | None]:
        """The record and the newest checkpoint its status was judged against."""
        stored = self.store.get_record(record_id)
        if stored is None:
            raise NotFound(f"no record {record_id!r}", reason="unknown-record")
        status, latest = RecordStatus.PENDING, None
        if stored.log_index is not None:
            latest = self.store.latest_checkpoint()
            covered = latest is not None and latest.tree_size > stored.log_index
            status = RecordStatus.CHECKPOINTED if covered else RecordStatus.SEQUENCED
        info = RecordInfo(
            stored.id, status, stored.log_index, stored.received_at_us, decode_leaf(stored.leaf)
        )
        return info, latest

    def receipt(self, record_id: str) -> Receipt:
        """The receipt of a record: against the newest anchored checkpoint covering it, with its
        ``anchor`` section, or else against the newest checkpoint (to be refreshed once anchored)."""
        info, latest = self._record_with_checkpoint(record_id)
        if info.status is not RecordStatus.CHECKPOINTED or info.log_index is None or latest is None:
            raise NotYetAvailable(
                f"record {record_id} is {info.status.value}; "
                "its receipt is ready once a checkpoint covers it",
                reason="receipt-pending",
            )
        checkpoint, anchor = latest, None
        anchored = self.store.anchored_checkpoint(min_size=info.log_index)
        if anchored is not None:
            row, checkpoint = anchored
            anchor = receipt_anchor(self.origin, row)
        proof = self.inclusion_proof(info.log_index, checkpoint.tree_size)
        signer = self.checkpoint_signer(checkpoint.note)
        return Receipt(
            format=RECEIPT_FORMAT,
            version=RECEIPT_VERSION,
            record=receipt_record(info.id, info.leaf),
            log=ReceiptLog(
                origin=self.origin,
                hash_alg=self.hash_alg,
                public_key=signer.hex(),
                key_id=signer.key_id(),
            ),
            inclusion=ReceiptInclusion(
                index=info.log_index,
                tree_size=checkpoint.tree_size,
                leaf_hash=self.hasher.leaf_hash(encode_leaf(info.leaf)).hex(),
                hashes=[h.hex() for h in proof],
            ),
            checkpoint=self.cosigned_note(checkpoint),
            anchor=anchor,
        )

    def current_size(self) -> int:
        """The sequenced tree size."""
        return int(self.store.state().size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` (one tile query)."""
        return self._proofs.inclusion_proof(index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof between tree sizes ``first`` <= ``second``."""
        return self._proofs.consistency_proof(first, second, self.current_size)
