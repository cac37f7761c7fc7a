"""The log's signing keys over time: the key ring a running log signs with, and key rotation.

The trust policy (``policy.json``, :mod:`ledger.core.policy`) says which log key may sign a
checkpoint of which tree size. Rotation (:func:`rotate_log_key`, ``trustledger keys rotate``):

1. takes the checkpoint issuer's lock, so no checkpoint is signed meanwhile, and reads the tree
   size ``S``;
2. keeps the old key, sealed as a *retired* key in ``retired-log-keys/`` (its public key stays in
   the policy, so old checkpoints and receipts keep verifying);
3. writes the new key, sealed, to ``log-key.json.next``;
4. publishes the next policy revision: the old key signs sizes up to ``S``, the new one from ``S``
   on (``TrustPolicy.with_rotated_log_key``);
5. renames ``log-key.json.next`` over ``log-key.json``.

A crash after step 4 is finished by running the command again (the pending key is the one the
policy names); a crash before it leaves the old key in force and the pending file is discarded.

A running service notices the change: :class:`LogKeyRing` re-reads the key file and the policy
when their files change, and never signs a checkpoint with a key the policy does not allow for
its size (it raises instead, and the checkpoint job retries). Every host that signs checkpoints
must see the same key files; on several hosts, stop the signers while rotating.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.core.crypto import Sm2PrivateKey, Sm2PublicKey
from ledger.core.policy import PolicyChain, TrustPolicy, new_policy
from ledger.errors import ConfigurationError, Conflict
from ledger.keyfiles import KeyFiles, KeyPurpose, fsync_dir
from ledger.keys import load_log_key, log_key_document
from ledger.log import Ledger
from ledger.policy_file import read_policy_if_present, write_policy
from ledger.settings import Settings

_logger = logging.getLogger(__name__)
RETIRED_DIR = "retired-log-keys"
_PENDING_SUFFIX = ".next"


def _stamp(path: Path) -> bytes | None:
    # The bytes themselves, not stat(): a rewrite within one coarse mtime tick, same size and inode,
    # must still be seen. Both files are around a kilobyte.
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class LogKeyRing:
    """The log key that signs new checkpoints, every log key the policy knows, reloaded on change.

    Implements :class:`ledger.signing.LogSigningKeys` for a deployment's files: the sealed
    ``log-key.json`` and the trust policy. A file change (``trustledger keys rotate``) is picked up
    at the next call, at the cost of reading the two small files (decrypting only when they changed).
    """

    def __init__(self, key_path: Path, policy_path: Path, files: KeyFiles) -> None:
        self._key_path = key_path
        self._policy_path = policy_path
        self._files = files
        self._stamps: tuple[bytes | None, bytes | None] | None = None
        self._key: Sm2PrivateKey | None = None
        self._policy: TrustPolicy | None = None
        self._reload_if_changed()

    @classmethod
    def for_settings(cls, settings: Settings, files: KeyFiles) -> LogKeyRing:
        """The key ring of the deployment ``settings`` describe."""
        return cls(settings.log_key_path, settings.policy_path, files)

    def _reload_if_changed(self) -> None:
        stamps = (_stamp(self._key_path), _stamp(self._policy_path))
        if stamps == self._stamps and self._key is not None:
            return
        key = load_log_key(self._key_path, self._files)
        policy = read_policy_if_present(self._policy_path)
        if self._key is not None and key.public_key() != self._key.public_key():
            _logger.warning(
                "log key changed on disk; signing with the new key",
                extra={"old": self._key.public_key().key_id(), "new": key.public_key().key_id()},
            )
        self._key, self._policy, self._stamps = key, policy, stamps

    def current(self) -> Sm2PrivateKey:
        """The key new checkpoints are signed with."""
        self._reload_if_changed()
        if self._key is None:  # pragma: no cover - set by _reload_if_changed or it raised
            raise ConfigurationError("no log key loaded")
        return self._key

    def policy(self) -> TrustPolicy | None:
        """The trust policy as last read (None: the deployment has none)."""
        self._reload_if_changed()
        return self._policy

    def signing_key(self, tree_size: int) -> Sm2PrivateKey:
        """The key to sign a checkpoint of ``tree_size``; refuses one the policy does not allow."""
        key = self.current()
        policy = self._policy
        if policy is not None:
            allowed = [k.key_id for k in policy.log_keys_for(tree_size)]
            if key.public_key().key_id() not in allowed:
                raise ConfigurationError(
                    f"the log key {key.public_key().key_id()} may not sign a checkpoint of size {tree_size} "
                    f"under trust policy serial {policy.serial} (allowed: {', '.join(allowed) or 'none'}); "
                    "was the key rotated without this service seeing the new key file?"
                )
        return key

    def public_keys(self) -> Sequence[Sm2PublicKey]:
        """Every log key that may have signed a stored checkpoint: the current one first."""
        current = self.current().public_key()
        keys = [current]
        if self._policy is not None:
            keys.extend(k.key() for k in self._policy.log.keys if k.public_key != current.hex())
        return keys


@dataclass(frozen=True)
class RotationResult:
    """What :func:`rotate_log_key` did."""

    old_key: Sm2PublicKey
    new_key: Sm2PublicKey
    at_size: int
    policy: TrustPolicy
    retired_path: Path
    created_policy: bool


def retired_key_path(settings: Settings, key: Sm2PublicKey) -> Path:
    """Where a retired log key is kept (sealed, purpose ``retired-log-key``)."""
    return settings.data_dir / RETIRED_DIR / f"log-key-{key.key_id()}.json"


def initial_policy(settings: Settings, key: Sm2PublicKey) -> TrustPolicy:
    """A first policy for this deployment (serial 1) when it has none yet: its log, key and chain."""
    chain = None
    try:
        config = settings.chain_config()
    except ConfigurationError:
        config = None
    if config is not None:
        chain = PolicyChain(
            chain_id=config.chain_id,
            registries=(config.registry_address,),
            rpc_urls=config.rpc_urls,
            confirmations=config.confirmations,
        )
    return new_policy(origin=settings.log_origin, hash_alg=settings.hash_alg, log_key=key, chain=chain)


def _keep_retired(path: Path, files: KeyFiles, key: Sm2PrivateKey) -> None:
    if path.exists():  # an earlier, interrupted rotation kept it already
        if load_log_key(path, files, KeyPurpose.RETIRED_LOG_KEY) != key:
            raise ConfigurationError(f"{path} holds another key than the one being retired")
        return
    path.parent.mkdir(mode=0o700, exist_ok=True)
    files.create(path, KeyPurpose.RETIRED_LOG_KEY, log_key_document(key), public_key=key.public_key().hex())


def finish_pending_rotation(settings: Settings, files: KeyFiles) -> bool:
    """Complete or discard a rotation interrupted by a crash; True if one was completed."""
    pending = settings.log_key_path.with_name(settings.log_key_path.name + _PENDING_SUFFIX)
    if not pending.exists():
        return False
    key = load_log_key(pending, files)
    policy = read_policy_if_present(settings.policy_path)
    entry = policy.log_key_entry(key.public_key()) if policy is not None else None
    if entry is not None and entry.until_size is None and not entry.revoked:
        os.replace(pending, settings.log_key_path)
        fsync_dir(pending.parent)
        _logger.warning("finished an interrupted log key rotation", extra={"key": key.public_key().key_id()})
        return True
    pending.unlink()  # the policy never named it: the old key is still the log's key
    return False


def rotate_log_key(settings: Settings, files: KeyFiles, ledger: Ledger) -> RotationResult:
    """Generate a new log key and make it the signer of every checkpoint from the current size on.

    ``ledger`` is the deployment's open log (for its lock and tree size). Raises
    :class:`~ledger.errors.Conflict` if a checkpoint is being issued at this moment.
    """
    finish_pending_rotation(settings, files)
    with ledger.store.checkpoint_lock() as conn:
        if conn is None:
            raise Conflict("another process is issuing a checkpoint; retry", reason="checkpoint-busy")
        at_size = int(ledger.store.state().size)
        old = load_log_key(settings.log_key_path, files)
        policy = read_policy_if_present(settings.policy_path)
        created_policy = policy is None
        if policy is None:
            policy = initial_policy(settings, old.public_key())
        if policy.log.origin != settings.log_origin or policy.log.hash_alg != settings.hash_alg:
            raise ConfigurationError(
                f"{settings.policy_path} describes log {policy.log.origin} ({policy.log.hash_alg}), "
                f"not this one ({settings.log_origin}, {settings.hash_alg})"
            )
        entry = policy.log_key_entry(old.public_key())
        if entry is None or entry.revoked or entry.until_size is not None:
            raise ConfigurationError(
                f"the trust policy does not name the log key {old.public_key().key_id()} as the key in use; "
                "fix policy.json before rotating"
            )
        new = Sm2PrivateKey.generate()
        rotated = policy.with_rotated_log_key(new.public_key(), at_size=at_size)
        retired = retired_key_path(settings, old.public_key())
        _keep_retired(retired, files, old)
        pending = settings.log_key_path.with_name(settings.log_key_path.name + _PENDING_SUFFIX)
        create_log_key_at(pending, files, new)
        write_policy(settings.policy_path, rotated)
        os.replace(pending, settings.log_key_path)
        fsync_dir(settings.log_key_path.parent)
    _logger.warning(
        "log key rotated",
        extra={"old": old.public_key().key_id(), "new": new.public_key().key_id(), "at_size": at_size},
    )
    return RotationResult(old.public_key(), new.public_key(), at_size, rotated, retired, created_policy)


def create_log_key_at(path: Path, files: KeyFiles, key: Sm2PrivateKey) -> None:
    """Seal an existing log key into a new file ``path``."""
    files.create(path, KeyPurpose.LOG_KEY, log_key_document(key), public_key=key.public_key().hex())


__all__ = [
    "LogKeyRing",
    "RotationResult",
    "create_log_key_at",
    "finish_pending_rotation",
    "initial_policy",
    "retired_key_path",
    "rotate_log_key",
]
