"""The witness's key file: its signed-note name and SM2 private key (``witness-key.json``).

Like the log's key, it is sealed under the witness deployment's key-encryption key
(:mod:`ledger.keyfiles`, purpose ``witness-key``); the file is created with mode 0600 and never
overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from ledger.core.cosignature import cosignature_key_hash
from ledger.core.crypto import Sm2PrivateKey
from ledger.errors import ConfigurationError, InvalidRequest
from ledger.keyfiles import KeyFiles, KeyPurpose

KEY_FILE = "witness-key.json"


def create_witness_key(path: Path, name: str, files: KeyFiles) -> Sm2PrivateKey:
    """Generate the witness key for ``name`` into ``path``, sealed (refuses to replace one)."""
    if not name or len(name) > 200 or any(c.isspace() for c in name) or "+" in name:
        raise InvalidRequest("a witness name is 1-200 characters, without spaces or '+'")
    key = Sm2PrivateKey.generate()
    public = key.public_key().hex()
    document = {
        "type": "trustledger-witness-key",
        "alg": "sm2-sm3-cosignature/v1",
        "name": name,
        "private_key": key.to_hex(),
        "public_key": public,
        "key_hash": cosignature_key_hash(name, key.public_key()).hex(),
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to replace the witness key")
    files.create(
        path, KeyPurpose.WITNESS_KEY, (json.dumps(document, indent=2) + "\n").encode(), public_key=public
    )
    return key


def load_witness_key(path: Path, files: KeyFiles) -> tuple[str, Sm2PrivateKey]:
    """The witness's (name, private key) from ``path``; a clear error if missing or damaged."""
    try:
        document = json.loads(files.read(path, KeyPurpose.WITNESS_KEY))
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
