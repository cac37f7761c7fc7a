"""Key files at rest: sealed with SM4-GCM under a key-encryption key (KEK) kept out of the data dir.

Every secret trustledger keeps in its data directory — the log's SM2 signing key
(``log-key.json``), retired log keys, the subject-reference secret (``subject-secret.key``), the
credit master secret (``credit-master.key``) and the anchoring keystore's password
(``chain-key.password``) — is stored in a **sealed key file**, a JSON document::

    {
      "format": "trustledger-sealed-key",
      "version": 1,
      "purpose": "log-key",                 # what the file is for (KeyPurpose)
      "alg": "sm4-gcm",
      "kek_id": "<16 hex>",                 # which KEK sealed it
      "nonce": "<24 hex>",                  # 96-bit random GCM nonce
      "ciphertext": "<base64>",             # SM4-GCM ciphertext || 16-byte tag
      "public_key": "<128 hex>"             # log keys only: the SM2 public key x||y, in clear
    }

The plaintext is exactly what the file held in plain text before (the log key's JSON document,
the hex secret line, the password line), so a file migrates by sealing its old bytes. The GCM
additional data binds the envelope's clear fields, so a file sealed for one purpose does not open
as another (a subject-secret file put in place of the log key fails to authenticate, even with
its ``purpose`` field edited)::

    AAD = "trustledger-sealed-key/v1" || 0x00 || lp(purpose) || lp(kek_id) || lp(public_key or "")

where ``lp(s)`` is the 4-byte big-endian length of ``s``'s UTF-8 bytes followed by them.

**The KEK** is 128 to 512 bits given as hex (``openssl rand -hex 32``): the setting
``TRUSTLEDGER_KEK`` or a file named by ``TRUSTLEDGER_KEK_FILE`` (mounted from a secret store),
never a file inside the data directory, so a copy of the data directory (a backup, a volume
snapshot, a leaked tarball) holds no usable key. Outside development one of the two is required.
In development, when neither is set, the KEK is the file ``<data dir>.kek`` beside the data
directory, created on first use: zero-setup, cleaned up with the data directory, and never inside
it. The SM4 key is ``HMAC-SM3(KEK, "trustledger/kek/sm4-gcm/v1")[:16]``; the KEK id is
``HMAC-SM3(KEK, "trustledger/kek/id/v1")[:8]`` in hex (it names the KEK without revealing it).

Plain-text key files from older deployments are refused outside development (and read with a
warning in development); ``trustledger init`` seals them in place, atomically.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
import stat
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ledger.core.crypto import GCM_NONCE_SIZE, hmac_sm3, sm4_gcm_open, sm4_gcm_seal
from ledger.errors import ConfigurationError, VerificationError

if TYPE_CHECKING:
    from ledger.settings import Settings

_logger = logging.getLogger(__name__)

ENVELOPE_FORMAT: Final = "trustledger-sealed-key"
ENVELOPE_VERSION: Final = 1
ENVELOPE_ALG: Final = "sm4-gcm"
_AAD_DOMAIN: Final = b"trustledger-sealed-key/v1\x00"
_KEK_KEY_LABEL: Final = b"trustledger/kek/sm4-gcm/v1"
_KEK_ID_LABEL: Final = b"trustledger/kek/id/v1"
_KEK_HEX = re.compile(r"^[0-9a-fA-F]{32,128}$")
_MAX_KEY_FILE_BYTES = 64 * 1024


class KeyPurpose(StrEnum):
    """What a sealed key file is for; bound into its authentication tag."""

    LOG_KEY = "log-key"
    RETIRED_LOG_KEY = "retired-log-key"
    SUBJECT_SECRET = "subject-secret"
    CREDIT_MASTER = "credit-master"
    CHAIN_KEY_PASSWORD = "chain-key-password"
    WITNESS_KEY = "witness-key"


def parse_kek(text: str, *, where: str) -> bytes:
    """KEK material from its hex form; refuses short, malformed and placeholder values."""
    value = text.strip()
    if not _KEK_HEX.fullmatch(value) or len(value) % 2:
        raise ConfigurationError(
            f"{where}: a KEK is 32 to 128 hex digits (128 to 512 bits), e.g. `openssl rand -hex 32`"
        )
    if len(set(value.lower())) < 4:
        raise ConfigurationError(f"{where}: the KEK is a placeholder (too few distinct digits)")
    return bytes.fromhex(value)


@dataclass(frozen=True, repr=False)
class Kek:
    """A key-encryption key: the derived SM4 key and its public id."""

    sm4_key: bytes
    kek_id: str
    source: str

    @classmethod
    def from_material(cls, material: bytes, *, source: str) -> Kek:
        """Derive the SM4 key and the id from the KEK's bytes."""
        return cls(
            sm4_key=hmac_sm3(material, _KEK_KEY_LABEL)[:16],
            kek_id=hmac_sm3(material, _KEK_ID_LABEL)[:8].hex(),
            source=source,
        )

    def __repr__(self) -> str:
        return f"Kek(kek_id={self.kek_id!r}, source={self.source!r})"


