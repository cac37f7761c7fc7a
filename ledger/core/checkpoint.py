"""Signed checkpoints (signed tree heads) in the C2SP tlog-checkpoint / signed-note format.

A checkpoint body is (C2SP tlog-checkpoint)::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64>\\n
    hash <sm3|sha256>\\n          (extension line: the log's tree hash)
    time <RFC 3339 UTC, microseconds>\\n   (extension line: when it was issued)

and the signed note (C2SP signed-note) appends an empty line and one signature line per signer::

    \\u2014 <key name> <base64(key hash[4] || DER SM2 signature)>\\n

SM2 is not a registered signed-note algorithm, so the key hash is defined here as the first four
bytes of SHA-256(key name || 0x0A || 0xFF || "sm2-sm3" || public key x||y); 0xFF marks a private
algorithm identifier. The signature is SM2 with SM3 and the default user ID (GM/T 0009) over the
body bytes exactly. Changing any of this invalidates every issued checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, Sm2PublicKey, sm2_verify
from ledger.core.leaf import format_time, parse_time
from ledger.errors import InvalidRequest, InvalidSignature

_EM_DASH = "\u2014"
_SM2_ALG_ID = b"\xffsm2-sm3"


def note_key_hash(name: str, public_key: Sm2PublicKey) -> bytes:
    """The 4-byte signed-note key hash of an SM2 checkpoint key."""
    return hashlib.sha256(name.encode() + b"\n" + _SM2_ALG_ID + public_key.raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """An unsigned tree head."""

    origin: str
    size: int
    root_hash: bytes
    hash_alg: HashAlgorithm
    timestamp_us: int

    def body(self) -> bytes:
        """The exact bytes that are signed."""
        if not self.origin or "\n" in self.origin or self.origin != self.origin.strip():
            raise InvalidRequest("checkpoint origin must be one non-empty line")
        root = base64.b64encode(self.root_hash).decode()
        text = (
            f"{self.origin}\n{self.size}\n{root}\n"
            f"hash {self.hash_alg.value}\ntime {format_time(self.timestamp_us)}\n"
        )
        return text.encode()

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        """Strictly parse a checkpoint body; re-encoding must give the same bytes."""
        try:
            lines = body.decode().split("\n")
            if len(lines) != 6 or lines[5] != "":
                raise ValueError("a checkpoint body has exactly five lines")
            origin, size_text, root_text, hash_line, time_line = lines[:5]
            if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
                raise ValueError("tree size is not a canonical decimal")
            if not hash_line.startswith("hash ") or not time_line.startswith("time "):
                raise ValueError("missing hash or time extension line")
            checkpoint = cls(
                origin=origin,
                size=int(size_text),
                root_hash=base64.b64decode(root_text, validate=True),
                hash_alg=HashAlgorithm(hash_line[5:]),
                timestamp_us=parse_time(time_line[5:]),
            )
        except (ValueError, UnicodeDecodeError, binascii.Error, InvalidRequest) as e:
            raise InvalidRequest(f"malformed checkpoint: {e}", reason="invalid-checkpoint") from e
        if checkpoint.body() != body:
            raise InvalidRequest("checkpoint is not in canonical form", reason="invalid-checkpoint")
        return checkpoint


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with one SM2 signature, serialised as a signed note."""

    checkpoint: Checkpoint
    key_name: str
    key_hash: bytes
    signature: bytes

    def to_text(self) -> str:
        """The signed note text."""
        blob = base64.b64encode(self.key_hash + self.signature).decode()
        return f"{self.checkpoint.body().decode()}\n{_EM_DASH} {self.key_name} {blob}\n"

    @classmethod
    def from_text(cls, text: str) -> SignedCheckpoint:
        """Parse a signed note carrying one trustledger SM2 signature."""
        body, sep, signatures = text.partition("\n\n")
        if not sep:
            raise InvalidRequest("signed checkpoint has no signature block", reason="invalid-checkpoint")
        checkpoint = Checkpoint.from_body((body + "\n").encode())
        lines = [line for line in signatures.split("\n") if line]
        if len(lines) != 1 or not signatures.endswith("\n"):
            raise InvalidRequest("expected exactly one signature line", reason="invalid-checkpoint")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] != _EM_DASH:
            raise InvalidRequest("malformed signature line", reason="invalid-checkpoint")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error as e:
            raise InvalidRequest("signature is not base64", reason="invalid-checkpoint") from e
        if len(blob) < 5:
            raise InvalidRequest("signature too short", reason="invalid-checkpoint")
        return cls(checkpoint=checkpoint, key_name=parts[1], key_hash=blob[:4], signature=blob[4:])

    def verify(self, public_key: Sm2PublicKey) -> None:
        """Raise :class:`InvalidSignature` unless signed by ``public_key`` under this key name."""
        if note_key_hash(self.key_name, public_key) != self.key_hash:
            raise InvalidSignature(
                f"checkpoint was signed by another key (key hash {self.key_hash.hex()})",
                reason="checkpoint-key-mismatch",
            )
        if not sm2_verify(public_key, self.checkpoint.body(), self.signature):
            raise InvalidSignature(
                "checkpoint signature does not verify", reason="invalid-checkpoint-signature"
            )


def sign_checkpoint(checkpoint: Checkpoint, key_name: str, private_key: Sm2PrivateKey) -> SignedCheckpoint:
    """Sign ``checkpoint`` with the log's SM2 key (one signature per checkpoint, not per record)."""
    if not key_name or any(c.isspace() for c in key_name) or "+" in key_name:
        raise InvalidRequest("key name must be non-empty, without spaces or '+'")
    public_key = private_key.public_key()
    return SignedCheckpoint(
        checkpoint=checkpoint,
        key_name=key_name,
        key_hash=note_key_hash(key_name, public_key),
        signature=private_key.sign(checkpoint.body()),
    )
