"""The witness's key file: its signed-note name and SM2 private key (``witness-key.json``).

All reading and writing of the key is in these two functions, so protecting the key at rest
(encryption under a key-encryption key) changes only them. The file is created with mode 0600
and never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ledger.core.cosignature import cosignature_key_hash
from ledger.core.crypto import Sm2PrivateKey
from ledger.errors import ConfigurationError, InvalidRequest

KEY_FILE = "witness-key.json"


def create_witness_key(path: Path, name: str) -> Sm2PrivateKey:
    """Generate the witness key for ``name`` into ``path`` (refuses to replace an existing one)."""
    if not name or len(name) > 200 or any(c.isspace() for c in name) or "+" in name:
        raise InvalidRequest("a witness name is 1-200 characters, without spaces or '+'")
    key = Sm2PrivateKey.generate()
    document = {
        "type": "trustledger-witness-key",
        "alg": "sm2-sm3-cosignature/v1",
        "name": name,
        "private_key": key.to_hex(),
        "public_key": key.public_key().hex(),
        "key_hash": cosignature_key_hash(name, key.public_key()).hex(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise ConfigurationError(f"{path} exists; refusing to replace the witness key") from e
    with os.fdopen(fd, "wb") as f:
        f.write((json.dumps(document, indent=2) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())
    return key


def load_witness_key(path: Path) -> tuple[str, Sm2PrivateKey]:
    """The witness's (name, private key) from ``path``; a clear error if missing or damaged."""
    try:
        document = json.loads(path.read_text())
        if document.get("type") != "trustledger-witness-key":
            raise ValueError("not a witness key file")
        name = str(document["name"])
        key = Sm2PrivateKey(bytes.fromhex(document["private_key"]))
    except FileNotFoundError as e:
        raise ConfigurationError(f"no witness key at {path}; run `trustledger witness init` first") from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigurationError(f"{path} is not a valid witness key file: {e}") from e
    if key.public_key().hex() != document.get("public_key"):
        raise ConfigurationError(f"{path}: the public key does not match the private key")
    return name, key
