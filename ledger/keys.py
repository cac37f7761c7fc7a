"""Key files: the log's SM2 checkpoint key, the subject-reference secret, and API keys.

Files are created by ``trustledger init`` with mode 0600 and never overwritten. API keys are
high-entropy random strings; only their SM3 hash is stored, so a plain fast hash suffices.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, digest_function
from ledger.errors import ConfigurationError

API_KEY_PREFIX = "tlk_"


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def create_log_key(path: Path) -> Sm2PrivateKey:
    """Generate the log's SM2 key into ``path`` (refuses to overwrite an existing key)."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to replace the log key")
    key = Sm2PrivateKey.generate()
    document = {
        "type": "trustledger-log-key",
        "alg": "sm2-sm3",
        "private_key": key.to_hex(),
        "public_key": key.public_key().hex(),
    }
    _write_private(path, (json.dumps(document, indent=2) + "\n").encode())
    return key


def load_log_key(path: Path) -> Sm2PrivateKey:
    """Load the log's SM2 key; a clear error if it is missing or damaged."""
    try:
        document = json.loads(path.read_text())
        key = Sm2PrivateKey(bytes.fromhex(document["private_key"]))
    except FileNotFoundError as e:
        raise ConfigurationError(f"no log key at {path}; run `trustledger init` first") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationError(f"{path} is not a valid log key file: {e}") from e
    if key.public_key().hex() != document.get("public_key"):
        raise ConfigurationError(f"{path}: the public key does not match the private key")
    return key


def create_secret(path: Path) -> bytes:
    """Generate a 32-byte secret (hex in the file); refuses to overwrite."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to replace it")
    secret = secrets.token_bytes(32)
    _write_private(path, secret.hex().encode() + b"\n")
    return secret


def load_secret(path: Path) -> bytes:
    """Load a secret created by :func:`create_secret`."""
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError as e:
        raise ConfigurationError(f"no secret at {path}; run `trustledger init` first") from e
    except ValueError as e:
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
