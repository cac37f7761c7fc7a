"""Building a :class:`~ledger.log.Ledger` from settings: the one place that reads key files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger.core.crypto import Sm2PublicKey
from ledger.keys import create_log_key, create_secret, load_log_key, load_secret
from ledger.log import Ledger
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


def init_deployment(settings: Settings) -> InitResult:
    """Create the key files (if missing) and the database schema; idempotent."""
    created_key = not settings.log_key_path.exists()
    key = create_log_key(settings.log_key_path) if created_key else load_log_key(settings.log_key_path)
    created_secret = settings.subject_secret is None and not settings.subject_secret_path.exists()
    if created_secret:
        create_secret(settings.subject_secret_path)
    ledger = open_ledger(settings, create_schema=True)
    ledger.store.engine.dispose()
    created_chain = False
    if settings.chain_backend is None and not settings.chain_config_path.exists():
        # Zero-setup default: anchor on the embedded chain (the devnet script and consortium
        # deployments write their own chain.json instead).
        from ledger.chain.connect import init_embedded_chain  # web3 is only loaded when needed

        init_embedded_chain(settings.data_dir, member_name=settings.log_origin).save(
            settings.chain_config_path
        )
        created_chain = True
    return InitResult(
        key.public_key(), created_key, created_secret, settings.resolved_database_url, created_chain
    )


def open_ledger(settings: Settings, *, create_schema: bool = False) -> Ledger:
    """Open the configured log; with ``create_schema`` also create its tables."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = load_log_key(settings.log_key_path)
    if settings.subject_secret is not None:
        secret = settings.subject_secret.get_secret_value().encode()
    else:
        secret = load_secret(settings.subject_secret_path)
    store = LogStore(make_engine(settings.resolved_database_url))
    ledger = Ledger(
        store,
        origin=settings.log_origin,
        hash_alg=settings.hash_alg,
        signing_key=key,
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
    return Anchorer(ledger, lambda: connect(config), policy)
