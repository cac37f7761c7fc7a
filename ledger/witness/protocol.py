"""The pure part of a C2SP tlog-witness: parsing ``add-checkpoint``, trusting the log, advancing.

A request body is (C2SP tlog-witness, ``add-checkpoint``)::

    old <size>\\n                  (the size the client believes the witness is at)
    <base64 hash>\\n               (0 to 63 consistency proof lines, RFC 9162 §2.1.4)
    \\n
    <signed checkpoint note>       (C2SP signed-note; the log's line, maybe others)

:func:`check_log_signature` accepts the note only if a log key that the witness's trust policy
holds valid for that tree size signed it (lines of other keys are ignored, a line that claims a
trusted key but does not verify is refused). :func:`advance` is the state transition: from the
tree head the witness cosigned last to the new one, or a refusal that names its HTTP status
(:mod:`ledger.witness.errors`). No I/O here; every input is bounded before it is parsed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ledger.core.checkpoint import Checkpoint, NoteSignature, SignedCheckpoint
from ledger.core.merkle import TreeHasher, verify_consistency
from ledger.core.policy import TrustPolicy
from ledger.errors import InvalidProof, InvalidRequest, InvalidSignature, PayloadTooLarge
from ledger.witness.errors import InconsistentCheckpoint, OldSizeMismatch, UntrustedCheckpoint

MAX_PROOF_LINES = 63
"""C2SP tlog-witness: a client MUST NOT send more (2^63 leaves need at most 63 hashes)."""
MAX_NOTE_BYTES = 32 * 1024
"""The signed note: a five-line body (origin ≤ 500 bytes in a policy) and ≤ 100 signature lines."""
MAX_BODY_BYTES = MAX_NOTE_BYTES + 4096
"""A whole request: the note, the old-size line and 63 proof lines of 45 bytes."""
MAX_TREE_SIZE = 2**63 - 1
"""Sizes are stored as signed 64-bit integers."""
_HASH_BYTES = 32  # SM3 and SHA-256
_MAX_SIZE_DIGITS = 19


@dataclass(frozen=True)
class TreeHead:
    """What a witness remembers of a log: the size and root of the latest checkpoint it cosigned."""

    size: int
    root_hash: bytes


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed ``add-checkpoint`` request."""

    old_size: int
    proof: tuple[bytes, ...]
    note: SignedCheckpoint

    @property
    def checkpoint(self) -> Checkpoint:
        """The submitted checkpoint."""
        return self.note.checkpoint


