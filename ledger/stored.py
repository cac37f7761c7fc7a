"""What the ledger's storage hands back: frozen values of stored records, checkpoints, anchors and
witness state, read by the ledger's public methods and their callers (API, CLI, anchorer, audit).

Plain data with no database handle, so they can be passed around and compared freely.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdempotentHit:
    """A stored record found by its idempotency key."""

    id: str
    request_hash: bytes
    received_at_us: int
    leaf_hash: bytes


@dataclass(frozen=True)
class RegisteredClient:
    """A calling system registered with the log: its name and stored role text (``source:court``)."""

    name: str
    role: str


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored."""

    id: str
    seq: int
    log_index: int | None
    submitter: str
    leaf: bytes
    leaf_hash: bytes
    received_at_us: int


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as stored."""

    seq: int
    tree_size: int
    root_hash: bytes
    timestamp_us: int
    note: str


@dataclass(frozen=True)
class StoredAnchor:
    """An anchor row as stored (fields as in :class:`AnchorRow`)."""

    seq: int
    tree_size: int
    checkpoint_hash: bytes
    state: str
    chain_id: int
    registry_address: str
    tx_hash: str | None
    nonce: int | None
    raw_tx: bytes | None
    sequence: int | None
    block_number: int | None
    block_hash: str | None
    attempts: int
    created_at_us: int
    submitted_at_us: int | None
    confirmed_at_us: int | None
    final_at_us: int | None
    last_error: str | None


@dataclass(frozen=True)
class StoredWitnessPeer:
    """A witness peer row as stored (fields as in :class:`WitnessPeerRow`)."""

    name: str
    acknowledged_size: int | None
    last_attempt_us: int | None
    last_success_us: int | None
    last_error: str | None


@dataclass(frozen=True)
class SequencedBatch:
    """What one sequencer transaction did."""

    count: int
    size: int
    root_hash: bytes
