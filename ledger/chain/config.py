"""Which chain trustledger anchors on, as one validated value.

The connection settings live in ``chain.json`` in the data directory (written by ``trustledger
init`` for the embedded chain, by ``chain-devnet/devnet start`` for the devnet node, or by hand
for a consortium); ``TRUSTLEDGER_CHAIN_*`` environment variables override single fields.
The anchoring key is never in this file: only the path of its encrypted keystore and of the file
holding the keystore's password.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.core.policy import EvmAddress, RpcUrl
from ledger.errors import ConfigurationError


class ChainBackend(StrEnum):
    """Where anchors go: the in-process EVM, member nodes' JSON-RPC endpoints, or nowhere."""

    EMBEDDED = "embedded"
    RPC = "rpc"
    NONE = "none"


class ChainConfig(BaseModel):
    """The anchoring chain's connection settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: ChainBackend = ChainBackend.EMBEDDED
    chain_id: int = Field(ge=1)
    registry_address: EvmAddress
    rpc_urls: tuple[RpcUrl, ...] = Field(default=(), description="member endpoints, preferred first")
    keystore_path: Path | None = Field(default=None, description="encrypted (Web3 v3) anchoring key")
    keystore_password_file: Path | None = None
    embedded_db_path: Path | None = Field(default=None, description="state of the embedded chain")
    confirmations: int = Field(default=0, ge=0, le=1000, description="0 for instant-finality chains")
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="per JSON-RPC request")
    tx_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="before a tx counts as dropped")
    priority_fee_wei: int | None = Field(default=None, ge=0, description="EIP-1559 tip; None: ask the node")
    reorg_watch_blocks: int = Field(default=64, ge=0, le=10_000)

    @classmethod
    def load(cls, path: Path, overrides: dict[str, object] | None = None) -> ChainConfig:
        """Read ``chain.json`` and apply ``overrides``; relative paths are relative to the file."""
        try:
            data = json.loads(path.read_text()) if path.exists() or not overrides else {}
        except FileNotFoundError as e:
            raise ConfigurationError(
                f"no chain configuration at {path}; run `trustledger init` or `chain-devnet/devnet start`"
            ) from e
        except (OSError, ValueError) as e:
            raise ConfigurationError(f"cannot read {path}: {e}") from e
        if not isinstance(data, dict):
            raise ConfigurationError(f"{path} is not a JSON object")
        data.update(overrides or {})
        for key in ("keystore_path", "keystore_password_file", "embedded_db_path"):
            if data.get(key):
                data[key] = str((path.parent / str(data[key])).resolve())
        try:
            config = cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigurationError(f"{path}: {where}: {first['msg']}") from e
        if config.backend is ChainBackend.RPC and not config.rpc_urls:
            raise ConfigurationError(f"{path}: the rpc backend needs at least one rpc_urls entry")
        return config

    def save(self, path: Path) -> None:
        """Write as ``chain.json`` (paths stored as given)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2) + "\n")
