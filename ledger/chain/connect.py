"""Opening the configured chain as a registry client, and creating the embedded chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from ledger.chain.config import ChainBackend, ChainConfig
from ledger.chain.embedded import EMBEDDED_CHAIN_ID, EmbeddedChain, open_embedded_chain
from ledger.chain.keystore import create_keystore, load_keystore
from ledger.chain.registry import Endpoint, RegistryClient, deploy_registry
from ledger.errors import ConfigurationError
from ledger.keyfiles import KeyFiles


@dataclass
class ChainConnection:
    """An open registry client and what must be closed with it."""

    client: RegistryClient
    close: Callable[[], None]


def load_anchoring_key(config: ChainConfig, key_files: KeyFiles) -> LocalAccount | None:
    """The decrypted anchoring key, or None when the configuration names no keystore (read-only)."""
    if config.keystore_path is None:
        return None
    if config.keystore_password_file is None:
        raise ConfigurationError("keystore_path needs keystore_password_file")
    return load_keystore(config.keystore_path, config.keystore_password_file, key_files)


def connect(
    config: ChainConfig, *, with_key: bool = True, key_files: KeyFiles | None = None
) -> ChainConnection:
    """Open the configured chain: the embedded EVM (owned by this process) or the member endpoints.

    ``key_files`` opens the keystore's sealed password file (without it: a plain one only).
    """
    account = load_anchoring_key(config, key_files or KeyFiles(None)) if with_key else None
    chain: EmbeddedChain | None = None
    if config.backend is ChainBackend.EMBEDDED:
        if config.embedded_db_path is None:
            raise ConfigurationError("the embedded chain needs embedded_db_path")
        chain = open_embedded_chain(config.embedded_db_path)
        endpoints = [Endpoint("embedded", chain.w3)]
    else:
        endpoints = [Endpoint.http(url, config.timeout_s) for url in config.rpc_urls]
    client = RegistryClient(
        endpoints,
        registry_address=config.registry_address,
        chain_id=config.chain_id,
        account=account,
        priority_fee_wei=config.priority_fee_wei,
    )
    return ChainConnection(client, chain.close if chain is not None else lambda: None)


def init_embedded_chain(data_dir: Path, *, member_name: str, key_files: KeyFiles) -> ChainConfig:
    """Create the embedded chain: an encrypted anchoring key, the registry, this deployment as member."""
    keystore, password = data_dir / "chain-key.json", data_dir / "chain-key.password"
    db_path = data_dir / "embedded-chain.db"
    account = create_keystore(keystore, password, key_files)
    chain = open_embedded_chain(db_path, fund=[account.address])
    try:
        endpoint = Endpoint("embedded", chain.w3)
        address = deploy_registry(endpoint, account, chain_id=EMBEDDED_CHAIN_ID)
        client = RegistryClient(
            [endpoint], registry_address=address, chain_id=EMBEDDED_CHAIN_ID, account=account
        )
        client.transact("addMember", account.address, member_name)
    finally:
        chain.close()
    return ChainConfig(
        backend=ChainBackend.EMBEDDED,
        chain_id=EMBEDDED_CHAIN_ID,
        registry_address=address,
        keystore_path=Path(keystore.name),
        keystore_password_file=Path(password.name),
        embedded_db_path=Path(db_path.name),
    )
