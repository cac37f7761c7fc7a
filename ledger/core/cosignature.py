"""Witness cosignatures on checkpoints (C2SP tlog-cosignature, with SM2 in place of Ed25519).

A witness that has checked a checkpoint is consistent with everything it saw before signs::

    cosignature/v1\\n
    time <unix seconds, decimal>\\n
    <the checkpoint body>

and publishes the result as one more signed-note line after the log's::

    \\u2014 <witness name> <base64(key hash[4] || timestamp[8, big-endian] || DER SM2 signature)>

The key hash is made as the log's (:func:`ledger.core.checkpoint.note_key_hash`) with its own
private algorithm identifier ``0xFF || "sm2-sm3-cosignature/v1"`` — C2SP likewise gives
cosignatures their own signature type (0x04), so a cosignature can never pass as a log signature
of the same key. The SM2 signature uses SM3 and the default user ID (GM/T 0009).

Pure functions only; changing any of this invalidates every cosignature issued.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ledger.core.checkpoint import Checkpoint, NoteSignature
from ledger.core.crypto import Sm2PrivateKey, Sm2PublicKey, sm2_verify
from ledger.errors import InvalidRequest, InvalidSignature

COSIGNATURE_ALG_ID = b"\xffsm2-sm3-cosignature/v1"


def cosignature_key_hash(name: str, public_key: Sm2PublicKey) -> bytes:
    """The 4-byte signed-note key hash of a witness's SM2 cosigning key."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_ALG_ID + public_key.raw).digest()[:4]


def cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """The exact bytes a witness signs (C2SP tlog-cosignature ``cosignature/v1``)."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint.body()


@dataclass(frozen=True)
class Cosignature:
    """A witness's cosignature of one checkpoint at ``timestamp`` (unix seconds)."""

    name: str
    key_hash: bytes
    timestamp: int
    signature: bytes

    def to_signature_line(self) -> NoteSignature:
        """As a signed-note line."""
        return NoteSignature(self.name, self.key_hash, self.timestamp.to_bytes(8, "big") + self.signature)

    @classmethod
    def from_signature_line(cls, line: NoteSignature) -> Cosignature:
        """Read a note line as a cosignature (its blob: 8-byte timestamp, then the DER signature)."""
        if len(line.blob) < 9:
            raise InvalidRequest("cosignature too short", reason="invalid-cosignature")
        return cls(line.key_name, line.key_hash, int.from_bytes(line.blob[:8], "big"), line.blob[8:])

    def verify(self, checkpoint: Checkpoint, public_key: Sm2PublicKey) -> None:
        """Raise :class:`InvalidSignature` unless ``public_key`` cosigned ``checkpoint`` under this name."""
        if cosignature_key_hash(self.name, public_key) != self.key_hash:
            raise InvalidSignature(
                f"cosignature {self.name}+{self.key_hash.hex()} is not by the given witness key",
                reason="cosignature-key-mismatch",
            )
        if not sm2_verify(public_key, cosigned_message(checkpoint, self.timestamp), self.signature):
            raise InvalidSignature(
                f"cosignature by {self.name} does not verify", reason="invalid-cosignature"
            )


def cosign(checkpoint: Checkpoint, name: str, private_key: Sm2PrivateKey, timestamp: int) -> Cosignature:
    """Cosign ``checkpoint`` as witness ``name`` at ``timestamp`` (unix seconds, ≥ 0)."""
    if not 0 <= timestamp < 2**63:
        raise InvalidRequest("cosignature timestamp out of range", reason="invalid-cosignature")
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise InvalidRequest("witness name must be non-empty, without spaces or '+'")
    return Cosignature(
        name=name,
        key_hash=cosignature_key_hash(name, private_key.public_key()),
        timestamp=timestamp,
        signature=private_key.sign(cosigned_message(checkpoint, timestamp)),
    )
