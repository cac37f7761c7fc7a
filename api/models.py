"""Request and response models of the HTTP API (pydantic; they appear in the OpenAPI document)."""

from __future__ import annotations

import base64
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import CREDIT_KINDS, RecordKind, canonical_json, format_time
from ledger.errors import InvalidRequest
from ledger.log import Accepted, Ledger, RecordInfo, Submission

_HEX64 = r"^[0-9a-fA-F]{64}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContentHash(_In):
    """A content hash computed by the client."""

    alg: HashAlgorithm = HashAlgorithm.SM3
    value: str = Field(pattern=_HEX64, description="64 hex digits")


class SealIn(_In):
    """The calling system's SM2 seal over the record (see docs/formats.md, seal message)."""

    key_id: str = Field(min_length=1, max_length=64)
    signature: str = Field(min_length=8, max_length=200, description="DER SM2 signature, base64")


class RecordIn(_In):
    """One record to notarize: give ``content_hash``, or ``content`` (hashed as RFC 8785 JSON)."""

    kind: RecordKind
    content_hash: ContentHash | None = None
    content: Any = Field(default=None, description="a JSON value; the server hashes its RFC 8785 form")
    content_alg: HashAlgorithm = Field(default=HashAlgorithm.SM3, description="hash for `content`")
    metadata: dict[str, Any] = Field(default_factory=dict, description="small public JSON object")
    subject_id: str | None = Field(
        default=None, max_length=64, description="raw subject identifier; only its keyed hash is kept"
    )
    subject_ref: str | None = Field(default=None, pattern=_HEX64, description="a keyed subject hash")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    seal: SealIn | None = None

    @model_validator(mode="after")
    def _one_content(self) -> Self:
        if (self.content_hash is None) == (self.content is None):
            raise ValueError("give exactly one of content_hash and content")
        if self.subject_id is not None and self.subject_ref is not None:
            raise ValueError("give at most one of subject_id and subject_ref")
        if self.kind in CREDIT_KINDS:
            raise ValueError(f"kind {self.kind.value} is written only by the credit service (/v1/credit/...)")
        return self

    def to_submission(self, ledger: Ledger) -> Submission:
        """The typed submission (hashing ``content`` and keying ``subject_id`` here)."""
        if self.content_hash is not None:
            alg, digest = self.content_hash.alg, bytes.fromhex(self.content_hash.value)
        else:
            alg, digest = self.content_alg, digest_function(self.content_alg)(canonical_json(self.content))
        subject = None
        if self.subject_id is not None:
            subject = ledger.subject_ref(self.subject_id)
        elif self.subject_ref is not None:
            subject = bytes.fromhex(self.subject_ref)
        return Submission(
            kind=self.kind,
            content_hash=digest,
            hash_alg=alg,
            metadata=self.metadata,
            subject_ref=subject,
            idempotency_key=self.idempotency_key,
            seal_key_id=self.seal.key_id if self.seal else None,
            seal_signature=decode_signature(self.seal.signature) if self.seal else None,
        )


def decode_signature(text: str) -> bytes:
    """A base64 seal signature."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:  # binascii.Error, or a non-ASCII character
        raise InvalidRequest("seal signature is not base64", reason="invalid-seal") from e


class BulkIn(_In):
    """Up to the configured maximum (default 10,000) records, accepted all or none."""

    records: list[RecordIn] = Field(min_length=1)


class RecordAccepted(BaseModel):
    """A record was accepted (or was already there under the same idempotency key)."""

    id: str = Field(description="128-bit random id; whoever holds it may read the receipt")
    status: str = Field(description="`accepted`, or `duplicate` for a repeated idempotency key")
    received_at: str
    leaf_hash: str
    receipt_url: str

    @classmethod
    def of(cls, accepted: Accepted) -> RecordAccepted:
        """From the ledger's answer."""
        return cls(
            id=accepted.id,
            status="duplicate" if accepted.duplicate else "accepted",
            received_at=format_time(accepted.received_at_us),
            leaf_hash=accepted.leaf_hash.hex(),
            receipt_url=f"/v1/records/{accepted.id}/receipt",
        )


class BulkAccepted(BaseModel):
    """The answers to a bulk submission, in request order."""

    data: list[RecordAccepted]
    count: int


class RecordStatusOut(BaseModel):
    """A record's status and leaf data."""

    id: str
    status: str = Field(description="pending, sequenced or checkpointed")
    log_index: int | None
    received_at: str
    kind: RecordKind
    content_hash: dict[str, str]
    submitter: str
    metadata: dict[str, Any]
    sealed_by: str | None

    @classmethod
    def of(cls, info: RecordInfo) -> RecordStatusOut:
        """From the ledger's record info."""
        leaf = info.leaf
        return cls(
            id=info.id,
            status=info.status.value,
            log_index=info.log_index,
            received_at=format_time(info.received_at_us),
            kind=leaf.kind,
            content_hash={"alg": leaf.hash_alg.value, "value": leaf.content_hash.hex()},
            submitter=leaf.submitter,
            metadata=leaf.metadata,
            sealed_by=leaf.seal.key_id if leaf.seal else None,
        )


class CheckpointOut(BaseModel):
    """A signed checkpoint, parsed and as its signed-note text."""

    origin: str
    tree_size: int
    root_hash: str
    hash_alg: HashAlgorithm
    time: str
    note: str


class ConsistencyOut(BaseModel):
    """An RFC 9162 consistency proof between two tree sizes."""

    first: int
    second: int
    hashes: list[str]


class PublicKeyOut(BaseModel):
    """The log's checkpoint signing key."""

    alg: str = "sm2-sm3"
    key_name: str
    key_id: str
    public_key: str = Field(description="uncompressed point x||y, hex")
    pem: str


class LogInfoOut(BaseModel):
    """The log's parameters and progress."""

    origin: str
    hash_alg: HashAlgorithm
    tree_size: int
    pending: int
    checkpoint_size: int | None


class InclusionOut(BaseModel):
    """An RFC 9162 inclusion proof."""

    index: int
    tree_size: int
    hashes: list[str]
