"""The anchoring pipeline: checkpoints onto the chain, one persisted state machine per anchor.

Each anchor row moves ``pending → submitted (tx hash, nonce, raw tx) → confirmed (block) → final``
(or ``superseded`` / ``failed``). Every transition is written to the database before the next
step touches the chain, and every step first asks the chain what it already has, so a crash or
restart at any point resumes without a duplicate and without a loss:

* the signed transaction is stored *before* it is broadcast; after a crash it is re-broadcast
  byte for byte (same hash, same nonce), so at most one of its copies can ever be mined;
* before (re)sending, the registry is asked whether the checkpoint is already anchored; the
  contract itself also refuses a second anchor of the same size (``NotGrowing``);
* a confirmed anchor whose block is no longer canonical (a reorg) goes back to ``submitted``
  and is found again in its new block or re-sent; final anchors stay watched for
  ``reorg_watch_blocks``.

Only one anchor is in flight at a time: each new anchor carries a consistency proof from the
previously anchored size, which the contract verifies. The trigger is size or age (Tessera's
batcher): anchor when ``min_entries`` new entries are in the log or ``interval_s`` passed since
the last anchor. While the chain is unreachable nothing here blocks intake or sequencing; the
next run after it returns anchors the newest checkpoint, covering everything in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from apscheduler.schedulers.background import BackgroundScheduler

from ledger.chain.connect import ChainConnection
from ledger.chain.registry import RegistryClient, SignedTx, TxState
from ledger.core.anchor import HASH_ALG_IDS, OnchainAnchor, anchored_note, checkpoint_hash, log_id
from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.merkle import verify_consistency
from ledger.errors import ChainError, ChainRejected, ChainUnavailable, InvalidProof, LedgerError
from ledger.log import Ledger
from ledger.stored import StoredAnchor

_logger = logging.getLogger(__name__)


class AnchorState(StrEnum):
    """States of an anchor row."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FINAL = "final"
    SUPERSEDED = "superseded"
    FAILED = "failed"


IN_FLIGHT = (AnchorState.PENDING, AnchorState.SUBMITTED, AnchorState.CONFIRMED)
ANCHORED = (AnchorState.SUBMITTED, AnchorState.CONFIRMED, AnchorState.FINAL)


@dataclass(frozen=True)
class AnchorPolicy:
    """When to anchor and how long to wait (defaults suit a city: every 10 s or 10,000 entries)."""

    interval_s: float = 10.0
    min_entries: int = 10_000
    confirmations: int = 0
    tx_timeout_s: float = 60.0
    reorg_watch_blocks: int = 64


@dataclass
class AnchorRun:
    """What one run did (for logs and tests)."""

    ran: bool = False
    created: int | None = None
    transitions: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class AnchoringStatus:
    """How far behind anchoring is."""

    log_size: int
    checkpoint_size: int
    anchored_size: int
    entries_behind: int
    oldest_unanchored_age_s: float | None
    last_anchor: StoredAnchor | None
    in_flight: StoredAnchor | None
    last_error: str | None


