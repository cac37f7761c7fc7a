"""Receipts: self-contained, versioned proof documents, and their offline verification.

A receipt (``format: trustledger-receipt``, ``version: 1``, both required; JSON Schema in
``docs/receipt.schema.json``) carries the record's leaf data, its log index, an RFC 9162 inclusion
proof, the SM2-signed checkpoint it is proven against (the log's signature line first, then any
witness cosignatures) and, once anchored, the anchor. :func:`verify_receipt` checks it with no
database, network or clock: it takes the document hash, what the verifier trusts (a
:class:`~ledger.core.policy.TrustPolicy`, or just a log key) and what chain endpoints reported as
arguments. Each check is a named step so a failure says exactly where; whatever the verifier did
not pin is listed in the result as taken from the receipt itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.core.anchor import AnchorObservation, ReceiptAnchor, anchored_note, check_anchor
from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.cosignature import Cosignature, cosignature_key_hash
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
from ledger.core.policy import TrustPolicy
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

    key_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="SM3(x||y)[:16] of public_key, hex; checked")
    public_key: str = Field(pattern=r"^[0-9a-f]{128}$")
    signature: str = Field(description="DER SM2 signature, standard base64")


class ReceiptRecord(_Frozen):
    """The record's leaf data, enough to rebuild the leaf bytes exactly."""

    id: str = Field(description="the log's handle for the record; not part of the leaf, so not proven")
    kind: RecordKind
    content_hash: HashValue
    metadata: dict[str, Any]
    submitter: str
    received_at: str = Field(description="RFC 3339 UTC with microseconds")
    subject_ref: str | None = Field(default=None, pattern=_HEX64)
    seal: ReceiptSeal | None = None


class ReceiptLog(_Frozen):
    """Which log issued the receipt and the key it says it signs with (a claim: pin them)."""

    origin: str
    hash_alg: HashAlgorithm
    public_key: str = Field(pattern=r"^[0-9a-f]{128}$")
    key_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="SM3(x||y)[:16] of public_key, hex; checked")


class ReceiptInclusion(_Frozen):
    """The RFC 9162 inclusion proof of the leaf in the checkpoint's tree."""

    index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: str = Field(pattern=_HEX64)
    hashes: list[str]


class Receipt(_Frozen):
    """A trustledger receipt, version 1. ``format`` and ``version`` are required: no defaults."""

    format: Literal["trustledger-receipt"]
    version: Literal[1]
    record: ReceiptRecord
    log: ReceiptLog
    inclusion: ReceiptInclusion
    checkpoint: str = Field(
        description=(
            "C2SP signed note of the checkpoint: the log's signature line first, then any witness "
            "cosignature lines (C2SP tlog-cosignature); lines of unknown keys are ignored"
        )
    )
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


STEPS = (
    "parse",
    "document",
    "leaf",
    "seal",
    "inclusion",
    "checkpoint",
    "origin",
    "key",
    "signature",
    "witness",
    "chain",
    "registry",
    "anchor",
)
"""The verification steps in order; :class:`InvalidReceipt` names the one that failed.

``origin``, ``witness``, ``chain`` and ``registry`` are the trust policy's checks (run only with a
policy); a verifier without one reports the facts it took from the receipt itself instead.
"""


@dataclass(frozen=True)
class ReceiptVerification:
    """What verify_receipt established.

    ``record_id`` is the receipt's claim, not bound by any proof (the id is not in the leaf).
    ``log_key_id`` is derived from the key that verified the checkpoint signature.
    ``unpinned`` names each fact that was taken from the receipt itself rather than from what the
    caller trusts (empty with a policy). ``cosigned_by`` are the policy witnesses whose valid
    cosignatures were counted; ``anchored_on`` the endpoints that confirmed the anchor.
    """

    record_id: str
    index: int
    tree_size: int
    root_hash: bytes
    checkpoint_time: str
    origin: str
    log_key_id: str
    key_pinned: bool
    document_checked: bool
    sealed_by: str | None
    policy_fingerprint: str | None = None
    unpinned: tuple[str, ...] = ()
    cosigned_by: tuple[str, ...] = ()
    witness_quorum: int = 0
    steps: list[str] = field(default_factory=list)
    anchored_on: list[str] = field(default_factory=list)


