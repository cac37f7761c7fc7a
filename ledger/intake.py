"""Intake: what a caller submits, what it is told back, and the checks and rows in between.

A :class:`Submission` becomes a leaf (:mod:`ledger.core.leaf` encodes it; nothing here spells
bytes of its own) and a row of the record table. Seals are verified and idempotency keys answered
while the rows stream into the database, so a bad submission is refused before anything commits.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ledger.core.crypto import HashAlgorithm, Sm2PublicKey, digest_function
from ledger.core.leaf import (
    MAX_METADATA_BYTES,
    LeafData,
    RecordKind,
    Seal,
    canonical_metadata,
    encode_leaf,
    verify_seal,
)
from ledger.errors import Conflict, InvalidRequest, InvalidSignature
from ledger.store import LogStore
from ledger.stored import IdempotentHit

_SEAL_KEY_CACHE_S = 5.0
_sm3 = digest_function(HashAlgorithm.SM3)


def now_us() -> int:
    """The wall clock in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def new_record_id(now_us: int) -> str:
    """A record id: 14 hex digits of time, then 128 random bits (32 hex digits).

    The random part makes ids unguessable read capabilities; the time prefix keeps inserts into
    the id index local (random ids made bulk intake slow down as the table grew).
    """
    return f"{now_us & 0xFFFF_FFFF_FFFF_FF:014x}{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Submission:
    """One record as a calling system submits it (already parsed and typed)."""

    kind: RecordKind
    content_hash: bytes
    hash_alg: HashAlgorithm = HashAlgorithm.SM3
    metadata: Mapping[str, Any] | None = None
    subject_ref: bytes | None = None
    idempotency_key: str | None = None
    seal_key_id: str | None = None
    seal_signature: bytes | None = None
    # ``canonical_metadata(metadata)`` when the caller has it already (it is trusted as given):
    # set it through :meth:`of_document`, which takes it from the core's encoder.
    metadata_json: bytes | None = None

    @classmethod
    def of_document(
        cls,
        kind: RecordKind,
        document: Mapping[str, Any],
        *,
        subject_ref: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """A record whose content is its own metadata: the content hash is the SM3 of the
        document's canonical JSON (:func:`~ledger.core.leaf.canonical_metadata`, encoded once and
        used for both). The credit engine's records are of this shape."""
        encoded = canonical_metadata(document)
        return cls(
            kind=kind,
            content_hash=_sm3(encoded),
            metadata=document,
            metadata_json=encoded,
            subject_ref=subject_ref,
            idempotency_key=idempotency_key,
        )


@dataclass(frozen=True)
class Accepted:
    """The answer to one accepted submission."""

    id: str
    received_at_us: int
    leaf_hash: bytes
    duplicate: bool = False


def _metadata_json(sub: Submission) -> bytes:
    if sub.metadata_json is None:
        return canonical_metadata(sub.metadata)
    if len(sub.metadata_json) > MAX_METADATA_BYTES:
        raise InvalidRequest(
            f"metadata is {len(sub.metadata_json)} bytes canonical; the limit is {MAX_METADATA_BYTES}",
            reason="invalid-metadata",
        )
    return sub.metadata_json


def request_hash(data: LeafData) -> bytes:
    """What makes two submissions "the same" for idempotency: everything but the server time."""
    return _sm3(encode_leaf(replace(data, received_at_us=0)))


class Intake:
    """Checks submissions and builds their record rows for one log (shared by threads).

    ``clock`` gives the received-at time of each submit call; ``leaf_hash`` is the log's RFC 9162
    leaf hash. Seal keys are read from the store and kept for a few seconds per submitter.
    """

    def __init__(
        self, store: LogStore, leaf_hash: Callable[[bytes], bytes], clock: Callable[[], int]
    ) -> None:
        self._store = store
        self._leaf_hash = leaf_hash
        self._clock = clock
        self._seal_keys: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def seal_keys_of(self, submitter: str) -> dict[str, str]:
        """The unrevoked seal keys of ``submitter`` (key id → public key hex), cached briefly."""
        with self._lock:
            cached = self._seal_keys.get(submitter)
        if cached is not None and time.monotonic() - cached[0] < _SEAL_KEY_CACHE_S:
            return cached[1]
        keys = self._store.seal_keys(submitter)
        with self._lock:
            self._seal_keys[submitter] = (time.monotonic(), keys)
        return keys

    def rows(
        self,
        submitter: str,
        submissions: Sequence[Submission],
        existing: Mapping[str, IdempotentHit],
        results: list[Accepted],
    ) -> Iterator[tuple[Any, ...]]:
        """Rows to insert (``INSERT_COLUMNS`` order), built as they are consumed; appends each
        submission's answer to ``results``. ``existing`` are the stored records of the
        submissions' idempotency keys. Raises :class:`InvalidRequest`, :class:`InvalidSignature`
        or :class:`Conflict` (a reused key with other content) from the consumer's loop."""
        seal_keys = self.seal_keys_of(submitter) if any(s.seal_key_id for s in submissions) else {}
        return self._rows(submitter, submissions, seal_keys, existing, results, self._clock())

    def _rows(
        self,
        submitter: str,
        submissions: Sequence[Submission],
        seal_keys: Mapping[str, str],
        existing: Mapping[str, IdempotentHit],
        results: list[Accepted],
        received: int,
    ) -> Iterator[tuple[Any, ...]]:
        seen: dict[str, tuple[bytes, Accepted]] = {}
        leaf_hash_of = self._leaf_hash
        for position, sub in enumerate(submissions):
            data = leaf_data(submitter, sub, received, seal_keys, position)
            key = sub.idempotency_key
            same = None
            if key is not None:
                same = request_hash(data)
                earlier = seen.get(key)
                if earlier is None and key in existing:
                    hit = existing[key]
                    earlier = (hit.request_hash, Accepted(hit.id, hit.received_at_us, hit.leaf_hash, True))
                if earlier is not None:
                    if earlier[0] != same:
                        raise Conflict(
                            f"idempotency key {key!r} was already used with different content",
                            reason="idempotency-conflict",
                        )
                    results.append(replace(earlier[1], duplicate=True))
                    continue
            leaf = encode_leaf(data)
            accepted = Accepted(new_record_id(received), received, leaf_hash_of(leaf))
            if key is not None and same is not None:
                seen[key] = (same, accepted)
            results.append(accepted)
            yield (accepted.id, data.kind.value, submitter, key, same, received, leaf, accepted.leaf_hash)


def leaf_data(
    submitter: str, sub: Submission, received: int, seal_keys: Mapping[str, str], position: int
) -> LeafData:
    """The leaf of ``sub``, its seal verified against ``seal_keys`` (errors name ``position``)."""
    where = f"record {position}: " if position else ""
    if len(sub.content_hash) != 32:
        raise InvalidRequest(f"{where}content hash must be 32 bytes", reason="invalid-hash")
    seal = None
    if (sub.seal_key_id is None) != (sub.seal_signature is None):
        raise InvalidRequest(f"{where}a seal needs both key_id and signature", reason="invalid-seal")
    if sub.seal_key_id is not None and sub.seal_signature is not None:
        public_hex = seal_keys.get(sub.seal_key_id)
        if public_hex is None:
            raise InvalidSignature(
                f"{where}seal key {sub.seal_key_id!r} is not registered for {submitter!r}",
                reason="unknown-seal-key",
            )
        seal = Seal(Sm2PublicKey.from_hex(public_hex), sub.seal_signature)
    data = LeafData(
        kind=sub.kind,
        hash_alg=sub.hash_alg,
        content_hash=sub.content_hash,
        metadata_json=_metadata_json(sub),
        submitter=submitter,
        received_at_us=received,
        subject_ref=sub.subject_ref,
        seal=seal,
    )
    if seal is not None:
        try:
            verify_seal(data)
        except InvalidSignature as e:
            raise InvalidSignature(f"{where}{e.message}", reason=e.reason) from e
    return data
