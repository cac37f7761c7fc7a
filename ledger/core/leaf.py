"""The canonical leaf encoding: the exact bytes that are hashed into the Merkle log.

Format ``trustledger leaf v1`` (documented in ``docs/formats.md``)::

    leaf    = 0x01 field{10}
    field   = u32be(length) bytes

with the ten fields, in this order and always present (empty when absent):

 1. record kind, ASCII (``certificate``, ``approval``, ...)
 2. content-hash algorithm, ASCII (``sm3`` or ``sha256``)
 3. content hash, raw bytes (32)
 4. metadata, RFC 8785 canonical JSON of a JSON object, UTF-8
 5. submitting system, UTF-8
 6. received-at time, u64be microseconds since 1970-01-01T00:00:00Z
 7. subject reference, raw bytes (32, an HMAC-SM3 keyed hash) or empty
 8. seal signer public key, raw SM2 point x||y (64) or empty
 9. seal signature, DER SM2 signature or empty
10. reserved, empty in v1

Length prefixes make the encoding injective without escaping; decoding is strict (exact field count,
no trailing bytes), so one record has exactly one leaf. The seal (an electronic seal of the calling
system, GB/T 38540 in spirit) is an SM2 signature over :func:`seal_message`, which covers what the
caller controls — kind, content hash and metadata — but not the server's time.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import rfc8785

from ledger.core.crypto import HashAlgorithm, Sm2PublicKey, sm2_verify
from ledger.errors import InvalidRequest, InvalidSignature

LEAF_VERSION = 1
SEAL_DOMAIN = b"trustledger/seal/v1\x00"
MAX_METADATA_BYTES = 8192
MAX_TIME_US = 253_402_300_800_000_000  # 10000-01-01T00:00:00Z: RFC 3339 text has four-digit years
_FIELDS = 10
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HASH_SIZE = 32


class RecordKind(StrEnum):
    """What a record is; the kind is part of the leaf."""

    CERTIFICATE = "certificate"
    APPROVAL = "approval"
    EVIDENCE = "evidence"
    CREDIT_EVENT = "credit_event"
    CREDIT_CHANGE = "credit_change"
    GENERIC = "generic"
    CREDIT_RULEBOOK = "credit_rulebook"  # a rulebook version's activation (its canonical hash)
    CREDIT_WORKFLOW = "credit_workflow"  # objections, repairs, list decisions and reminders
    CREDIT_LIST = "credit_list"  # a published red/black list snapshot (its Merkle root)
    ACCESS = "access"  # someone read a subject's credit data


CREDIT_KINDS = frozenset(
    {
        RecordKind.CREDIT_EVENT,
        RecordKind.CREDIT_CHANGE,
        RecordKind.CREDIT_RULEBOOK,
        RecordKind.CREDIT_WORKFLOW,
        RecordKind.CREDIT_LIST,
        RecordKind.ACCESS,
    }
)
"""Kinds only the credit service writes (the records API refuses them from calling systems)."""


@dataclass(frozen=True)
class Seal:
    """An SM2 electronic seal by the submitting system over :func:`seal_message`."""

    public_key: Sm2PublicKey
    signature: bytes

    @property
    def key_id(self) -> str:
        """The signer key's fingerprint."""
        return self.public_key.key_id()


@dataclass(frozen=True)
class LeafData:
    """Everything a leaf commits to, as plain data."""

    kind: RecordKind
    hash_alg: HashAlgorithm
    content_hash: bytes
    metadata_json: bytes
    submitter: str
    received_at_us: int
    subject_ref: bytes | None = None
    seal: Seal | None = field(default=None)

    @property
    def received_at(self) -> datetime:
        """The received-at time as an aware UTC datetime."""
        return microseconds_to_datetime(self.received_at_us)

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata object (decoded from its canonical JSON)."""
        value: dict[str, Any] = json.loads(self.metadata_json)
        return value


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON. Refuses values JCS cannot represent (NaN, huge ints).

    Plain values (:func:`_plain`, the common case) take the fast path through ``json``'s C
    encoder, which for them writes exactly RFC 8785's bytes; everything else goes through the
    ``rfc8785`` library. A differential property test holds both to the library.
    """
    if isinstance(value, Mapping) and not value:
        return b"{}"
    if _plain(value):
        return _encode_plain(value)
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidRequest(f"value cannot be canonicalised as RFC 8785 JSON: {e}") from e