def _length_prefixed(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">I", len(data)) + data


def _aad(purpose: str, kek_id: str, public_key: str | None) -> bytes:
    return (
        _AAD_DOMAIN
        + _length_prefixed(purpose)
        + _length_prefixed(kek_id)
        + _length_prefixed(public_key or "")
    )


def seal_envelope(kek: Kek, purpose: KeyPurpose, plaintext: bytes, *, public_key: str | None = None) -> bytes:
    """The sealed key file (JSON bytes) holding ``plaintext`` for ``purpose``."""
    nonce, sealed = sm4_gcm_seal(kek.sm4_key, _aad(purpose.value, kek.kek_id, public_key), plaintext)
    document: dict[str, object] = {
        "format": ENVELOPE_FORMAT,
        "version": ENVELOPE_VERSION,
        "purpose": purpose.value,
        "alg": ENVELOPE_ALG,
        "kek_id": kek.kek_id,
        "nonce": nonce.hex(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    if public_key is not None:
        document["public_key"] = public_key
    return (json.dumps(document, indent=2) + "\n").encode()


def envelope_of(content: bytes) -> dict[str, object] | None:
    """The envelope document if ``content`` is a sealed key file (None: a plain-text file)."""
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, dict) and document.get("format") == ENVELOPE_FORMAT:
        return document
    return None


def open_envelope(kek: Kek | None, purpose: KeyPurpose, document: dict[str, object], *, where: str) -> bytes:
    """The plaintext of a sealed key file; :class:`ConfigurationError` says what is wrong."""
    if document.get("version") != ENVELOPE_VERSION or document.get("alg") != ENVELOPE_ALG:
        raise ConfigurationError(
            f"{where}: unsupported sealed key file (version {document.get('version')!r}, "
            f"alg {document.get('alg')!r}; this version reads {ENVELOPE_VERSION}, {ENVELOPE_ALG})"
        )
    if document.get("purpose") != purpose.value:
        raise ConfigurationError(
            f"{where}: this is a {document.get('purpose')!r} key file, not a {purpose.value!r} one"
        )
    if kek is None:
        raise ConfigurationError(
            f"{where} is sealed under KEK {document.get('kek_id')}, but no KEK is configured "
            "(TRUSTLEDGER_KEK or TRUSTLEDGER_KEK_FILE)"
        )
    if document.get("kek_id") != kek.kek_id:
        raise ConfigurationError(
            f"{where} is sealed under KEK {document.get('kek_id')}, "
            f"but the configured KEK ({kek.source}) is {kek.kek_id}"
        )
    public_key = document.get("public_key")
    nonce_hex, ciphertext = document.get("nonce"), document.get("ciphertext")
    if not isinstance(nonce_hex, str) or not isinstance(ciphertext, str):
        raise ConfigurationError(f"{where}: the sealed key file has no nonce or ciphertext")
    if public_key is not None and not isinstance(public_key, str):
        raise ConfigurationError(f"{where}: public_key must be a string")
    try:
        nonce = bytes.fromhex(nonce_hex)
        sealed = base64.b64decode(ciphertext, validate=True)
        if len(nonce) != GCM_NONCE_SIZE:
            raise ValueError("bad nonce length")
        return sm4_gcm_open(kek.sm4_key, nonce, _aad(purpose.value, kek.kek_id, public_key), sealed)
    except (ValueError, binascii.Error, VerificationError) as e:
        raise ConfigurationError(
            f"{where} does not authenticate under KEK {kek.kek_id}: the file was altered or belongs elsewhere"
        ) from e


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, content: bytes, *, replace: bool = False) -> None:
    """Write ``content`` to ``path`` atomically with mode 0600.

    A temporary file in the same directory is written and fsynced, then linked into place (refusing
    an existing file) or, with ``replace``, renamed over it; a crash leaves the old file or the new
    one, never a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError as e:
                raise ConfigurationError(f"{path} exists; refusing to overwrite it") from e
            finally:
                temporary.unlink(missing_ok=True)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _read_limited(path: Path) -> bytes:
    with path.open("rb") as handle:
        content = handle.read(_MAX_KEY_FILE_BYTES + 1)
    if len(content) > _MAX_KEY_FILE_BYTES:
        raise ConfigurationError(f"{path} is larger than any key file ({_MAX_KEY_FILE_BYTES} bytes)")
    return content


def _group_or_world_accessible(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def load_kek_file(path: Path) -> Kek:
    """The KEK in ``path`` (hex); refuses a file that others may read."""
    try:
        text = _read_limited(path).decode("ascii", "replace")
    except FileNotFoundError as e:
        raise ConfigurationError(f"no KEK file at {path}") from e
    except OSError as e:
        raise ConfigurationError(f"cannot read the KEK file {path}: {e}") from e
    if _group_or_world_accessible(path):
        raise ConfigurationError(f"the KEK file {path} is readable by others; chmod 600 it")
    return Kek.from_material(parse_kek(text, where=str(path)), source=str(path))


def create_kek_file(path: Path) -> Kek:
    """Generate a 256-bit KEK into ``path`` (mode 0600; refuses to overwrite)."""
    material = secrets.token_bytes(32)
    write_private_file(path, material.hex().encode() + b"\n")
    _logger.warning("created a development KEK", extra={"path": str(path)})
    return Kek.from_material(material, source=str(path))


@dataclass(frozen=True)
class KeyFiles:
    """Reads and writes the deployment's key files under its KEK.

    ``allow_plain`` (development only) lets older plain-text files be read, with a warning. Outside
    development a plain-text file is refused inside ``data_dir``; outside it (a password mounted
    from a secret store, as the KEK itself is) it is the operator's managed secret and is read.
    """

    kek: Kek | None
    allow_plain: bool = False
    data_dir: Path | None = None

    @classmethod
    def for_settings(cls, settings: Settings, *, create_kek: bool = False) -> KeyFiles:
        """The KEK the settings name; in development the default file, created if ``create_kek``."""
        from ledger.settings import Environment

        development = settings.environment is Environment.DEVELOPMENT
        if settings.kek is not None:
            kek = Kek.from_material(
                parse_kek(settings.kek.get_secret_value(), where="TRUSTLEDGER_KEK"), source="TRUSTLEDGER_KEK"
            )
        elif settings.kek_file is not None:
            kek = load_kek_file(settings.kek_file)
        elif not development:
            raise ConfigurationError(
                "no key-encryption key: set TRUSTLEDGER_KEK or TRUSTLEDGER_KEK_FILE (outside the data dir)"
            )
        else:
            path = settings.development_kek_path
            if path.exists():
                kek = load_kek_file(path)
            elif create_kek:
                try:
                    kek = create_kek_file(path)
                except ConfigurationError:
                    if not path.exists():
                        raise
                    kek = load_kek_file(path)  # another process (a second worker) created it first
            else:
                return cls(None, allow_plain=True, data_dir=settings.data_dir.resolve())
        return cls(kek, allow_plain=development, data_dir=settings.data_dir.resolve())

    def _require_kek(self, path: Path) -> Kek:
        if self.kek is None:
            raise ConfigurationError(f"cannot seal {path}: no KEK is configured")
        return self.kek

    def create(
        self, path: Path, purpose: KeyPurpose, plaintext: bytes, *, public_key: str | None = None
    ) -> None:
        """Write a new sealed key file (refuses to overwrite an existing one)."""
        if path.exists():
            raise ConfigurationError(f"{path} exists; refusing to replace it")
        envelope = seal_envelope(self._require_kek(path), purpose, plaintext, public_key=public_key)
        write_private_file(path, envelope)

    def replace(
        self, path: Path, purpose: KeyPurpose, plaintext: bytes, *, public_key: str | None = None
    ) -> None:
        """Atomically replace ``path`` by a sealed key file holding ``plaintext``."""
        envelope = seal_envelope(self._require_kek(path), purpose, plaintext, public_key=public_key)
        write_private_file(path, envelope, replace=True)

    def read(self, path: Path, purpose: KeyPurpose) -> bytes:
        """The plaintext of the key file at ``path`` (sealed; plain text only in development)."""
        try:
            content = _read_limited(path)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise ConfigurationError(f"cannot read {path}: {e}") from e
        document = envelope_of(content)
        if document is not None:
            return open_envelope(self.kek, purpose, document, where=str(path))
        outside = self.data_dir is not None and not path.resolve().is_relative_to(self.data_dir)
        if not self.allow_plain and not outside:
            raise ConfigurationError(
                f"{path} is a plain-text key file; run `trustledger init` with the KEK configured to "
                "seal it (plain-text key files are refused outside development)"
            )
        if not outside:
            _logger.warning("plain-text key file (`trustledger init` seals it)", extra={"path": str(path)})
        return content

    def migrate(self, path: Path, purpose: KeyPurpose, *, public_key: str | None = None) -> bool:
        """Seal a plain-text key file in place (atomically); False if it is sealed already or absent."""
        try:
            content = _read_limited(path)
        except FileNotFoundError:
            return False
        document = envelope_of(content)
        if document is not None:
            open_envelope(self.kek, purpose, document, where=str(path))  # sealed, and by this KEK
            return False
        if not content.strip():
            raise ConfigurationError(f"{path} is empty")
        self.replace(path, purpose, content, public_key=public_key)
        _logger.info("sealed a plain-text key file", extra={"path": str(path), "purpose": purpose.value})
        return True

    def is_sealed(self, path: Path) -> bool:
        """Whether ``path`` holds a sealed key file."""
        return envelope_of(_read_limited(path)) is not None
