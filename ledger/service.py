"""Building a :class:`~ledger.log.Ledger` from settings: the one place that reads key files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.core.crypto import Sm2PublicKey
from ledger.errors import ConfigurationError
from ledger.keyfiles import KeyFiles, KeyPurpose
from ledger.keys import create_log_key, create_secret, load_log_key, load_secret, parse_log_key
from ledger.log import Ledger
from ledger.rotation import LogKeyRing, finish_pending_rotation
from ledger.settings import Settings
from ledger.store import LogStore, make_engine

if TYPE_CHECKING:
    from ledger.anchoring import Anchorer


@dataclass(frozen=True)
class InitResult:
    """What ``trustledger init`` created or found."""

    public_key: Sm2PublicKey
    created_key: bool
    created_secret: bool
    database_url: str
    created_chain: bool
    sealed: tuple[Path, ...] = field(default=())  # plain-text key files of older versions, now sealed


def seal_plain_key_files(settings: Settings, files: KeyFiles) -> tuple[Path, ...]:
    """Seal, in place and atomically, every plain-text key file an older version left in the data dir.

    The log key, the subject and credit secrets, and the anchoring keystore's password file when
    ``chain.json`` puts it in the data dir (one kept elsewhere is the operator's managed secret).
    """
    sealed: list[Path] = []
    log_key = settings.log_key_path
    if log_key.exists() and not files.is_sealed(log_key):
        public = parse_log_key(log_key.read_bytes(), str(log_key)).public_key().hex()
        if files.migrate(log_key, KeyPurpose.LOG_KEY, public_key=public):
            sealed.append(log_key)
    secrets = [
        (settings.subject_secret_path, KeyPurpose.SUBJECT_SECRET),
        (settings.credit_key_path, KeyPurpose.CREDIT_MASTER),
    ]
    try:
        config = settings.chain_config() if settings.chain_config_path.exists() else None
    except ConfigurationError:
        config = None  # init reports an unreadable chain.json itself
    password = config.keystore_password_file if config is not None else None
    if password is not None and password.resolve().is_relative_to(settings.data_dir.resolve()):
        secrets.append((password, KeyPurpose.CHAIN_KEY_PASSWORD))
    for path, purpose in secrets:
        if files.migrate(path, purpose):
            sealed.append(path)
    return tuple(sealed)


def init_deployment(settings: Settings) -> InitResult:
    """Create the key files (if missing) and the database schema; idempotent.

    Key files are sealed under the deployment's KEK (created beside the data dir in development
    when none is configured); plain-text ones from older versions are sealed in place.
    """
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = KeyFiles.for_settings(settings, create_kek=True)
    sealed = seal_plain_key_files(settings, files)
    finish_pending_rotation(settings, files)
    created_key = not settings.log_key_path.exists()
    if created_key:
        key = create_log_key(settings.log_key_path, files)
    else:
        key = load_log_key(settings.log_key_path, files)
    created_secret = settings.subject_secret is None and not settings.subject_secret_path.exists()
    if created_secret:
        create_secret(settings.subject_secret_path, files, KeyPurpose.SUBJECT_SECRET)
    ledger = open_ledger(settings, create_schema=True)
    ledger.store.engine.dispose()
    created_chain = False
    if settings.chain_backend is None and not settings.chain_config_path.exists():
        # Zero-setup default: anchor on the embedded chain (the devnet script and consortium
        # deployments write their own chain.json instead).
        from ledger.chain.connect import init_embedded_chain  # web3 is only loaded when needed

        init_embedded_chain(settings.data_dir, member_name=settings.log_origin, key_files=files).save(
            settings.chain_config_path
        )
        created_chain = True
    return InitResult(
        key.public_key(), created_key, created_secret, settings.resolved_database_url, created_chain, sealed
    )


def open_ledger(settings: Settings, *, create_schema: bool = False) -> Ledger:
    """Open the configured log; with ``create_schema`` also create its tables."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = KeyFiles.for_settings(settings)
    keys = LogKeyRing.for_settings(settings, files)
    if settings.subject_secret is not None:
        secret = settings.subject_secret.get_secret_value().encode()
    else:
        secret = load_secret(settings.subject_secret_path, files, KeyPurpose.SUBJECT_SECRET)
    store = LogStore(make_engine(settings.resolved_database_url))
    ledger = Ledger(
        store,
        origin=settings.log_origin,
        hash_alg=settings.hash_alg,
        signing_key=keys,
        subject_secret=secret,
        max_pending=settings.max_pending,
    )
    if create_schema:
        ledger.create_schema()
    else:
        store.check_log(origin=settings.log_origin, hash_alg=settings.hash_alg.value)
    return ledger


def open_anchorer(ledger: Ledger, settings: Settings) -> Anchorer | None:
    """The anchoring pipeline for ``ledger`` on the configured chain (None: anchoring is off)."""
    from ledger.anchoring import Anchorer, AnchorPolicy  # web3 is only loaded when anchoring is on
    from ledger.chain.connect import connect

    config = settings.chain_config()
    if config is None:
        return None
    policy = AnchorPolicy(
        interval_s=settings.anchor_interval_s,
        min_entries=settings.anchor_min_entries,
        confirmations=config.confirmations,
        tx_timeout_s=config.tx_timeout_s,
        reorg_watch_blocks=config.reorg_watch_blocks,
    )
    files = KeyFiles.for_settings(settings)
    return Anchorer(ledger, lambda: connect(config, key_files=files), policy)
