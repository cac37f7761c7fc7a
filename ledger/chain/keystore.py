"""The anchoring account's key, kept in an encrypted Web3 Secret Storage (v3) keystore file.

Standard format (scrypt + AES-128-CTR, as geth, Besu and FISCO BCOS tooling read it), so a member
organisation can generate the key with its own tools. The password comes from a file (mounted from
a secret store in production); the key is decrypted into memory only.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.errors import ConfigurationError


def create_keystore(path: Path, password_file: Path) -> LocalAccount:
    """Generate an anchoring key; write it encrypted to ``path``, a random password to ``password_file``."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to overwrite an anchoring key")
    password = secrets.token_urlsafe(32)
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, password)
    for target, content in ((password_file, password), (path, json.dumps(keystore, indent=2))):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content + "\n")
    return account


def load_keystore(path: Path, password_file: Path) -> LocalAccount:
    """Decrypt the anchoring key; a wrong password or a damaged file is a ConfigurationError."""
    try:
        password = password_file.read_text().strip()
        keystore = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"cannot read the anchoring keystore: {e}") from e
    try:
        key = Account.decrypt(keystore, password)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationError(f"cannot decrypt {path}: {e}") from e
    account: LocalAccount = Account.from_key(key)
    return account
