"""Field-level SM4-GCM encryption of personal data, with per-subject keys for crypto-shredding.

Each data subject gets its own random 16-byte SM4 data key (:func:`new_data_key`). Personal fields
(name, phone, address, …) are sealed under that key (:func:`seal_field`); the data key itself is
stored only wrapped under the deployment's master key (:func:`wrap_key`). Erasing a subject
(PIPL arts. 46-47) is then a matter of deleting its wrapped key: every ciphertext sealed under it
becomes unreadable, wherever copies of it live (backups, replicas), while the ledger's proofs,
which only ever contain keyed hashes, stay valid.

Algorithms: SM4 block cipher (GB/T 32907-2016) in GCM mode (NIST SP 800-38D, as specified for SM4
by RFC 8998), through :func:`ledger.core.crypto.sm4_gcm_seal` (the C GmSSL binding ``gmssl_pyx``,
shared with the ledger's encrypted key files); nonces come from GmSSL's random source.

**Sealed format, version 1** (both for fields and for wrapped keys)::

    version (1 byte, 0x01) || nonce (12 bytes) || ciphertext (len(plaintext) bytes) || tag (16 bytes)

The authenticated additional data (AAD) binds a ciphertext to where it belongs, so a ciphertext
copied to another subject or another field does not open:

* field: ``b"trustledger/vault/field/v1\\x00" || version || u32be(len(subject_ref)) || subject_ref
  || u32be(len(field)) || field`` (``field`` UTF-8 encoded); the plaintext is the value's UTF-8.
* wrapped key: ``b"trustledger/vault/key/v1\\x00" || version || u32be(len(subject_ref)) ||
  subject_ref``; the plaintext is the 16-byte data key.

``subject_ref`` is the subject's stable pseudonymous reference as bytes (for instance the raw
bytes of :func:`ledger.core.crypto.subject_ref`); it must not be empty.

**Frozen format.** Changing the layout, the AAD or the algorithm makes every stored ciphertext
unreadable; a change needs a new version byte beside this one, never an edit.

Limits: with random 96-bit nonces, one key should seal at most 2³² values (NIST SP 800-38D §8.3),
far beyond one subject's fields or one master key's wraps in this system. SM4-GCM in GmSSL cannot
seal an empty value, so the empty string is refused (:class:`ValueError`): store "no value" as
NULL.

Errors: a key of the wrong length is ``CreditError`` with reason ``vault-key``; anything that
does not authenticate — wrong key, wrong subject or field, unknown version, truncated or tampered
bytes — is ``CreditError`` with reason ``vault-integrity``, with no detail about which part
failed.
"""

from __future__ import annotations

import struct
from typing import Final

import gmssl_pyx

from credit.errors import CreditError
from ledger.core.crypto import GCM_NONCE_SIZE, GCM_TAG_SIZE, SM4_KEY_SIZE, sm4_gcm_open, sm4_gcm_seal
from ledger.errors import VerificationError

__all__ = [
    "FORMAT_VERSION",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "new_data_key",
    "open_field",
    "seal_field",
    "unwrap_key",
    "wrap_key",
]

FORMAT_VERSION: Final = 1
"""The version byte of sealed values and wrapped keys produced by this module."""
KEY_SIZE: Final = SM4_KEY_SIZE
"""SM4 key size in bytes (master keys and data keys)."""
NONCE_SIZE: Final = GCM_NONCE_SIZE
"""GCM nonce size in bytes."""
TAG_SIZE: Final = GCM_TAG_SIZE
"""GCM authentication tag size in bytes."""

_VERSION_BYTE: Final = bytes([FORMAT_VERSION])
_FIELD_DOMAIN: Final = b"trustledger/vault/field/v1\x00"
_KEY_DOMAIN: Final = b"trustledger/vault/key/v1\x00"
_HEADER: Final = 1 + NONCE_SIZE


def _check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise CreditError(f"{what} must be bytes", reason="vault-key")
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise CreditError(f"{what} must be {KEY_SIZE} bytes, got {len(key)}", reason="vault-key")
    return key


