"""Anchors: how a checkpoint is named on chain, and checking a receipt's anchor against chain data.

Frozen format (see ``docs/formats.md``): the registry contract keys a log by
``log_id = SHA-256(origin)`` and stores, per anchored checkpoint, its tree size, root hash and
``checkpoint_hash = H(signed note text, UTF-8)`` with the log's own hash algorithm H, so the
anchor commits to the signature as well as the tree head. Changing any of this breaks every
anchored receipt already issued.

Like the rest of ``ledger.core`` this module does no I/O: :func:`check_anchor` takes what a chain
endpoint reported as an argument; fetching it is :mod:`ledger.chain`'s job.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ledger.core.checkpoint import SignedCheckpoint
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
    """The hash of a signed checkpoint note as anchored on chain."""
    return digest_function(hash_alg)(signed_note.encode())


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
class AnchorObservation:
    """What one chain endpoint reported about a receipt's anchor.

    ``anchor`` is the registry's entry at the receipt's tree size (None: not anchored there);
    ``block_hash`` is the endpoint's canonical block hash at the anchor's block number (None: the
    endpoint has no such block yet); ``onchain_inclusion`` is the registry's own
    ``verifyInclusion`` answer for the receipt's leaf (None: not asked).
    """

    endpoint: str
    chain_id: int
    anchor: OnchainAnchor | None
    block_hash: bytes | None
    onchain_inclusion: bool | None = None


def check_anchor(
    anchor: ReceiptAnchor,
    *,
    origin: str,
    hash_alg: HashAlgorithm,
    checkpoint_note: str,
    observation: AnchorObservation,
) -> None:
    """Check that ``observation`` confirms the receipt's anchor; raise ``InvalidReceipt(step="anchor")``.

    The receipt's own checkpoint must be the anchored one: same log id, tree size, root and hash
    of the signed note; the anchor must sit in the block the receipt names, which must be
    canonical on that endpoint.
    """
    where = observation.endpoint

    def fail(message: str, reason: str) -> InvalidReceipt:
        return InvalidReceipt(f"{where}: {message}", step="anchor", reason=reason)

    signed = SignedCheckpoint.from_text(checkpoint_note)
    if anchor.log_id != "0x" + log_id(origin).hex():
        raise fail(f"anchor log id {anchor.log_id} is not the id of origin {origin!r}", "anchor-log-id")
    expected_hash = "0x" + checkpoint_hash(hash_alg, checkpoint_note).hex()
    if anchor.checkpoint_hash != expected_hash or anchor.tree_size != signed.checkpoint.size:
        raise fail("the anchor section does not describe the receipt's checkpoint", "anchor-other-checkpoint")
    if observation.chain_id != anchor.chain_id:
        raise fail(f"chain id is {observation.chain_id}, the receipt says {anchor.chain_id}", "wrong-chain")
    onchain = observation.anchor
    if onchain is None:
        raise fail(f"no checkpoint of size {anchor.tree_size} is anchored in the registry", "not-anchored")
    if (
        onchain.root_hash != signed.checkpoint.root_hash
        or "0x" + onchain.checkpoint_hash.hex() != expected_hash
    ):
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
    if observation.onchain_inclusion is False:
        raise fail("the registry's verifyInclusion rejects the receipt's leaf and proof", "onchain-inclusion")
