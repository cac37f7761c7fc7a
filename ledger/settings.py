"""Service settings: one ``BaseSettings`` class read from ``TRUSTLEDGER_*`` environment variables.

Nothing is read at import; the CLI and the app factory build a :class:`Settings` and inject it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.chain.config import ChainBackend, ChainConfig
from ledger.core.crypto import HashAlgorithm
from ledger.errors import ConfigurationError

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "dev", "development", "test"}


class Environment(StrEnum):
    """Deployment environment; production refuses development shortcuts."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All trustledger settings."""

    model_config = SettingsConfigDict(env_prefix="TRUSTLEDGER_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path("var"), description="key files and the SQLite database")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    log_origin: str = Field(default="trustledger.local/dev", description="C2SP checkpoint origin line")
    hash_alg: HashAlgorithm = HashAlgorithm.SM3
    sequencer_batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    sequencer_max_age_s: float = Field(default=0.2, gt=0, le=60)
    checkpoint_interval_s: float = Field(default=2.0, gt=0, le=3600)
    max_pending: int = Field(default=2_000_000, ge=1, description="back-pressure threshold")
    max_bulk_records: int = Field(default=10_000, ge=1, le=100_000)
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_json_body_bytes: int = Field(default=32 * 1024**2, ge=1024)
    max_json_depth: int = Field(
        default=64, ge=4, le=512, description="deepest JSON nesting accepted, checked before parsing"
    )
    max_unauthenticated_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="most body read from a caller not (yet) authenticated"
    )
    # Rate limits (token buckets, per worker process): 429 + Retry-After when a bucket is empty.
    rate_limit_enabled: bool = True
    rate_limit_key_per_s: float = Field(default=2000.0, gt=0, description="requests per API key")
    rate_limit_key_burst: int = Field(default=4000, ge=1)
    rate_limit_address_per_s: float = Field(default=100.0, gt=0, description="…per address, no API key")
    rate_limit_address_burst: int = Field(default=500, ge=1)
    rate_limit_auth_failures_per_min: float = Field(
        default=30.0, gt=0, description="failed authentications per address"
    )
    rate_limit_auth_failures_burst: int = Field(default=20, ge=1)
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="proxies whose X-Forwarded-For/-Proto are believed (comma-separated IPs); "
        "default none: the peer address is the caller's, so no caller picks its own rate-limit address",
    )
    subject_secret: SecretStr | None = Field(
        default=None, description="HMAC-SM3 key for subject references; default: key file in data_dir"
    )
    kek: SecretStr | None = Field(
        default=None, description="key-encryption key (hex, 128-512 bits) sealing the key files at rest"
    )
    kek_file: Path | None = Field(
        default=None, description="file holding the KEK (hex); never inside data_dir"
    )
    run_scheduler: bool = Field(default=True, description="sequencer, checkpoint and anchoring jobs here")
    anchor_interval_s: float = Field(default=10.0, gt=0, le=86_400, description="anchor at least this often")
    anchor_min_entries: int = Field(default=10_000, ge=1, description="…or as soon as this many are new")
    anchor_tick_s: float = Field(default=1.0, gt=0, le=60, description="how often the anchoring job runs")
    # Overrides of single fields of chain.json (the chain's connection settings).
    chain_backend: ChainBackend | None = None
    chain_id: int | None = None
    chain_registry_address: str | None = None
    chain_rpc_urls: str | None = Field(default=None, description="comma-separated JSON-RPC URLs")
    chain_keystore_path: Path | None = None
    chain_keystore_password_file: Path | None = None
    chain_confirmations: int | None = None
    chain_timeout_s: float | None = None
    chain_tx_timeout_s: float | None = None
    chain_priority_fee_wei: int | None = Field(
        default=None, ge=0, description="EIP-1559 tip; 0 on free-gas chains"
    )
    timezone: str = Field(default="Asia/Shanghai", description="the local day for credit dates and jobs")
    credit_jobs_at: str = Field(default="00:10", pattern=r"^[0-2][0-9]:[0-5][0-9]$", description="daily jobs")
    oidc_issuer: str | None = Field(default=None, description="the identity provider citizens sign in with")
    oidc_audience: str = "trustledger-api"
    oidc_identifier_claim: str = Field(default="id_number", description="claim with the ID number or code")
    oidc_jwks_uri: str | None = Field(default=None, description="default: from the issuer's discovery")

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        self._check_kek()
        if self.environment is Environment.PRODUCTION:
            if self.subject_secret is not None and self.subject_secret.get_secret_value() in _PLACEHOLDERS:
                raise ValueError("subject_secret is a placeholder; set a real secret in production")
            if self.resolved_database_url.startswith("sqlite") and "trustledger.local" in self.log_origin:
                raise ValueError("production needs a real log origin")
        return self

    def _check_kek(self) -> None:
        """The KEK is set at most once, is no placeholder, lives outside the data dir, and is
        required outside development (where a default file beside the data dir stands in)."""
        from ledger.keyfiles import parse_kek  # the KEK's one definition of a well-formed value

        if self.kek is not None and self.kek_file is not None:
            raise ValueError("set TRUSTLEDGER_KEK or TRUSTLEDGER_KEK_FILE, not both")
        if self.kek is not None:
            if self.kek.get_secret_value().strip().lower() in _PLACEHOLDERS:
                raise ValueError("kek is a placeholder; generate one with `openssl rand -hex 32`")
            try:
                parse_kek(self.kek.get_secret_value(), where="kek")
            except ConfigurationError as e:
                raise ValueError(e.message) from e
        if self.kek_file is not None:
            data_dir = self.data_dir.resolve()
            if self.kek_file.resolve().is_relative_to(data_dir):
                raise ValueError(
                    f"kek_file {self.kek_file} is inside the data dir {self.data_dir}; keep the KEK "
                    "elsewhere, so that a copy of the data dir holds no usable key"
                )
        if self.environment is Environment.PRODUCTION and self.kek is None and self.kek_file is None:
            raise ValueError(
                "production needs a key-encryption key: TRUSTLEDGER_KEK or TRUSTLEDGER_KEK_FILE "
                "(a file outside the data dir)"
            )

    @property
    def development_kek_path(self) -> Path:
        """Development's KEK when none is configured: ``<data dir>.kek`` beside the data dir.

        Beside, not inside: a copy of the data dir alone carries no usable key; and not under the
        user's home keyed by a path hash, which would break when the directory moves and leave a
        KEK behind for every throwaway data dir.
        """
        data_dir = self.data_dir.resolve()
        if data_dir.parent == data_dir:
            raise ConfigurationError("the data dir is the file system root; set TRUSTLEDGER_KEK_FILE")
        return data_dir.parent / f"{data_dir.name}.kek"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'trustledger.db'}"

    @property
    def log_key_path(self) -> Path:
        """The log's SM2 signing key file (created by ``trustledger init``)."""
        return self.data_dir / "log-key.json"

    @property
    def subject_secret_path(self) -> Path:
        """The per-deployment HMAC-SM3 secret file for subject references."""
        return self.data_dir / "subject-secret.key"

    @property
    def credit_key_path(self) -> Path:
        """The master key (SM4) that wraps every subject's personal-data key."""
        return self.data_dir / "credit-master.key"

    @property
    def policy_path(self) -> Path:
        """The trust policy this deployment publishes and follows (``policy.json``)."""
        return self.data_dir / "policy.json"

    @property
    def chain_config_path(self) -> Path:
        """The chain's connection settings (``chain.json``)."""
        return self.data_dir / "chain.json"

    def chain_config(self) -> ChainConfig | None:
        """The anchoring chain from ``chain.json`` with ``TRUSTLEDGER_CHAIN_*`` overrides (None: no chain)."""
        if self.chain_backend is ChainBackend.NONE:
            return None
        overrides: dict[str, object] = {}
        for name in ("backend", "registry_address", "keystore_path", "keystore_password_file"):
            value = getattr(self, f"chain_{name}")
            if value is not None:
                overrides[name] = str(value)
        for name in ("id", "confirmations", "timeout_s", "tx_timeout_s", "priority_fee_wei"):
            value = getattr(self, f"chain_{name}")
            if value is not None:
                overrides["chain_id" if name == "id" else name] = value
        if self.chain_rpc_urls is not None:
            overrides["rpc_urls"] = [u.strip() for u in self.chain_rpc_urls.split(",") if u.strip()]
        config = ChainConfig.load(self.chain_config_path, overrides)
        return None if config.backend is ChainBackend.NONE else config

    @classmethod
    def embedded(cls, data_dir: Path | str = "var") -> Settings:
        """The zero-setup defaults: a SQLite file and keys under ``data_dir``."""
        return cls(data_dir=Path(data_dir))