def verify_receipt(
    receipt: Receipt,
    *,
    document_hash: bytes | None = None,
    trusted_key: Sm2PublicKey | None = None,
    policy: TrustPolicy | None = None,
    anchor_observations: Sequence[AnchorObservation] = (),
) -> ReceiptVerification:
    """Verify ``receipt`` offline; raise :class:`InvalidReceipt` naming the failed step.

    ``document_hash`` is the hash of the document, computed by the caller with the receipt's
    content-hash algorithm. What the caller trusts is either a ``policy`` (the consortium's trust
    policy: origin, hash, log keys per tree size, chain, registries, witnesses and quorum; every
    one of them is pinned) or just a ``trusted_key`` (the published log key); without either the
    key inside the receipt is used, and the result lists each fact taken from the receipt itself.
    ``anchor_observations`` are what chain endpoints report about the receipt's anchor (fetched by
    the caller, from the registry the policy pins); each must confirm it, and a receipt without an
    anchor then fails the anchor step. With a policy, a receipt anchored on another chain or in a
    registry the policy does not name fails whether or not observations are given, so a caller can
    run this first with none and read the chain only when it passes.
    """
    if policy is not None and trusted_key is not None:
        raise InvalidRequest("give a trust policy or a trusted key, not both", reason="policy-and-key")
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
    if data.seal is not None and record.seal is not None:
        if record.seal.key_id != data.seal.key_id:
            raise InvalidReceipt(
                f"seal.key_id {record.seal.key_id} is not the id {data.seal.key_id} of the seal's public key",
                step="seal",
                reason="seal-key-id-mismatch",
            )
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
    if policy is not None:
        _check_origin(policy, checkpoint.origin, log_alg)
        steps.append("origin")
    key = _log_key(receipt, checkpoint.size, trusted_key, policy)
    steps.append("key")
    try:
        log_line = signed.verify(key, checkpoint.origin)
    except InvalidSignature as e:
        raise InvalidReceipt(str(e), step="signature", reason=e.reason) from e
    steps.append("signature")
    cosigned_by: tuple[str, ...] = ()
    if policy is not None and policy.witnesses:
        cosigned_by = _count_cosignatures(policy, signed)
        steps.append("witness")
    if policy is not None and receipt.anchor is not None:
        _check_pinned_anchor(policy, receipt.anchor)
        steps.extend(("chain", "registry"))
    if anchor_observations:
        if receipt.anchor is None:
            raise InvalidReceipt(
                "the receipt has no anchor section yet; refresh it once its checkpoint is anchored",
                step="anchor",
                reason="not-anchored",
            )
        confirmations = policy.chain.confirmations if policy is not None and policy.chain else 0
        for observation in anchor_observations:
            check_anchor(
                receipt.anchor,
                origin=receipt.log.origin,
                hash_alg=log_alg,
                checkpoint_note=anchored_note(signed, log_line),
                observation=observation,
                confirmations=confirmations,
            )
        steps.append("anchor")
    return ReceiptVerification(
        record_id=record.id,
        index=inclusion.index,
        tree_size=checkpoint.size,
        root_hash=checkpoint.root_hash,
        checkpoint_time=format_time(checkpoint.timestamp_us),
        origin=checkpoint.origin,
        log_key_id=key.key_id(),
        key_pinned=trusted_key is not None or policy is not None,
        document_checked=document_hash is not None,
        sealed_by=data.seal.key_id if data.seal else None,
        policy_fingerprint=policy.fingerprint() if policy is not None else None,
        unpinned=_unpinned(receipt, key, trusted_key, policy),
        cosigned_by=cosigned_by,
        witness_quorum=policy.witness_quorum if policy is not None else 0,
        steps=steps,
        anchored_on=[o.endpoint for o in anchor_observations],
    )


def _check_origin(policy: TrustPolicy, origin: str, hash_alg: HashAlgorithm) -> None:
    if origin != policy.log.origin:
        raise InvalidReceipt(
            f"the checkpoint is of log {origin!r}, the policy trusts {policy.log.origin!r}",
            step="origin",
            reason="wrong-origin",
        )
    if hash_alg != policy.log.hash_alg:
        raise InvalidReceipt(
            f"the log hashes with {hash_alg.value}, the policy says {policy.log.hash_alg.value}",
            step="origin",
            reason="wrong-hash-alg",
        )


