"""The anchoring account's key, kept in an encrypted Web3 Secret Storage (v3) keystore file.

Standard format (scrypt + AES-128-CTR, as geth, Besu and FISCO BCOS tooling read it), so a member
organisation can generate the key with its own tools. The password comes from a file: one
trustledger creates is a sealed key file (purpose ``chain-key-password``, see
:mod:`ledger.keyfiles`), so the keystore and its password side by side in the data dir give nothing
without the KEK; a plain password file outside the data dir (mounted from a secret store) is read
as it is. The key is decrypted into memory only.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.errors import ConfigurationError
from ledger.keyfiles import KeyFiles, KeyPurpose, write_private_file


def create_keystore(path: Path, password_file: Path, files: KeyFiles) -> LocalAccount:
    """Generate an anchoring key; write it encrypted to ``path`` and a random password, sealed
    under the KEK, to ``password_file`` (both mode 0600; refuses to overwrite either)."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to overwrite an anchoring key")
    if password_file.exists():
        raise ConfigurationError(f"{password_file} exists; refusing to overwrite a keystore password")
    password = secrets.token_urlsafe(32)
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, password)
    files.create(password_file, KeyPurpose.CHAIN_KEY_PASSWORD, password.encode() + b"\n")
    write_private_file(path, (json.dumps(keystore, indent=2) + "\n").encode())
    return account


def load_keystore(path: Path, password_file: Path, files: KeyFiles) -> LocalAccount:
    """Decrypt the anchoring key; a wrong password or a damaged file is a ConfigurationError."""
    try:
        password = files.read(password_file, KeyPurpose.CHAIN_KEY_PASSWORD).decode().strip()
        keystore = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"cannot read the anchoring keystore: {e}") from e
    try:
        key = Account.decrypt(keystore, password)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationError(f"cannot decrypt {path}: {e}") from e
    account: LocalAccount = Account.from_key(key)
    return account