_SAFE_INT = 2**53 - 1
_LAST_BMP = "\uffff"
_PLAIN_SCALARS = frozenset({str, bool, type(None)})
_encode_sorted_compact = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _plain(value: Any) -> bool:
    """Whether sorted-key compact ``json`` output of ``value`` is its RFC 8785 form, byte for byte.

    True for values built only of these exact types (subclasses may change what either encoder
    calls, so they take the library's way): ``dict`` with ``str`` keys of Basic Multilingual
    Plane characters, ``list``, ``str``, ``int`` within ±(2^53−1), ``bool`` and ``None`` — and, as
    values, ``StrEnum`` members (``str`` subclasses that override nothing either encoder calls:
    both write the member's text). Why the bytes are equal, element by element (RFC 8785
    §3.2.2–3.2.3):

    - ``null``, ``true``, ``false`` and ``[a,b]`` / ``{"k":v}`` with no whitespace: the same;
    - an integer in the safe range is its shortest decimal form in both (ES6 number formatting
      of an integral double equals ``int.__repr__`` there);
    - a string escapes exactly ``"``, ``\\`` and U+0000–U+001F in both (``\\b \\t \\n \\f \\r``,
      else ``\\u00xx`` in lower-case hex) and keeps every other character as UTF-8; a lone
      surrogate cannot be UTF-8 encoded, and both refuse it;
    - members are sorted by UTF-16 code units in RFC 8785 and by code points in ``json``: for
      keys of BMP characters only, code units are the code points, so the orders agree (keys
      with characters beyond U+FFFF sort differently and take the library's way).
    """
    kind = type(value)
    if kind in _PLAIN_SCALARS or issubclass(kind, StrEnum):
        return True
    if kind is int:
        number: int = value
        return -_SAFE_INT <= number <= _SAFE_INT
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) <= _LAST_BMP):
                return False
            item_kind = type(item)
            if item_kind in _PLAIN_SCALARS:
                continue
            if item_kind is int:
                if not -_SAFE_INT <= item <= _SAFE_INT:
                    return False
            elif not _plain(item):  # containers, and the rare StrEnum
                return False
        return True
    if kind is list:
        for item in value:
            item_kind = type(item)
            if item_kind in _PLAIN_SCALARS:
                continue
            if item_kind is int:
                if not -_SAFE_INT <= item <= _SAFE_INT:
                    return False
            elif not _plain(item):
                return False
        return True
    return False


def _encode_plain(value: Any) -> bytes:
    """The RFC 8785 bytes of a :func:`_plain` value."""
    try:
        return _encode_sorted_compact(value).encode()
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidRequest(f"value cannot be canonicalised as RFC 8785 JSON: {e}") from e


def _refuse_non_integers(value: Any, where: str) -> None:
    """Raise unless every number in ``value`` is an integer within ±(2^53−1) (metadata's rule)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -_SAFE_INT <= value <= _SAFE_INT:
            raise InvalidRequest(
                f"{where} is {value}: metadata integers must lie within ±(2^53−1)", reason="invalid-metadata"
            )
    elif isinstance(value, float):
        raise InvalidRequest(
            f"{where} is {value!r}: metadata numbers must be integers (no fraction, no exponent)",
            reason="invalid-metadata",
        )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_non_integers(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _refuse_non_integers(item, f"{where}[{i}]")


def canonical_metadata(metadata: Mapping[str, Any] | None) -> bytes:
    """Canonical metadata bytes: RFC 8785 JSON of an object of bounded size; the one encoder of
    leaf metadata (callers that need the bytes, e.g. for a content hash, take them from here).

    Metadata numbers are integers within ±(2^53−1) only, so that every JSON parser (JavaScript's
    included) reads the same value and each metadata object has exactly one spelling: ``1.0`` or
    ``1e0`` would canonicalise to ``1`` and let two texts stand for one leaf. Plain objects (see
    :func:`_plain`, which admits no float and no unsafe integer) are checked and encoded in one
    pass each at about the cost of ``json.dumps``; others are checked value by value and encoded
    by the ``rfc8785`` library.
    """
    if metadata is None:
        return b"{}"
    if not isinstance(metadata, Mapping):
        raise InvalidRequest("metadata must be a JSON object", reason="invalid-metadata")
    value = metadata if isinstance(metadata, dict) else dict(metadata)
    try:
        if _plain(value):
            encoded = _encode_plain(value)
        else:
            _refuse_non_integers(value, "metadata")
            encoded = canonical_json(value)
    except RecursionError as e:
        raise InvalidRequest("metadata nests too deeply", reason="invalid-metadata") from e
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidRequest(
            f"metadata is {len(encoded)} bytes canonical; the limit is {MAX_METADATA_BYTES}",
            reason="invalid-metadata",
        )
    return encoded


def seal_message(
    kind: RecordKind, hash_alg: HashAlgorithm, content_hash: bytes, metadata_json: bytes
) -> bytes:
    """The bytes a calling system signs with its SM2 key to seal a record."""
    parts = (kind.value.encode(), hash_alg.value.encode(), content_hash, metadata_json)
    return SEAL_DOMAIN + b"".join(_U32.pack(len(p)) + p for p in parts)


def verify_seal(data: LeafData) -> None:
    """Raise :class:`InvalidSignature` unless the leaf's seal is a valid SM2 signature."""
    if data.seal is None:
        return
    message = seal_message(data.kind, data.hash_alg, data.content_hash, data.metadata_json)
    if not sm2_verify(data.seal.public_key, message, data.seal.signature):
        raise InvalidSignature(
            f"the seal signature does not verify for key {data.seal.key_id}", reason="invalid-seal"
        )