def _length_prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _check_subject(subject_ref: bytes) -> bytes:
    subject = bytes(subject_ref)
    if not subject:
        raise ValueError("subject_ref must not be empty")
    return subject


def _field_aad(subject_ref: bytes, field: str) -> bytes:
    if not field:
        raise ValueError("field name must not be empty")
    subject = _check_subject(subject_ref)
    return _FIELD_DOMAIN + _VERSION_BYTE + _length_prefixed(subject) + _length_prefixed(field.encode("utf-8"))


def _key_aad(subject_ref: bytes) -> bytes:
    return _KEY_DOMAIN + _VERSION_BYTE + _length_prefixed(_check_subject(subject_ref))


def _seal(key: bytes, aad: bytes, plaintext: bytes) -> bytes:
    nonce, sealed = sm4_gcm_seal(key, aad, plaintext)
    return _VERSION_BYTE + nonce + sealed


def _open(key: bytes, aad: bytes, sealed: bytes, what: str) -> bytes:
    sealed = bytes(sealed)
    if len(sealed) <= _HEADER + TAG_SIZE or sealed[0] != FORMAT_VERSION:
        raise CreditError(f"{what} does not authenticate", reason="vault-integrity")
    try:
        return sm4_gcm_open(key, sealed[1:_HEADER], aad, sealed[_HEADER:])
    except VerificationError as e:
        raise CreditError(f"{what} does not authenticate", reason="vault-integrity") from e


def new_data_key() -> bytes:
    """A fresh random 16-byte SM4 data key for one subject (from GmSSL's random source)."""
    return bytes(gmssl_pyx.rand_bytes(KEY_SIZE))


def wrap_key(master_key: bytes, data_key: bytes, *, subject_ref: bytes) -> bytes:
    """Encrypt a subject's data key under the master key, bound to ``subject_ref`` (45 bytes out).

    The result is the version-1 sealed format of the module docstring; store it with the
    subject and delete it to crypto-shred the subject's fields.
    """
    master = _check_key(master_key, "master key")
    key = _check_key(data_key, "data key")
    return _seal(master, _key_aad(subject_ref), key)


def unwrap_key(master_key: bytes, wrapped: bytes, *, subject_ref: bytes) -> bytes:
    """Recover a data key wrapped by :func:`wrap_key` for the same master key and ``subject_ref``.

    Raises ``CreditError`` (``vault-integrity``) if the wrapped key does not authenticate.
    """
    master = _check_key(master_key, "master key")
    key = _open(master, _key_aad(subject_ref), wrapped, "wrapped data key")
    if len(key) != KEY_SIZE:  # pragma: no cover - only possible for a forgery that authenticated
        raise CreditError("wrapped data key has the wrong length", reason="vault-integrity")
    return key


def seal_field(data_key: bytes, plaintext: str, *, subject_ref: bytes, field: str) -> bytes:
    """Encrypt one personal field's value under the subject's data key.

    The output is ``0x01 || nonce (12) || ciphertext || tag (16)``: 29 bytes plus the value's
    UTF-8 length. The value must not be empty (:class:`ValueError`).
    """
    key = _check_key(data_key, "data key")
    if not isinstance(plaintext, str):
        raise TypeError("plaintext must be a str")
    if not plaintext:
        raise ValueError("an empty value cannot be sealed; store NULL instead")
    return _seal(key, _field_aad(subject_ref, field), plaintext.encode("utf-8"))


def open_field(data_key: bytes, sealed: bytes, *, subject_ref: bytes, field: str) -> str:
    """Decrypt a value sealed by :func:`seal_field` for the same key, subject and field.

    Raises ``CreditError`` (``vault-integrity``) if the sealed value does not authenticate.
    """
    key = _check_key(data_key, "data key")
    plaintext = _open(key, _field_aad(subject_ref, field), sealed, "sealed field")
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError as e:  # pragma: no cover - seal_field only seals UTF-8
        raise CreditError("sealed field is not UTF-8", reason="vault-integrity") from e
