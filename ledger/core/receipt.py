"""Receipts: self-contained, versioned proof documents, and their offline verification.

A receipt (``format: trustledger-receipt``, ``version: 1``; JSON Schema in
``docs/receipt.schema.json``) carries the record's leaf data, its log index, an RFC 9162 inclusion
proof, the SM2-signed checkpoint it is proven against and, once anchoring exists, the anchor.
:func:`verify_receipt` checks it with no database, network or clock: it takes the document hash
and the trusted log key as arguments. Each check is a named step so a failure says exactly where.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.core.anchor import AnchorObservation, ReceiptAnchor, check_anchor
from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.crypto import HashAlgorithm, Sm2PublicKey
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import (
    LeafData,
    RecordKind,
    Seal,
    canonical_metadata,
    encode_leaf,
    format_time,
    parse_time,
    verify_seal,
)
from ledger.core.merkle import root_from_inclusion_proof
from ledger.errors import InvalidProof, InvalidReceipt, InvalidRequest, InvalidSignature

RECEIPT_FORMAT: Literal["trustledger-receipt"] = "trustledger-receipt"
RECEIPT_VERSION: Literal[1] = 1
_HEX64 = r"^[0-9a-f]{64}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HashValue(_Frozen):
    """A hash with its algorithm."""

    alg: HashAlgorithm
    hex: str = Field(pattern=_HEX64)


class ReceiptSeal(_Frozen):
    """The submitting system's SM2 seal over the record."""

    key_id: str
    public_key: str = Field(pattern=r"^[0-9a-f]{128}$")
    signature: str = Field(description="DER SM2 signature, standard base64")


class ReceiptRecord(_Frozen):
    """The record's leaf data, enough to rebuild the leaf bytes exactly."""

    id: str
    kind: RecordKind
    content_hash: HashValue
    metadata: dict[str, Any]
    submitter: str
    received_at: str = Field(description="RFC 3339 UTC with microseconds")
    subject_ref: str | None = Field(default=None, pattern=_HEX64)
    seal: ReceiptSeal | None = None


class ReceiptLog(_Frozen):
    """Which log issued the receipt and the key it says it signs with."""

    origin: str
    hash_alg: HashAlgorithm
    public_key: str = Field(pattern=r"^[0-9a-f]{128}$")
    key_id: str


class ReceiptInclusion(_Frozen):
    """The RFC 9162 inclusion proof of the leaf in the checkpoint's tree."""

    index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: str = Field(pattern=_HEX64)
    hashes: list[str]


class Receipt(_Frozen):
    """A trustledger receipt, version 1."""

    format: Literal["trustledger-receipt"] = RECEIPT_FORMAT
    version: Literal[1] = RECEIPT_VERSION
    record: ReceiptRecord
    log: ReceiptLog
    inclusion: ReceiptInclusion
    checkpoint: str = Field(description="C2SP signed note of the checkpoint")
    anchor: ReceiptAnchor | None = Field(
        default=None, description="where the checkpoint is anchored on chain; absent until it is"
    )

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        """Parse and validate a receipt document."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidReceipt(
                f"malformed receipt at {where or 'top'}: {first['msg']}", step="parse"
            ) from e

    def to_json(self) -> str:
        """Serialise (stable key order, pretty) for humans and files."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def leaf_data(self) -> LeafData:
        """Rebuild the leaf data from the record section."""
        r = self.record
        seal = None
        if r.seal is not None:
            seal = Seal(Sm2PublicKey.from_hex(r.seal.public_key), base64.b64decode(r.seal.signature))
        return LeafData(
            kind=r.kind,
            hash_alg=r.content_hash.alg,
            content_hash=bytes.fromhex(r.content_hash.hex),
            metadata_json=canonical_metadata(r.metadata),
            submitter=r.submitter,
            received_at_us=parse_time(r.received_at),
            subject_ref=bytes.fromhex(r.subject_ref) if r.subject_ref else None,
            seal=seal,
        )


def receipt_record(record_id: str, data: LeafData) -> ReceiptRecord:
    """The receipt's record section for leaf data."""
    seal = None
    if data.seal is not None:
        seal = ReceiptSeal(
            key_id=data.seal.key_id,
            public_key=data.seal.public_key.hex(),
            signature=base64.b64encode(data.seal.signature).decode(),
        )
    return ReceiptRecord(
        id=record_id,
        kind=data.kind,
        content_hash=HashValue(alg=data.hash_alg, hex=data.content_hash.hex()),
        metadata=data.metadata,
        submitter=data.submitter,
        received_at=format_time(data.received_at_us),
        subject_ref=data.subject_ref.hex() if data.subject_ref else None,
        seal=seal,
    )


STEPS = ("parse", "document", "leaf", "seal", "inclusion", "checkpoint", "key", "signature", "anchor")
"""The verification steps in order; :class:`InvalidReceipt` names the one that failed."""


