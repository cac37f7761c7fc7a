"""Signed checkpoints (signed tree heads) in the C2SP tlog-checkpoint / signed-note format.

A checkpoint body is (C2SP tlog-checkpoint)::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64>\\n
    hash <sm3|sha256>\\n          (extension line: the log's tree hash)
    time <RFC 3339 UTC, microseconds>\\n   (extension line: when it was issued)

and the signed note (C2SP signed-note) appends an empty line and one signature line per signer
(the log's first; witnesses' cosignatures, see :mod:`ledger.core.cosignature`, may follow)::

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
from collections.abc import Sequence
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


MAX_NOTE_SIGNATURES = 100
"""At most this many signature lines in a note (C2SP signed-note lets verifiers bound it)."""


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise InvalidRequest("key name must be non-empty, without spaces or '+'", reason="invalid-checkpoint")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note: ``\u2014 <key name> <base64(key hash || rest)>``.

    ``blob`` is what follows the 4-byte key hash; its meaning depends on the signer's algorithm
    (a DER SM2 signature for the log; timestamp || signature for a cosignature).
    """

    key_name: str
    key_hash: bytes
    blob: bytes

    def to_line(self) -> str:
        """The signature line, newline included."""
        return f"{_EM_DASH} {self.key_name} {base64.b64encode(self.key_hash + self.blob).decode()}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (without its newline)."""
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _EM_DASH:
            raise InvalidRequest("malformed signature line", reason="invalid-checkpoint")
        _check_key_name(parts[1])
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError) as e:  # ValueError: non-ASCII text
            raise InvalidRequest("signature is not base64", reason="invalid-checkpoint") from e
        if len(raw) < 5:
            raise InvalidRequest("signature too short", reason="invalid-checkpoint")
        return cls(key_name=parts[1], key_hash=raw[:4], blob=raw[4:])


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its signature lines (the log's and any cosigners'), as a C2SP signed note.

    Following C2SP signed-note, lines from keys a verifier does not know are carried and ignored:
    :meth:`verify` looks only for the line of the key it is given, so witnesses' cosignatures (or
    any other agency's) never make a note unverifiable.
    """

    checkpoint: Checkpoint
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        """The signed note text."""
        lines = "".join(s.to_line() for s in self.signatures)
        return f"{self.checkpoint.body().decode()}\n{lines}"

    @classmethod
    def from_text(cls, text: str) -> SignedCheckpoint:
        """Strictly parse a signed note: a canonical checkpoint body, a blank line, 1–100 signature lines."""
        body, sep, block = text.partition("\n\n")
        if not sep:
            raise InvalidRequest("signed checkpoint has no signature block", reason="invalid-checkpoint")
        checkpoint = Checkpoint.from_body((body + "\n").encode())
        if not block.endswith("\n"):
            raise InvalidRequest("a signed note ends with a newline", reason="invalid-checkpoint")
        lines = block[:-1].split("\n")
        if not 1 <= len(lines) <= MAX_NOTE_SIGNATURES:
            raise InvalidRequest(
                f"a signed note has 1 to {MAX_NOTE_SIGNATURES} signature lines", reason="invalid-checkpoint"
            )
        return cls(checkpoint=checkpoint, signatures=tuple(NoteSignature.from_line(line) for line in lines))

    def signature_of(self, key_name: str, public_key: Sm2PublicKey) -> NoteSignature | None:
        """The line made by the log key ``public_key`` under ``key_name`` (None: no such line)."""
        key_hash = note_key_hash(key_name, public_key)
        return next((s for s in self.signatures if s.key_name == key_name and s.key_hash == key_hash), None)

    def verify(self, public_key: Sm2PublicKey, key_name: str) -> NoteSignature:
        """Check the line of log key ``public_key`` named ``key_name``; return it.

        Raise :class:`InvalidSignature` if the note has no line from that key or it does not verify.
        Lines from other keys are ignored (C2SP signed-note).
        """
        line = self.signature_of(key_name, public_key)
        if line is None:
            seen = ", ".join(f"{s.key_name}+{s.key_hash.hex()}" for s in self.signatures)
            raise InvalidSignature(
                f"checkpoint has no signature by key {key_name}+{note_key_hash(key_name, public_key).hex()} "
                f"(signature lines: {seen})",
                reason="checkpoint-key-mismatch",
            )
        if not sm2_verify(public_key, self.checkpoint.body(), line.blob):
            raise InvalidSignature(
                "checkpoint signature does not verify", reason="invalid-checkpoint-signature"
            )
        return line

    def only(self, *lines: NoteSignature) -> SignedCheckpoint:
        """The same checkpoint with just ``lines`` (e.g. the log's own line, which is what is anchored)."""
        return SignedCheckpoint(self.checkpoint, tuple(lines))

    def with_signatures(self, lines: Sequence[NoteSignature]) -> SignedCheckpoint:
        """Append ``lines`` not already present (cosignatures), keeping the existing order first."""
        merged = list(self.signatures)
        merged.extend(line for line in lines if line not in merged)
        return SignedCheckpoint(self.checkpoint, tuple(merged))


def sign_checkpoint(checkpoint: Checkpoint, key_name: str, private_key: Sm2PrivateKey) -> SignedCheckpoint:
    """Sign ``checkpoint`` with the log's SM2 key (one signature per checkpoint, not per record)."""
    _check_key_name(key_name)
    line = NoteSignature(
        key_name=key_name,
        key_hash=note_key_hash(key_name, private_key.public_key()),
        blob=private_key.sign(checkpoint.body()),
    )
    return SignedCheckpoint(checkpoint=checkpoint, signatures=(line,))