class Anchorer:
    """Runs the anchoring state machine for one log against one registry.

    ``connect`` opens the registry client (lazily, and again after a failure, so an embedded
    chain held by another process or an unreachable node is retried on the next run).
    """

    def __init__(
        self,
        ledger: Ledger,
        connect: Callable[[], ChainConnection],
        policy: AnchorPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.store = ledger.store
        self.policy = policy or AnchorPolicy()
        self._connect = connect
        self._connection: ChainConnection | None = None
        self._clock = clock
        self.log_id = log_id(ledger.origin)
        self.last_error: str | None = None
        self._watched_head: tuple[int, str | None] | None = None

    @property
    def client(self) -> RegistryClient:
        """The registry client, connecting on first use."""
        if self._connection is None:
            self._connection = self._connect()
        return self._connection.client

    def close(self) -> None:
        """Release the chain connection (the embedded chain's ownership)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def schedule(self, scheduler: BackgroundScheduler, tick_s: float) -> None:
        """Run :meth:`run_once` every ``tick_s`` seconds on ``scheduler`` (never two at once)."""
        scheduler.add_job(
            self.run_once, "interval", seconds=tick_s, id="anchor", max_instances=1, coalesce=True
        )

    def run_once(self, *, force: bool = False) -> AnchorRun:
        """Advance in-flight anchors; start a new one if due (or ``force``). Chain trouble is not raised."""
        run = AnchorRun()
        with self.store.anchor_lock() as got:
            if not got:
                return run
            run.ran = True
            try:
                client = self.client
                self._watch_reorgs(client, run)
                for row in sorted(self.store.anchors(states=IN_FLIGHT), key=lambda r: r.tree_size):
                    self._advance(client, row, run)
                if not self.store.anchors(states=IN_FLIGHT, limit=1):
                    created = self._create_if_due(force=force)
                    if created is not None:
                        run.created = created.tree_size
                        self._advance(client, created, run)
                self.last_error = None
            except ChainUnavailable as e:
                if e.message != self.last_error:  # once per outage, not once per tick
                    _logger.warning("anchoring paused: %s", e.message)
                run.error = self.last_error = e.message
            except LedgerError as e:
                if e.message != self.last_error:
                    _logger.error("anchoring error: %s", e.diagnostics())
                run.error = self.last_error = e.message
        return run

    def anchor_now(self, *, timeout_s: float = 60.0) -> StoredAnchor | None:
        """Anchor the newest checkpoint now and wait (bounded) until it is final; for CLI and API."""
        deadline = time.monotonic() + timeout_s
        self.ledger.issue_checkpoint()
        target = self.store.latest_checkpoint()
        if target is None:
            return None
        while True:
            self.run_once(force=True)
            row = self.store.latest_anchor([AnchorState.FINAL])
            if row is not None and row.tree_size >= target.tree_size:
                return row
            failed = self.store.anchor_by_size(target.tree_size)
            if failed is not None and failed.state == AnchorState.FAILED:
                raise ChainError(f"anchoring checkpoint {target.tree_size} failed: {failed.last_error}")
            if time.monotonic() >= deadline:
                raise ChainUnavailable(
                    f"checkpoint {target.tree_size} not anchored within {timeout_s} s: {self.last_error}"
                )
            time.sleep(0.2)

    # --- steps ----------------------------------------------------------------------------------

    def _create_if_due(self, *, force: bool) -> StoredAnchor | None:
        last = self.store.latest_anchor(ANCHORED)
        last_size = last.tree_size if last else 0
        size = self.ledger.current_size()
        if size <= last_size:
            return None
        now = self._clock()
        aged = last is None or now - last.created_at_us / 1e6 >= self.policy.interval_s
        if not force and not aged and size - last_size < self.policy.min_entries:
            return None
        self.ledger.issue_checkpoint()
        checkpoint = self.store.latest_checkpoint()
        if checkpoint is None or checkpoint.tree_size <= last_size:
            return None
        client = self.client
        return self.store.add_anchor(
            tree_size=checkpoint.tree_size,
            checkpoint_hash=checkpoint_hash(self.ledger.hash_alg, _log_signed_note(checkpoint.note)),
            state=AnchorState.PENDING.value,
            chain_id=client.chain_id,
            registry_address=client.address,
            created_at_us=int(now * 1e6),
        )

    def _advance(self, client: RegistryClient, row: StoredAnchor, run: AnchorRun) -> None:
        """Move ``row`` on as far as the chain allows now."""
        for _ in range(6):  # bounded: each pass makes one transition or returns
            current = self.store.anchor_by_size(row.tree_size)
            if current is None or current.state not in IN_FLIGHT:
                return
            row = current
            if row.state == AnchorState.PENDING:
                step = self._submit(client, row)
            elif row.state == AnchorState.SUBMITTED:
                step = self._check_submitted(client, row)
            else:
                step = self._check_confirmed(client, row)
            if step is None:
                return
            run.transitions.append(f"{row.tree_size}:{row.state}->{step}")

    def _submit(self, client: RegistryClient, row: StoredAnchor, *, nonce: int | None = None) -> str | None:
        """Send the anchor unless the chain already has it; store the signed tx before sending."""
        previous = client.latest_anchor(self.log_id)
        resolved = self._resolve_from_chain(client, row, previous)
        if resolved is not None:
            return resolved
        proof: list[bytes] = []
        checkpoint = self.store.checkpoint_at(row.tree_size)
        if checkpoint is None:
            return self._fail(row, f"checkpoint {row.tree_size} is missing from the database")
        if previous is not None:
            proof = self.ledger.consistency_proof(previous.tree_size, row.tree_size)
            try:
                verify_consistency(
                    self.ledger.hasher,
                    previous.tree_size,
                    row.tree_size,
                    previous.root_hash,
                    checkpoint.root_hash,
                    proof,
                )
            except InvalidProof as e:
                return self._fail(
                    row,
                    f"the chain's anchor at size {previous.tree_size} (root {previous.root_hash.hex()}) is "
                    f"not a prefix of this log: {e.message}",
                )
        try:
            signed = client.sign_anchor(
                log_id=self.log_id,
                hash_alg_id=HASH_ALG_IDS[self.ledger.hash_alg],
                tree_size=row.tree_size,
                root_hash=checkpoint.root_hash,
                checkpoint_hash=row.checkpoint_hash,
                proof=proof,
                nonce=nonce,
                fee_bump_percent=25 * row.attempts if nonce is not None else 0,
            )
        except ChainRejected as e:
            return self._fail(row, e.message)
        moved = self.store.update_anchor(
            row.seq,
            expect_state=row.state,
            state=AnchorState.SUBMITTED.value,
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            raw_tx=signed.raw,
            attempts=row.attempts + 1,
            submitted_at_us=int(self._clock() * 1e6),
            block_number=None,
            block_hash=None,
            last_error=None,
        )
        if not moved:
            return None
        self._broadcast(client, signed)
        self._await_mined(client, signed.tx_hash)
        return AnchorState.SUBMITTED

    def _await_mined(self, client: RegistryClient, tx_hash: str) -> None:
        """Wait briefly (bounded) for a just-sent tx, so instant-finality chains confirm in this run."""
        deadline = time.monotonic() + min(2.0, self.policy.tx_timeout_s)
        while time.monotonic() < deadline:
            if client.tx_status(tx_hash).state not in (TxState.PENDING, TxState.UNKNOWN):
                return
            time.sleep(0.05)

    def _broadcast(self, client: RegistryClient, signed: SignedTx) -> None:
        try:
            client.broadcast(signed)
        except ChainRejected as e:
            _logger.warning("broadcast of %s refused: %s", signed.tx_hash, e.message)

    def _check_submitted(self, client: RegistryClient, row: StoredAnchor) -> str | None:
        if row.tx_hash is None:
            return self._to(row, AnchorState.PENDING)
        status = client.tx_status(row.tx_hash)
        if status.state is TxState.MINED:
            return self._to(
                row,
                AnchorState.CONFIRMED,
                block_number=status.block_number,
                block_hash=status.block_hash,
                sequence=status.sequence,
                confirmed_at_us=int(self._clock() * 1e6),
            )
        if status.state is TxState.REVERTED:
            resolved = self._resolve_from_chain(client, row, client.latest_anchor(self.log_id))
            return resolved or self._fail(
                row, f"anchor transaction {row.tx_hash} reverted in block {status.block_number}"
            )
        age = self._clock() - (row.submitted_at_us or 0) / 1e6
        if status.state is TxState.PENDING:
            if age >= self.policy.tx_timeout_s:
                # Stuck in the pool: replace it (same nonce, higher fee); only one can be mined.
                return self._resubmit(client, row, nonce=row.nonce)
            return None
        # Unknown to the node: never arrived (crash before broadcast), dropped, or reorged out.
        resolved = self._resolve_from_chain(client, row, client.latest_anchor(self.log_id))
        if resolved is not None:
            return resolved
        if row.raw_tx is not None and age < self.policy.tx_timeout_s:
            self._broadcast(client, SignedTx(row.tx_hash, row.nonce or 0, row.raw_tx))
            return None
        return self._resubmit(client, row, nonce=None)

    def _resubmit(self, client: RegistryClient, row: StoredAnchor, *, nonce: int | None) -> str | None:
        if not self.store.update_anchor(row.seq, expect_state=row.state, state=AnchorState.PENDING.value):
            return None
        pending = self.store.anchor_by_size(row.tree_size)
        if pending is None:
            return None
        _logger.warning("re-sending anchor of size %s (attempt %s)", row.tree_size, row.attempts + 1)
        return self._submit(client, pending, nonce=nonce)

    def _check_confirmed(self, client: RegistryClient, row: StoredAnchor) -> str | None:
        if row.block_number is None:
            return self._to(row, AnchorState.SUBMITTED)
        canonical = client.block_hash(row.block_number)
        if canonical != row.block_hash:
            _logger.warning(
                "anchor of size %s: block %s was reorganised away", row.tree_size, row.block_number
            )
            return self._to(
                row,
                AnchorState.SUBMITTED,
                block_number=None,
                block_hash=None,
                submitted_at_us=int(self._clock() * 1e6),
            )
        if client.head() - row.block_number < self.policy.confirmations:
            return None
        if len(client.endpoints) > 1:
            # Final only when no member endpoint contradicts it (raises ChainDisagreement).
            client.read_everywhere(self.log_id, row.tree_size)
        return self._to(row, AnchorState.FINAL, final_at_us=int(self._clock() * 1e6))

    def _watch_reorgs(self, client: RegistryClient, run: AnchorRun) -> None:
        """Demote final anchors in the watch window whose block left the canonical chain."""
        if self.policy.reorg_watch_blocks == 0:
            return
        recent = [
            (r, r.block_number)
            for r in self.store.anchors(states=[AnchorState.FINAL], limit=32)
            if r.block_number is not None
        ]
        if not recent:
            return
        head = client.head()
        head_hash = client.block_hash(head)
        if (head, head_hash) == self._watched_head:
            return  # the chain has not moved since the last check
        self._watched_head = (head, head_hash)
        for row, block_number in recent:
            if head - block_number > self.policy.reorg_watch_blocks:
                continue
            if client.block_hash(block_number) != row.block_hash:
                _logger.warning("final anchor of size %s was reorganised away; re-checking", row.tree_size)
                self._to(row, AnchorState.SUBMITTED, block_number=None, block_hash=None, final_at_us=None)
                run.transitions.append(f"{row.tree_size}:final->submitted")

    def _resolve_from_chain(
        self, client: RegistryClient, row: StoredAnchor, latest: OnchainAnchor | None
    ) -> str | None:
        """If the chain already settled this checkpoint, record that and say which state followed.

        ``latest`` is the log's newest anchor on chain; anchored sizes only grow, so a newest
        anchor below this size means the chain has nothing at this size yet.
        """
        if latest is None or latest.tree_size < row.tree_size:
            return None
        onchain = (
            latest if latest.tree_size == row.tree_size else client.anchor_by_size(self.log_id, row.tree_size)
        )
        if onchain is not None:
            if onchain.checkpoint_hash != row.checkpoint_hash:
                return self._fail(
                    row,
                    f"the registry holds a different checkpoint at size {row.tree_size} "
                    f"(hash {onchain.checkpoint_hash.hex()}): the log was forked or the key misused",
                )
            found = client.anchor_tx(self.log_id, row.tree_size, onchain.block_number)
            if found is None:
                return None
            tx_hash, sequence = found
            return self._to(
                row,
                AnchorState.CONFIRMED,
                tx_hash=tx_hash,
                sequence=sequence,
                block_number=onchain.block_number,
                block_hash=client.block_hash(onchain.block_number),
                confirmed_at_us=int(self._clock() * 1e6),
            )
        return self._to(row, AnchorState.SUPERSEDED)  # a later checkpoint was anchored instead

    def _to(self, row: StoredAnchor, state: AnchorState, **values: object) -> str | None:
        if self.store.update_anchor(row.seq, expect_state=row.state, state=state.value, **values):
            return state.value
        return None

    def _fail(self, row: StoredAnchor, message: str) -> str | None:
        _logger.error("anchor of size %s failed: %s", row.tree_size, message)
        self.last_error = message
        return self._to(row, AnchorState.FAILED, last_error=message)

    # --- status -----------------------------------------------------------------------------------

    def status(self) -> AnchoringStatus:
        """How far behind anchoring is (see :func:`anchoring_status`)."""
        return anchoring_status(self.ledger, last_error=self.last_error, now=self._clock())


def anchoring_status(
    ledger: Ledger, *, last_error: str | None = None, now: float | None = None
) -> AnchoringStatus:
    """Entries not yet covered by a final anchor, the age of the oldest of them, and what is in flight."""
    store = ledger.store
    size = ledger.current_size()
    checkpoint = store.latest_checkpoint()
    last = store.latest_anchor([AnchorState.FINAL])
    in_flight = store.latest_anchor(IN_FLIGHT)
    anchored = last.tree_size if last else 0
    age = None
    if anchored < size:
        oldest = store.record_at(anchored)
        if oldest is not None:
            age = max(0.0, (now if now is not None else time.time()) - oldest.received_at_us / 1e6)
    error = last_error or (in_flight.last_error if in_flight else None)
    return AnchoringStatus(
        log_size=size,
        checkpoint_size=checkpoint.tree_size if checkpoint else 0,
        anchored_size=anchored,
        entries_behind=size - anchored,
        oldest_unanchored_age_s=age,
        last_anchor=last,
        in_flight=in_flight,
        last_error=error,
    )


__all__ = [
    "ANCHORED",
    "IN_FLIGHT",
    "AnchorPolicy",
    "AnchorRun",
    "AnchorState",
    "Anchorer",
    "AnchoringStatus",
    "anchoring_status",
]


def _log_signed_note(note: str) -> str:
    """What is anchored: the stored note with the log's own line (the first) only, never cosignatures."""
    signed = SignedCheckpoint.from_text(note)
    return anchored_note(signed, signed.signatures[0])
