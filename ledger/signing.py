"""Where a log's checkpoint keys come from: one static key, or a deployment's rotating key ring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.core.crypto import Sm2PrivateKey, Sm2PublicKey


class LogSigningKeys(Protocol):
    """Where the log's checkpoint keys come from (a deployment's :class:`ledger.rotation.LogKeyRing`)."""

    def current(self) -> Sm2PrivateKey:
        """The key new checkpoints are signed with."""
        ...

    def signing_key(self, tree_size: int) -> Sm2PrivateKey:
        """The key to sign a checkpoint of ``tree_size`` with (raises if none may)."""
        ...

    def public_keys(self) -> Sequence[Sm2PublicKey]:
        """Every key that may have signed a stored checkpoint, the current one first."""
        ...


@dataclass(frozen=True)
class StaticSigningKey:
    """One log key for every checkpoint (tests, tools): :class:`LogSigningKeys` without rotation."""

    key: Sm2PrivateKey

    def current(self) -> Sm2PrivateKey:
        """The key."""
        return self.key

    def signing_key(self, tree_size: int) -> Sm2PrivateKey:  # noqa: ARG002 - one key for all sizes
        """The key."""
        return self.key

    def public_keys(self) -> Sequence[Sm2PublicKey]:
        """The key's public half."""
        return [self.key.public_key()]
