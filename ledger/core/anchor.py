"""Anchors: how a checkpoint is named on chain, and checking a receipt's anchor against chain data.

Frozen format (see ``docs/formats.md``): the registry contract keys a log by
``log_id = SHA-256(origin)`` and stores, per anchored checkpoint, its tree size, root hash and
``checkpoint_hash = H(signed note text, UTF-8)`` with the log's own hash algorithm H, so the
anchor commits to the signature as well as the tree head. The note that is hashed is the
*log-signed* note: the checkpoint body and the log's own signature line only. Witness
cosignatures, added to the note later, are not anchored (a note with one line hashes as before).
Changing any of this breaks every anchored receipt already issued.

Like the rest of ``ledger.core`` this module does no I/O: :func:`check_anchor` takes what a chain
endpoint reported as an argument; fetching it is :mod:`ledger.chain`'s job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ledger.core.checkpoint import NoteSignature, SignedCheckpoint
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.errors import InvalidReceipt

HASH_ALG_IDS: dict[HashAlgorithm, int] = {HashAlgorithm.SHA256: 1, HashAlgorithm.SM3: 2}
"""The registry's numeric ids of tree hash algorithms (``HASH_SHA256``, ``HASH_SM3``)."""

_HEX32 = r"^0x[0-9a-f]{64}$"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def log_id(origin: str) -> bytes:
    """The registry's 32-byte id of the log with this checkpoint origin line."""
    return hashlib.sha256(origin.encode()).digest()


def checkpoint_hash(hash_alg: HashAlgorithm, signed_note: str) -> bytes:
    """The hash of a log-signed checkpoint note (see :func:`anchored_note`) as anchored on chain."""
    return digest_function(hash_alg)(signed_note.encode())


def anchored_note(signed: SignedCheckpoint, log_line: NoteSignature) -> str:
    """The note text that is anchored: the checkpoint with the log's own line ``log_line`` only."""
    return signed.only(log_line).to_text()


class ReceiptAnchor(BaseModel):
    """A receipt's ``anchor`` section: where its checkpoint was anchored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int = Field(ge=1)
    registry: str = Field(pattern=_ADDRESS.pattern, description="registry contract address")
    log_id: str = Field(pattern=_HEX32)
    sequence: int = Field(ge=0, description="0-based number of the checkpoint among the log's anchors")
    tree_size: int = Field(ge=1)
    checkpoint_hash: str = Field(pattern=_HEX32)
    tx_hash: str = Field(pattern=_HEX32)
    block_number: int = Field(ge=0)
    block_hash: str = Field(pattern=_HEX32)


@dataclass(frozen=True)
class OnchainAnchor:
    """An anchored checkpoint as the registry returns it (``AnchorRegistry.Anchor``)."""

    sequence: int
    tree_size: int
    root_hash: bytes
    checkpoint_hash: bytes
    member: str
    block_time: int
    block_number: int


@dataclass(frozen=True)
class AnchorEvent:
    """A ``CheckpointAnchored`` event in a transaction's receipt, with the contract that emitted it."""

    emitter: str
    log_id: bytes
    sequence: int
    tree_size: int
    root_hash: bytes
    checkpoint_hash: bytes


@dataclass(frozen=True)
class TxObservation:
    """What an endpoint reported about a receipt's ``anchor.tx_hash``.

    ``block_number``/``block_hash`` are None while the transaction is pending; ``status`` is the
    receipt's status (1: succeeded); ``to`` is the called contract (None: a deployment);
    ``events`` are every ``CheckpointAnchored`` log of the transaction, from whichever contract.
    """

    block_number: int | None
    block_hash: bytes | None
    status: int | None
    to: str | None
    events: tuple[AnchorEvent, ...] = ()


@dataclass(frozen=True)
class AnchorObservation:
    """What one chain endpoint reported about a receipt's anchor.

    ``registry`` is the contract address the endpoint was read at; ``anchor`` is that registry's
    entry at the receipt's tree size (None: not anchored there); ``block_hash`` is the endpoint's
    canonical block hash at the anchor's block number (None: the endpoint has no such block yet);
    ``tx`` is the receipt's anchoring transaction (None: the endpoint knows no such transaction);
    ``head_block`` is the endpoint's newest block number; ``onchain_inclusion`` is the registry's
    own ``verifyInclusion`` answer for the receipt's leaf (None: not asked).
    """

    endpoint: str
    chain_id: int
    registry: str
    anchor: OnchainAnchor | None
    block_hash: bytes | None
    tx: TxObservation | None
    head_block: int
    onchain_inclusion: bool | None = None


_NULL_TX = "0x" + "00" * 32