@dataclass(frozen=True)
class ReceiptVerification:
    """What verify_receipt established."""

    record_id: str
    index: int
    tree_size: int
    root_hash: bytes
    checkpoint_time: str
    key_pinned: bool
    document_checked: bool
    sealed_by: str | None
    steps: list[str] = field(default_factory=list)
    anchored_on: list[str] = field(default_factory=list)


def verify_receipt(
    receipt: Receipt,
    *,
    document_hash: bytes | None = None,
    trusted_key: Sm2PublicKey | None = None,
    anchor_observations: Sequence[AnchorObservation] = (),
) -> ReceiptVerification:
    """Verify ``receipt`` offline; raise :class:`InvalidReceipt` naming the failed step.

    ``document_hash`` is the hash of the document, computed by the caller with the receipt's
    content-hash algorithm. ``trusted_key`` is the log key the caller trusts (published by the
    operator); without it the key inside the receipt is used and the result says it was not pinned.
    ``anchor_observations`` are what chain endpoints report about the receipt's anchor (fetched by
    the caller); each must confirm it, and a receipt without an anchor then fails the anchor step.
    """
    steps: list[str] = []
    record = receipt.record
    if document_hash is not None:
        if document_hash.hex() != record.content_hash.hex:
            raise InvalidReceipt(
                f"the document's {record.content_hash.alg} hash {document_hash.hex()} is not the "
                f"record's content hash {record.content_hash.hex}",
                step="document",
                reason="document-mismatch",
            )
        steps.append("document")
    log_alg = receipt.log.hash_alg
    hasher = tree_hasher(log_alg)
    try:
        data = receipt.leaf_data()
        leaf_hash = hasher.leaf_hash(encode_leaf(data))
    except (InvalidRequest, ValueError, binascii.Error) as e:
        raise InvalidReceipt(f"record fields do not form a valid leaf: {e}", step="leaf") from e
    if leaf_hash.hex() != receipt.inclusion.leaf_hash:
        raise InvalidReceipt(
            "the record's fields do not hash to the receipt's leaf hash (the record was altered)",
            step="leaf",
            reason="leaf-mismatch",
        )
    steps.append("leaf")
    if data.seal is not None:
        try:
            verify_seal(data)
        except InvalidSignature as e:
            raise InvalidReceipt(str(e), step="seal", reason="invalid-seal") from e
        steps.append("seal")
    try:
        signed = SignedCheckpoint.from_text(receipt.checkpoint)
    except InvalidRequest as e:
        raise InvalidReceipt(str(e), step="checkpoint") from e
    checkpoint = signed.checkpoint
    inclusion = receipt.inclusion
    try:
        proof = [bytes.fromhex(h) for h in inclusion.hashes]
        root = root_from_inclusion_proof(hasher, leaf_hash, inclusion.index, inclusion.tree_size, proof)
    except (InvalidProof, ValueError) as e:
        raise InvalidReceipt(
            f"inclusion proof is invalid: {e}", step="inclusion", reason="invalid-proof"
        ) from e
    if inclusion.tree_size != checkpoint.size or root != checkpoint.root_hash:
        raise InvalidReceipt(
            f"the inclusion proof leads to root {root.hex()} at size {inclusion.tree_size}, but the "
            f"checkpoint has {checkpoint.root_hash.hex()} at size {checkpoint.size}",
            step="inclusion",
            reason="root-mismatch",
        )
    steps.append("inclusion")
    if checkpoint.origin != receipt.log.origin or checkpoint.hash_alg != log_alg:
        raise InvalidReceipt("checkpoint origin or hash algorithm differ from the log's", step="checkpoint")
    steps.append("checkpoint")
    receipt_key = Sm2PublicKey.from_hex(receipt.log.public_key)
    key = trusted_key or receipt_key
    if trusted_key is not None and trusted_key.raw != receipt_key.raw:
        raise InvalidReceipt(
            f"the receipt names log key {receipt_key.key_id()}, not the trusted key {trusted_key.key_id()}",
            step="key",
            reason="untrusted-key",
        )
    steps.append("key")
    try:
        signed.verify(key, checkpoint.origin)
    except InvalidSignature as e:
        raise InvalidReceipt(str(e), step="signature", reason=e.reason) from e
    steps.append("signature")
    if anchor_observations:
        if receipt.anchor is None:
            raise InvalidReceipt(
                "the receipt has no anchor section yet; refresh it once its checkpoint is anchored",
                step="anchor",
                reason="not-anchored",
            )
        for observation in anchor_observations:
            check_anchor(
                receipt.anchor,
                origin=receipt.log.origin,
                hash_alg=log_alg,
                checkpoint_note=receipt.checkpoint,
                observation=observation,
            )
        steps.append("anchor")
    return ReceiptVerification(
        record_id=record.id,
        index=inclusion.index,
        tree_size=checkpoint.size,
        root_hash=checkpoint.root_hash,
        checkpoint_time=format_time(checkpoint.timestamp_us),
        key_pinned=trusted_key is not None,
        document_checked=document_hash is not None,
        sealed_by=data.seal.key_id if data.seal else None,
        steps=steps,
        anchored_on=[o.endpoint for o in anchor_observations],
    )
