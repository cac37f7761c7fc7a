"""The witness: its name and key, the logs it witnesses (trust policies by origin), its state.

:meth:`Witness.add_checkpoint` is C2SP tlog-witness ``add-checkpoint`` without HTTP: parse and
bound the request, refuse an unknown origin, verify the log's signature with the keys the policy
holds valid for that tree size, then — inside one locked transaction — check ``old`` against the
stored tree head, verify the consistency proof, cosign, and store the new tree head; the answer
leaves only after the commit. A log-signed checkpoint refused as inconsistent is kept as evidence.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence

from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.cosignature import cosign
from ledger.core.crypto import Sm2PrivateKey, Sm2PublicKey
from ledger.core.hashing import tree_hasher
from ledger.core.policy import TrustPolicy
from ledger.errors import ConfigurationError
from ledger.witness.errors import InconsistentCheckpoint, UnknownLog
from ledger.witness.protocol import advance, check_log_signature, parse_add_checkpoint
from ledger.witness.storage import WitnessStore

_logger = logging.getLogger(__name__)


def origin_hash(origin: str) -> str:
    """The monitoring path segment of a log: lowercase hex SHA-256 of its origin (C2SP tlog-witness)."""
    return hashlib.sha256(origin.encode()).hexdigest()


class Witness:
    """One witness: ``name`` and ``key`` cosign checkpoints of the logs in ``policies``."""

    def __init__(
        self,
        name: str,
        key: Sm2PrivateKey,
        policies: Sequence[TrustPolicy],
        store: WitnessStore,
        *,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self.name = name
        self._key = key
        self.public_key: Sm2PublicKey = key.public_key()
        self.store = store
        self._clock = clock
        self._policies: dict[str, TrustPolicy] = {}
        for policy in policies:
            if policy.log.origin in self._policies:
                raise ConfigurationError(f"two policies for the log {policy.log.origin!r}")
            self._policies[policy.log.origin] = policy
        self._by_hash = {origin_hash(o): o for o in self._policies}

    @property
    def origins(self) -> list[str]:
        """The logs this witness witnesses."""
        return sorted(self._policies)

    def add_checkpoint(self, body: bytes) -> str:
        """Handle an ``add-checkpoint`` body; return the cosignature line(s) to answer with.

        Raises the refusals of :mod:`ledger.witness.errors` (and ``InvalidRequest`` for a
        malformed body); nothing is stored unless the checkpoint is cosigned (or kept as evidence).
        """
        request = parse_add_checkpoint(body)
        checkpoint = request.checkpoint
        policy = self._policies.get(checkpoint.origin)
        if policy is None:
            raise UnknownLog(f"this witness does not witness the log {checkpoint.origin!r}")
        log_lines = check_log_signature(request.note, policy)
        hasher = tree_hasher(policy.log.hash_alg)
        refused: InconsistentCheckpoint | None = None
        with self.store.transaction() as tx:
            stored = tx.latest(checkpoint.origin)
            now = max(1, self._clock())  # C2SP: the timestamp MUST NOT be zero
            try:
                head = advance(stored.head if stored else None, request, hasher)
            except InconsistentCheckpoint as e:
                # Signed by the log yet inconsistent: evidence of a fork; kept, never cosigned.
                tx.add_evidence(checkpoint.origin, e.message, body.decode(), now)
                refused = e
            else:
                cosignature = cosign(checkpoint, self.name, self._key, now)
                line = cosignature.to_signature_line()
                note = request.note.only(*log_lines).with_signatures([line])
                tx.put(checkpoint.origin, head, note.to_text(), now)
        if refused is not None:
            _logger.warning(
                "refused an inconsistent checkpoint",
                extra={"origin": checkpoint.origin, "tree_size": checkpoint.size, "error": refused.message},
            )
            raise refused
        _logger.info("cosigned", extra={"origin": checkpoint.origin, "tree_size": checkpoint.size})
        return line.to_line()

    def latest_checkpoint(self, hashed_origin: str) -> SignedCheckpoint:
        """The latest cosigned checkpoint of the log whose origin hashes to ``hashed_origin``.

        Carries the log's verified line(s) and this witness's cosignature (C2SP monitoring API).
        """
        origin = self._by_hash.get(hashed_origin)
        stored = self.store.latest(origin) if origin is not None else None
        if origin is None or stored is None:
            raise UnknownLog("this witness has cosigned no checkpoint of that log")
        return SignedCheckpoint.from_text(stored.note)
