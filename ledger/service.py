"""Building a :class:`~ledger.log.Ledger` from settings: the one place that reads key files.

It also keeps the deployment's trust policy (``policy.json``, :mod:`ledger.core.policy`): ``init``
writes it from the log key and the chain, and the anchorer refuses to run on a chain or registry
the policy does not name, so what the service does and what verifiers pin are one thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.chain.config import ChainConfig
from ledger.core.crypto import HashAlgorithm, Sm2PublicKey
from ledger.core.policy import PolicyChain, TrustPolicy, new_policy
from ledger.errors import ConfigurationError
from ledger.keyfiles import KeyFiles, KeyPurpose
from ledger.keys import create_log_key, create_secret, load_log_key, load_secret, parse_log_key
from ledger.log import Ledger
from ledger.policy_file import read_policy, write_policy
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
    created_policy: bool = False
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
    ledger.close()
    created_chain = False
    if settings.chain_backend is None and not settings.chain_config_path.exists():
        # Zero-setup default: anchor on the embedded chain (the devnet script and consortium
        # deployments write their own chain.json instead).
        from ledger.chain.connect import init_embedded_chain  # web3 is only loaded when needed

        init_embedded_chain(settings.data_dir, member_name=settings.log_origin, key_files=files).save(
            settings.chain_config_path
        )
        created_chain = True
    created_policy = not settings.policy_path.exists()
    if created_policy:
        policy = new_policy(
            origin=settings.log_origin,
            hash_alg=settings.hash_alg,
            log_key=key.public_key(),
            chain=policy_chain(settings.chain_config()),
        )
        write_policy(settings.policy_path, policy)
    return InitResult(
        key.public_key(),
        created_key,
        created_secret,
        settings.resolved_database_url,
        created_chain,
        created_policy,
        sealed,
    )


def policy_chain(config: ChainConfig | None) -> PolicyChain | None:
    """The policy's ``chain`` section for a chain configuration (the embedded chain has no URL)."""
    if config is None:
        return None
    return PolicyChain(
        chain_id=config.chain_id,
        registries=(config.registry_address,),
        rpc_urls=config.rpc_urls,
        confirmations=config.confirmations,
    )


def record_chain_in_policy(settings: Settings, config: ChainConfig) -> TrustPolicy | None:
    """After a registry deployment: the next policy revision naming it (None: no policy yet).

    On the policy's chain the new registry is added (receipts anchored in the earlier ones keep
    verifying); on another chain the chain section is replaced. The file is rewritten only if
    something changed.
    """
    if not settings.policy_path.exists():
        return None  # init writes it, from this chain
    policy = read_policy(settings.policy_path)
    chain = policy.chain
    updated: PolicyChain | None
    if chain is not None and chain.chain_id == config.chain_id:
        if chain.has_registry(config.registry_address):
            return policy
        registries = (*chain.registries, config.registry_address)
        rpc_urls = tuple(dict.fromkeys((*chain.rpc_urls, *config.rpc_urls)))
        updated = chain.model_copy(update={"registries": registries, "rpc_urls": rpc_urls})
    else:
        updated = policy_chain(config)
    revised = policy.model_copy(update={"serial": policy.serial + 1, "chain": updated})
    revised = TrustPolicy.from_json(revised.model_dump_json())  # validated as a whole
    write_policy(settings.policy_path, revised)
    return revised


def check_policy(
    policy: TrustPolicy,
    *,
    origin: str,
    hash_alg: HashAlgorithm,
    public_key: Sm2PublicKey,
    tree_size: int,
    config: ChainConfig | None,
) -> None:
    """Refuse (:class:`ConfigurationError`) a deployment that does not do what its policy says.

    The log's origin, hash and signing key (valid at the log's ``tree_size``), and the chain id and
    registry it anchors to, must be the policy's: otherwise the service would issue receipts that
    fail every pinned verification.
    """
    where = "the trust policy (policy.json)"
    if policy.log.origin != origin or policy.log.hash_alg != hash_alg:
        raise ConfigurationError(
            f"{where} is for log {policy.log.origin!r} ({policy.log.hash_alg.value}); "
            f"this deployment is {origin!r} ({hash_alg.value})"
        )
    entry = policy.log_key_entry(public_key)
    if entry is None or entry.revoked or not entry.covers(tree_size):
        state = "is not in" if entry is None else f"is revoked or not valid at size {tree_size} in"
        raise ConfigurationError(
            f"the log signing key {public_key.key_id()} {state} {where}; rotate keys with "
            "`trustledger keys rotate` so the policy names the key in use"
        )
    if config is None:
        return
    if policy.chain is None:
        raise ConfigurationError(
            f"{where} names no chain, but chain.json anchors to registry {config.registry_address} "
            f"on chain {config.chain_id}"
        )
    if config.chain_id != policy.chain.chain_id:
        raise ConfigurationError(
            f"chain.json is chain {config.chain_id}; {where} pins chain {policy.chain.chain_id}"
        )
    if not policy.chain.has_registry(config.registry_address):
        raise ConfigurationError(
            f"chain.json anchors to registry {config.registry_address}, which {where} does not name "
            f"({', '.join(policy.chain.registries)}); publish a policy revision naming it first"
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
    """The anchoring pipeline for ``ledger`` on the configured chain (None: anchoring is off).

    The chain must be the one the deployment's trust policy names (:func:`check_policy`); anchors
    stay final only once as deep as the policy asks verifiers to require.
    """
    from ledger.anchoring import Anchorer, AnchorPolicy  # web3 is only loaded when anchoring is on
    from ledger.chain.connect import connect

    config = settings.chain_config()
    if config is None:
        return None
    trust = read_policy(settings.policy_path)
    check_policy(
        trust,
        origin=ledger.origin,
        hash_alg=ledger.hash_alg,
        public_key=ledger.public_key,
        tree_size=ledger.current_size(),
        config=config,
    )
    pinned = trust.chain
    policy = AnchorPolicy(
        interval_s=settings.anchor_interval_s,
        min_entries=settings.anchor_min_entries,
        confirmations=max(config.confirmations, pinned.confirmations if pinned else 0),
        tx_timeout_s=config.tx_timeout_s,
        reorg_watch_blocks=config.reorg_watch_blocks,
    )
    files = KeyFiles.for_settings(settings)
    return Anchorer(ledger, lambda: connect(config, key_files=files), policy)
