"""Building a :class:`~ledger.log.Ledger` from settings: the one place that reads key files."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.core.crypto import Sm2PublicKey
from ledger.keys import create_log_key, create_secret, load_log_key, load_secret
from ledger.log import Ledger
from ledger.settings import Settings
from ledger.store import LogStore, make_engine


@dataclass(frozen=True)
class InitResult:
    """What ``trustledger init`` created or found."""

    public_key: Sm2PublicKey
    created_key: bool
    created_secret: bool
    database_url: str


def init_deployment(settings: Settings) -> InitResult:
    """Create the key files (if missing) and the database schema; idempotent."""
    created_key = not settings.log_key_path.exists()
    key = create_log_key(settings.log_key_path) if created_key else load_log_key(settings.log_key_path)
    created_secret = settings.subject_secret is None and not settings.subject_secret_path.exists()
    if created_secret:
        create_secret(settings.subject_secret_path)
    ledger = open_ledger(settings, create_schema=True)
    ledger.store.engine.dispose()
    return InitResult(key.public_key(), created_key, created_secret, settings.resolved_database_url)


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