def _size(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_SIZE_DIGITS:
        raise InvalidRequest(f"{what} is not a decimal tree size", reason="invalid-request")
    if text.startswith("0") and text != "0":
        raise InvalidRequest(f"{what} has leading zeroes", reason="invalid-request")
    value = int(text)
    if value > MAX_TREE_SIZE:
        raise InvalidRequest(f"{what} is beyond 2^63 - 1", reason="invalid-request")
    return value


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Strictly parse an ``add-checkpoint`` body; :class:`InvalidRequest` says what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest("the request is not UTF-8", reason="invalid-request") from e
    head, sep, note_text = text.partition("\n\n")
    if not sep:
        raise InvalidRequest("no empty line between the proof and the checkpoint", reason="invalid-request")
    lines = head.split("\n")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise InvalidRequest(f"more than {MAX_PROOF_LINES} consistency proof lines", reason="invalid-request")
    if not lines[0].startswith("old "):
        raise InvalidRequest("the first line must be 'old <size>'", reason="invalid-request")
    old_size = _size(lines[0][4:], "old size")
    proof: list[bytes] = []
    for number, line in enumerate(lines[1:], start=1):
        try:
            value = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidRequest(f"proof line {number} is not base64", reason="invalid-request") from e
        if len(value) != _HASH_BYTES:
            raise InvalidRequest(
                f"proof line {number} is not a {_HASH_BYTES}-byte hash", reason="invalid-request"
            )
        proof.append(value)
    if len(note_text.encode()) > MAX_NOTE_BYTES:
        raise PayloadTooLarge(f"the checkpoint note is larger than {MAX_NOTE_BYTES} bytes")
    note = SignedCheckpoint.from_text(note_text)  # InvalidRequest (invalid-checkpoint) when malformed
    _size(str(note.checkpoint.size), "checkpoint size")
    return AddCheckpoint(old_size=old_size, proof=tuple(proof), note=note)


def check_log_signature(note: SignedCheckpoint, policy: TrustPolicy) -> tuple[NoteSignature, ...]:
    """The note's lines by log keys that ``policy`` trusts for its tree size; refuse if there are none.

    The key name of a log key is the log's origin (as :meth:`ledger.log.Ledger.issue_checkpoint`
    signs). Lines of any other key — revoked, out of its size range, a cosigner's — are ignored
    (C2SP signed-note). A line that names a trusted key and does not verify makes the note
    malformed: :class:`UntrustedCheckpoint` (C2SP tlog-witness: 403).
    """
    checkpoint = note.checkpoint
    if checkpoint.origin != policy.log.origin:
        raise UntrustedCheckpoint(
            f"checkpoint of {checkpoint.origin!r} is not of {policy.log.origin!r}", reason="unknown-log"
        )
    if checkpoint.hash_alg is not policy.log.hash_alg:
        raise UntrustedCheckpoint(
            f"the checkpoint's tree hash is {checkpoint.hash_alg.value}; the policy's log uses "
            f"{policy.log.hash_alg.value}",
            reason="hash-alg-mismatch",
        )
    verified: list[NoteSignature] = []
    for entry in policy.log_keys_for(checkpoint.size):
        key = entry.key()
        if note.signature_of(checkpoint.origin, key) is None:
            continue
        try:
            verified.append(note.verify(key, checkpoint.origin))
        except InvalidSignature as e:
            raise UntrustedCheckpoint(
                f"the signature of trusted log key {entry.key_id} does not verify",
                reason="invalid-checkpoint-signature",
            ) from e
    if not verified:
        raise UntrustedCheckpoint(
            f"no signature by a log key the policy trusts for tree size {checkpoint.size}",
            reason="untrusted-checkpoint",
        )
    return tuple(verified)


def advance(latest: TreeHead | None, request: AddCheckpoint, hasher: TreeHasher) -> TreeHead:
    """The witness's new tree head after ``request``, given the one it cosigned last (None: never).

    Refusals, in C2SP tlog-witness order: ``old`` beyond the checkpoint's size
    (:class:`InvalidRequest`, 400); ``old`` not the latest cosigned size (:class:`OldSizeMismatch`,
    409, carrying that size); an empty tree with another root, a proof from the empty tree, a proof
    that does not verify, or the same size with another root (:class:`InconsistentCheckpoint`,
    422). So a witness never goes back to a smaller tree and never cosigns a fork of one it saw.
    """
    checkpoint = request.checkpoint
    if request.old_size > checkpoint.size:
        raise InvalidRequest(
            f"old size {request.old_size} is beyond the checkpoint's size {checkpoint.size}",
            reason="old-size-too-large",
        )
    current = latest.size if latest is not None else 0
    if request.old_size != current:
        raise OldSizeMismatch(
            f"the latest checkpoint cosigned for {checkpoint.origin} has size {current}, "
            f"not {request.old_size}",
            latest_size=current,
        )
    if checkpoint.size == 0 and checkpoint.root_hash != hasher.empty_root():
        raise InconsistentCheckpoint("a checkpoint of size 0 must have the empty-tree root")
    if latest is None or request.old_size == 0:
        if request.proof:
            raise InconsistentCheckpoint("a consistency proof from the empty tree must be empty")
        return TreeHead(checkpoint.size, checkpoint.root_hash)
    try:
        verify_consistency(
            hasher, latest.size, checkpoint.size, latest.root_hash, checkpoint.root_hash, request.proof
        )
    except InvalidProof as e:
        raise InconsistentCheckpoint(
            f"checkpoint of size {checkpoint.size} is not consistent with the cosigned size "
            f"{latest.size}: {e.message}"
        ) from e
    return TreeHead(checkpoint.size, checkpoint.root_hash)


def add_checkpoint_body(old_size: int, proof: list[bytes] | tuple[bytes, ...], note: str) -> bytes:
    """The ``add-checkpoint`` request body a log sends (the inverse of :func:`parse_add_checkpoint`)."""
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old_size}\n{lines}\n{note}".encode()