_VERSION_BYTE = bytes([LEAF_VERSION])
_ASCII: dict[StrEnum, bytes] = {e: e.value.encode() for e in (*RecordKind, *HashAlgorithm)}


def encode_leaf(data: LeafData) -> bytes:
    """Encode ``data`` as leaf bytes (format v1, see the module docstring)."""
    if len(data.content_hash) != _HASH_SIZE:
        raise InvalidRequest("content hash must be 32 bytes", reason="invalid-hash")
    if data.subject_ref is not None and len(data.subject_ref) != _HASH_SIZE:
        raise InvalidRequest("subject reference must be 32 bytes", reason="invalid-subject-ref")
    if not 0 <= data.received_at_us < MAX_TIME_US:
        raise InvalidRequest("received-at time out of range (1970 to 9999)")
    seal_key = data.seal.public_key.raw if data.seal else b""
    seal_sig = data.seal.signature if data.seal else b""
    fields = (
        _ASCII[data.kind],
        _ASCII[data.hash_alg],
        data.content_hash,
        data.metadata_json,
        data.submitter.encode(),
        _U64.pack(data.received_at_us),
        data.subject_ref or b"",
        seal_key,
        seal_sig,
        b"",
    )
    out = bytearray(_VERSION_BYTE)  # appending to a bytearray is the fastest build measured here
    for value in fields:
        out += _U32.pack(len(value))
        out += value
    return bytes(out)


def decode_leaf(leaf: bytes) -> LeafData:
    """Strictly decode leaf bytes; raise :class:`InvalidRequest` for anything not produced by encode."""
    if not leaf or leaf[0] != LEAF_VERSION:
        raise InvalidRequest("unknown leaf version", reason="invalid-leaf")
    fields: list[bytes] = []
    pos = 1
    while pos < len(leaf):
        if pos + 4 > len(leaf):
            raise InvalidRequest("truncated leaf field length", reason="invalid-leaf")
        (length,) = _U32.unpack_from(leaf, pos)
        pos += 4
        if pos + length > len(leaf):
            raise InvalidRequest("truncated leaf field", reason="invalid-leaf")
        fields.append(leaf[pos : pos + length])
        pos += length
    if len(fields) != _FIELDS:
        raise InvalidRequest(f"leaf has {len(fields)} fields, expected {_FIELDS}", reason="invalid-leaf")
    kind, alg, content_hash, metadata, submitter, received, subject, seal_key, seal_sig, reserved = fields
    if len(received) != 8 or reserved:
        raise InvalidRequest("malformed leaf time or reserved field", reason="invalid-leaf")
    if bool(seal_key) != bool(seal_sig):
        raise InvalidRequest("leaf seal is half present", reason="invalid-leaf")
    try:
        data = LeafData(
            kind=RecordKind(kind.decode()),
            hash_alg=HashAlgorithm(alg.decode()),
            content_hash=content_hash,
            metadata_json=metadata,
            submitter=submitter.decode(),
            received_at_us=_U64.unpack(received)[0],
            subject_ref=subject or None,
            seal=Seal(Sm2PublicKey(seal_key), seal_sig) if seal_key else None,
        )
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"malformed leaf: {e}", reason="invalid-leaf") from e
    if encode_leaf(data) != leaf:
        raise InvalidRequest("leaf is not in canonical form", reason="invalid-leaf")
    return data


def microseconds_to_datetime(us: int) -> datetime:
    """Microseconds since the Unix epoch to an aware UTC datetime (exact)."""
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def datetime_to_microseconds(moment: datetime) -> int:
    """An aware datetime to microseconds since the Unix epoch (exact, no float rounding)."""
    if moment.tzinfo is None:
        raise InvalidRequest("times must carry a time zone")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_time(us: int) -> str:
    """RFC 3339 UTC text with exactly six fractional digits, e.g. ``2026-11-21T05:35:00.000000Z``."""
    return microseconds_to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def parse_time(text: str) -> int:
    """Inverse of :func:`format_time`: microseconds since the epoch.

    Only the canonical form is accepted (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC, exactly six
    fractional digits): every signed or verified document spells one instant one way, so an
    offset such as ``+08:00``, a lower-case ``z`` or a missing fraction is refused even when it
    names the same instant.
    """
    if not isinstance(text, str) or not _TIME_RE.fullmatch(text):
        raise InvalidRequest(
            f"not a canonical time {text!r}: RFC 3339 UTC with six fractional digits and 'Z', "
            "e.g. 2026-11-21T05:35:00.000000Z",
            reason="invalid-time",
        )
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise InvalidRequest(f"not a valid time: {text!r}: {e}", reason="invalid-time") from e
    us = datetime_to_microseconds(moment)
    if not 0 <= us < MAX_TIME_US:
        raise InvalidRequest(f"time {text!r} is before 1970", reason="invalid-time")
    return us