def _log_key(
    receipt: Receipt, tree_size: int, trusted_key: Sm2PublicKey | None, policy: TrustPolicy | None
) -> Sm2PublicKey:
    """The key the checkpoint must be signed with; raise ``InvalidReceipt(step="key")``."""
    receipt_key = Sm2PublicKey.from_hex(receipt.log.public_key)
    if receipt.log.key_id != receipt_key.key_id():
        raise InvalidReceipt(
            f"log.key_id {receipt.log.key_id} is not the id {receipt_key.key_id()} of the receipt's log key",
            step="key",
            reason="key-id-mismatch",
        )
    if trusted_key is not None and trusted_key.raw != receipt_key.raw:
        raise InvalidReceipt(
            f"the receipt names log key {receipt_key.key_id()}, not the trusted key {trusted_key.key_id()}",
            step="key",
            reason="untrusted-key",
        )
    if policy is not None:
        entry = policy.log_key_entry(receipt_key)
        if entry is None:
            trusted = ", ".join(k.key_id for k in policy.log.keys)
            raise InvalidReceipt(
                f"the receipt names log key {receipt_key.key_id()}, which the policy does not trust "
                f"(policy keys: {trusted})",
                step="key",
                reason="untrusted-key",
            )
        if entry.revoked:
            raise InvalidReceipt(
                f"log key {entry.key_id} is revoked by the policy", step="key", reason="revoked-key"
            )
        if not entry.covers(tree_size):
            until = "on" if entry.until_size is None else f"below {entry.until_size}"
            raise InvalidReceipt(
                f"log key {entry.key_id} may sign tree sizes from {entry.from_size} {until}, not {tree_size}",
                step="key",
                reason="key-out-of-range",
            )
    return receipt_key


def _count_cosignatures(policy: TrustPolicy, signed: SignedCheckpoint) -> tuple[str, ...]:
    """The policy witnesses with a valid cosignature in the note; raise unless they reach the quorum.

    Lines of keys the policy does not name are ignored (C2SP signed-note); a line of a named
    witness key that does not verify fails the note, as a bad signature of a known key does in
    C2SP signed-note verifiers.
    """
    counted: list[str] = []
    for witness in policy.witnesses:
        key = witness.key()
        key_hash = cosignature_key_hash(witness.name, key)
        line = next(
            (s for s in signed.signatures if s.key_name == witness.name and s.key_hash == key_hash), None
        )
        if line is None:
            continue
        try:
            Cosignature.from_signature_line(line).verify(signed.checkpoint, key)
        except (InvalidRequest, InvalidSignature) as e:
            raise InvalidReceipt(
                f"the cosignature of witness {witness.name} does not verify: {e.message}",
                step="witness",
                reason="invalid-cosignature",
            ) from e
        counted.append(witness.name)
    if len(counted) < policy.witness_quorum:
        named = ", ".join(counted) or "none"
        raise InvalidReceipt(
            f"{len(counted)} of the policy's witnesses cosigned the checkpoint ({named}); "
            f"the policy requires {policy.witness_quorum}",
            step="witness",
            reason="witness-quorum",
        )
    return tuple(counted)


def _check_pinned_anchor(policy: TrustPolicy, anchor: ReceiptAnchor) -> None:
    """The receipt's anchor is on the policy's chain, in one of its registries (no chain read)."""
    chain = policy.chain
    if chain is None:
        raise InvalidReceipt(
            f"the receipt claims an anchor in registry {anchor.registry} on chain {anchor.chain_id}, "
            "but the policy names no chain for this log",
            step="chain",
            reason="no-chain-pinned",
        )
    if anchor.chain_id != chain.chain_id:
        raise InvalidReceipt(
            f"the receipt is anchored on chain {anchor.chain_id}, the policy pins chain {chain.chain_id}",
            step="chain",
            reason="wrong-chain",
        )
    if not chain.has_registry(anchor.registry):
        raise InvalidReceipt(
            f"the receipt is anchored in registry {anchor.registry}, which is not one of the "
            f"policy's registries ({', '.join(chain.registries)})",
            step="registry",
            reason="untrusted-registry",
        )


def _unpinned(
    receipt: Receipt, key: Sm2PublicKey, trusted_key: Sm2PublicKey | None, policy: TrustPolicy | None
) -> tuple[str, ...]:
    """Each fact that was taken from the receipt itself, not from what the caller trusts."""
    if policy is not None:
        return ()
    facts = []
    if trusted_key is None:
        facts.append(f"log key {key.key_id()}")
    facts.append(f"log origin {receipt.log.origin!r} and hash {receipt.log.hash_alg.value}")
    if receipt.anchor is not None:
        facts.append(f"chain id {receipt.anchor.chain_id} and registry {receipt.anchor.registry}")
    facts.append("witnesses: none required, cosignatures not checked")
    return tuple(facts)