def check_anchor(
    anchor: ReceiptAnchor,
    *,
    origin: str,
    hash_alg: HashAlgorithm,
    checkpoint_note: str,
    observation: AnchorObservation,
    confirmations: int = 0,
) -> None:
    """Check that ``observation`` confirms the receipt's anchor; raise ``InvalidReceipt(step="anchor")``.

    ``checkpoint_note`` is the log-signed note (:func:`anchored_note`). The receipt's own
    checkpoint must be the anchored one: same log id, tree size, root and hash of the log-signed
    note; the anchor must sit in the block the receipt names, which must be canonical on that
    endpoint, at least ``confirmations`` blocks deep; and ``anchor.tx_hash`` must be a successful
    transaction to the registry, in that block, that emitted ``CheckpointAnchored`` for exactly
    this checkpoint. Each failure has its own ``reason``.
    """
    where = observation.endpoint

    def fail(message: str, reason: str) -> InvalidReceipt:
        return InvalidReceipt(f"{where}: {message}", step="anchor", reason=reason)

    signed = SignedCheckpoint.from_text(checkpoint_note)
    expected_log_id = log_id(origin)
    if anchor.log_id != "0x" + expected_log_id.hex():
        raise fail(f"anchor log id {anchor.log_id} is not the id of origin {origin!r}", "anchor-log-id")
    expected = checkpoint_hash(hash_alg, checkpoint_note)
    if anchor.checkpoint_hash != "0x" + expected.hex() or anchor.tree_size != signed.checkpoint.size:
        raise fail("the anchor section does not describe the receipt's checkpoint", "anchor-other-checkpoint")
    if observation.chain_id != anchor.chain_id:
        raise fail(f"chain id is {observation.chain_id}, the receipt says {anchor.chain_id}", "wrong-chain")
    if observation.registry.lower() != anchor.registry.lower():
        raise fail(
            f"read registry {observation.registry}, not the receipt's {anchor.registry}", "wrong-registry"
        )
    onchain = observation.anchor
    if onchain is None:
        raise fail(f"no checkpoint of size {anchor.tree_size} is anchored in the registry", "not-anchored")
    if onchain.root_hash != signed.checkpoint.root_hash or onchain.checkpoint_hash != expected:
        raise fail(
            f"the registry holds root {onchain.root_hash.hex()} / checkpoint hash "
            f"{onchain.checkpoint_hash.hex()} at size {anchor.tree_size}, not the receipt's checkpoint",
            "anchor-mismatch",
        )
    if onchain.sequence != anchor.sequence or onchain.block_number != anchor.block_number:
        raise fail(
            f"the registry has this checkpoint as anchor #{onchain.sequence} in block "
            f"{onchain.block_number}, the receipt says #{anchor.sequence} in block {anchor.block_number}",
            "anchor-moved",
        )
    if observation.block_hash is None or "0x" + observation.block_hash.hex() != anchor.block_hash:
        seen = observation.block_hash.hex() if observation.block_hash else "no block"
        raise fail(
            f"block {anchor.block_number} is {seen}, not the receipt's {anchor.block_hash}",
            "block-not-canonical",
        )
    _check_tx(anchor, observation.tx, expected_log_id, signed.checkpoint.root_hash, expected, fail)
    depth = observation.head_block - anchor.block_number
    if depth < confirmations:
        raise fail(
            f"the anchor is {depth} blocks deep; the policy requires {confirmations}", "too-few-confirmations"
        )
    if observation.onchain_inclusion is False:
        raise fail("the registry's verifyInclusion rejects the receipt's leaf and proof", "onchain-inclusion")


def _check_tx(
    anchor: ReceiptAnchor,
    tx: TxObservation | None,
    expected_log_id: bytes,
    root: bytes,
    expected_hash: bytes,
    fail: Callable[[str, str], InvalidReceipt],
) -> None:
    """The receipt's ``tx_hash`` is the registry transaction that anchored exactly this checkpoint."""
    name = f"transaction {anchor.tx_hash}"
    if anchor.tx_hash == _NULL_TX:
        raise fail("the anchor names the all-zero transaction hash", "tx-null")
    if tx is None:
        raise fail(f"{name} does not exist on this chain", "tx-not-found")
    if tx.block_number is None or tx.block_hash is None:
        raise fail(f"{name} is not mined", "tx-pending")
    if tx.status != 1:
        raise fail(f"{name} failed (status {tx.status}) in block {tx.block_number}", "tx-failed")
    if tx.to is None or tx.to.lower() != anchor.registry.lower():
        raise fail(
            f"{name} was sent to {tx.to or 'no contract'}, not the registry {anchor.registry}",
            "tx-other-contract",
        )
    ours = [e for e in tx.events if e.emitter.lower() == anchor.registry.lower()]
    if not ours:
        raise fail(f"{name} emitted no CheckpointAnchored event from the registry", "tx-no-anchor-event")
    wanted = (expected_log_id, anchor.sequence, anchor.tree_size, root, expected_hash)
    if not any((e.log_id, e.sequence, e.tree_size, e.root_hash, e.checkpoint_hash) == wanted for e in ours):
        sizes = ", ".join(f"#{e.sequence} size {e.tree_size}" for e in ours)
        raise fail(f"{name} anchored another checkpoint ({sizes}), not this one", "tx-other-anchor")
    if tx.block_number != anchor.block_number or "0x" + tx.block_hash.hex() != anchor.block_hash:
        raise fail(
            f"{name} is in block {tx.block_number} ({tx.block_hash.hex()}), not the receipt's "
            f"block {anchor.block_number}",
            "tx-other-block",
        )
