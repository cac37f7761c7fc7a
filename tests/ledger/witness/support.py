"""Helpers for witness tests: a reference log (MemoryTree + log key), policies, in-process witnesses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.testclient import TestClient

from ledger.core.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.core.hashing import tree_hasher
from ledger.core.merkle import MemoryTree, consistency_proof
from ledger.core.policy import PolicyWitness, TrustPolicy, new_policy
from ledger.cosigning import WitnessReply
from ledger.witness.http import create_witness_app
from ledger.witness.protocol import add_checkpoint_body
from ledger.witness.service import Witness
from ledger.witness.storage import WitnessStore

ORIGIN = "test.trustledger.local/log"  # the origin of tests.conftest's ledgers
HASHER = tree_hasher(HashAlgorithm.SM3)


class RefLog:
    """A log in memory, signed by ``key``: a stand-in for the log (honest or forked)."""

    def __init__(self, key: Sm2PrivateKey, leaves: list[bytes] | None = None, origin: str = ORIGIN) -> None:
        self.key = key
        self.origin = origin
        self.tree = MemoryTree(HASHER)
        for leaf in leaves or []:
            self.tree.append(leaf)

    def grow(self, count: int, tag: bytes = b"leaf") -> None:
        """Append ``count`` leaves (``tag`` makes a fork's leaves differ)."""
        start = self.tree.size
        for i in range(start, start + count):
            self.tree.append(tag + i.to_bytes(8, "big"))

    def fork(self, at: int, tag: bytes = b"forged") -> RefLog:
        """A log with this one's first ``at`` leaves and nothing else (then grow it with ``tag``)."""
        other = RefLog(self.key, origin=self.origin)
        for leaf_hash in self.tree.leaf_hashes[:at]:
            other.tree.append_hash(leaf_hash)
        return other

    def note(self, size: int | None = None, timestamp_us: int = 1_795_000_000_000_000) -> SignedCheckpoint:
        """The log-signed checkpoint at ``size`` (default: the whole tree)."""
        size = self.tree.size if size is None else size
        root = self.tree.root(size)
        checkpoint = Checkpoint(self.origin, size, root, HashAlgorithm.SM3, timestamp_us + size)
        return sign_checkpoint(checkpoint, self.origin, self.key)

    def proof(self, old: int, new: int) -> list[bytes]:
        """The consistency proof ``old`` -> ``new`` (empty from 0, to a smaller or an equal size)."""
        if old == 0 or old >= new:
            return []
        return consistency_proof(HASHER, old, new, self.tree.read_node)

    def body(self, old: int, size: int | None = None) -> bytes:
        """An ``add-checkpoint`` body for the checkpoint at ``size`` from ``old``."""
        size = self.tree.size if size is None else size
        return add_checkpoint_body(old, self.proof(old, size), self.note(size).to_text())


def policy_for(
    log_key: Sm2PrivateKey, witnesses: list[tuple[str, Sm2PrivateKey, str | None]], quorum: int
) -> TrustPolicy:
    """A serial-1 policy for ``ORIGIN`` with these (name, key, url) witnesses."""
    return new_policy(
        origin=ORIGIN,
        hash_alg=HashAlgorithm.SM3,
        log_key=log_key.public_key(),
        witnesses=tuple(
            PolicyWitness(name=n, public_key=k.public_key().hex(), url=u) for n, k, u in witnesses
        ),
        witness_quorum=quorum,
    )


@dataclass
class Node:
    """An in-process witness and a client of its HTTP app."""

    witness: Witness
    client: TestClient
    store: WitnessStore

    def close(self) -> None:
        self.client.close()
        self.store.close()


def start_node(data_dir: Path, name: str, key: Sm2PrivateKey, policy: TrustPolicy) -> Node:
    """A witness over ``data_dir/witness.db`` served in process."""
    store = WitnessStore(data_dir / "witness.db")
    witness = Witness(name, key, [policy], store)
    return Node(witness, TestClient(create_witness_app(witness)), store)


class InProcessPost:
    """The collector's ``post`` over in-process witnesses, by URL prefix; records what it sent."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.sent: list[tuple[str, int]] = []  # (url, old size)

    def __call__(self, url: str, body: bytes, timeout_s: float) -> WitnessReply:
        prefix = url.removesuffix("/add-checkpoint")
        node = self.nodes[prefix]
        self.sent.append((prefix, int(body.split(b"\n", 1)[0][4:])))
        response = node.client.post("/add-checkpoint", content=body)
        return WitnessReply(response.status_code, response.headers.get("content-type", ""), response.content)
