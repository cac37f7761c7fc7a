"""Key files: the log's SM2 checkpoint key, the deployment's secrets, and API keys.

Key files are created by ``trustledger init``, sealed under the deployment's KEK (see
:mod:`ledger.keyfiles`: SM4-GCM, mode 0600, written atomically) and never overwritten. API keys
are high-entropy random strings; only their SM3 hash is stored, so a plain fast hash suffices.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, digest_function
from ledger.errors import ConfigurationError
from ledger.keyfiles import KeyFiles, KeyPurpose

API_KEY_PREFIX = "tlk_"


def log_key_document(key: Sm2PrivateKey) -> bytes:
    """The plaintext of a log key file: a small JSON document with both halves of the key."""
    document = {
        "type": "trustledger-log-key",
        "alg": "sm2-sm3",
        "private_key": key.to_hex(),
        "public_key": key.public_key().hex(),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def parse_log_key(content: bytes, where: str) -> Sm2PrivateKey:
    """The key in a log key file's plaintext; checks that its halves match."""
    try:
        document = json.loads(content)
        key = Sm2PrivateKey(bytes.fromhex(document["private_key"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationError(f"{where} is not a valid log key file: {e}") from e
    if key.public_key().hex() != document.get("public_key"):
        raise ConfigurationError(f"{where}: the public key does not match the private key")
    return key


def create_log_key(path: Path, files: KeyFiles) -> Sm2PrivateKey:
    """Generate the log's SM2 key into ``path``, sealed (refuses to overwrite an existing key)."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to replace the log key")
    key = Sm2PrivateKey.generate()
    files.create(path, KeyPurpose.LOG_KEY, log_key_document(key), public_key=key.public_key().hex())
    return key


def load_log_key(path: Path, files: KeyFiles, purpose: KeyPurpose = KeyPurpose.LOG_KEY) -> Sm2PrivateKey:
    """Load the log's SM2 key; a clear error if it is missing, damaged or sealed for another use."""
    try:
        content = files.read(path, purpose)
    except FileNotFoundError as e:
        raise ConfigurationError(f"no log key at {path}; run `trustledger init` first") from e
    return parse_log_key(content, str(path))


def create_secret(path: Path, files: KeyFiles, purpose: KeyPurpose) -> bytes:
    """Generate a 32-byte secret (hex in the sealed file); refuses to overwrite."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to replace it")
    secret = secrets.token_bytes(32)
    files.create(path, purpose, secret.hex().encode() + b"\n")
    return secret


def load_secret(path: Path, files: KeyFiles, purpose: KeyPurpose) -> bytes:
    """Load a secret created by :func:`create_secret`."""
    try:
        content = files.read(path, purpose)
    except FileNotFoundError as e:
        raise ConfigurationError(f"no secret at {path}; run `trustledger init` first") from e
    try:
        secret = bytes.fromhex(content.decode("ascii").strip())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{path} is not a hex secret") from e
    if len(secret) < 16:
        raise ConfigurationError(f"{path}: the secret is shorter than 128 bits")
    return secret


def new_api_key() -> str:
    """A fresh API key (256 random bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> bytes:
    """The stored form of an API key."""
    return digest_function(HashAlgorithm.SM3)(key.encode())
