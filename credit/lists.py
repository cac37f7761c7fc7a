"""Lists: who is on the red list or a black list now, and published list snapshots with proofs.

Publishing a list records a ``credit_list`` ledger record committing to the Merkle root (SM3,
RFC 9162) of its members' references, so anyone can later be shown, with an inclusion proof,
whether a subject was on the list as published.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from credit.errors import NotFoundError
from credit.models import ListSnapshot, SnapshotProof
from credit.rulebooks_in_force import RulebooksInForce
from credit.store import SCORES, SNAPSHOTS
from credit.unit_of_work import LedgerGateway, PendingWrite
from ledger.core.crypto import HashAlgorithm
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import RecordKind
from ledger.core.merkle import MemoryTree, inclusion_proof
from ledger.log import Submission


class Lists:
    """List members, snapshots and membership proofs (see the module docstring)."""

    def __init__(
        self, gateway: LedgerGateway, rulebooks: RulebooksInForce, *, today: Callable[[], date]
    ) -> None:
        self.gateway = gateway
        self.rulebooks = rulebooks
        self.today = today

    def members(self, list_name: str) -> list[bytes]:
        """Subjects on ``list_name`` now ("red", or a black list's key), sorted by reference."""
        rulebook = self.rulebooks.in_force()
        if list_name != "red" and list_name not in rulebook.black_lists:
            raise NotFoundError(f"unknown list {list_name!r}", reason="unknown-list")
        members = []
        with self.gateway.reading() as conn:
            for ref, black, red in conn.execute(select(SCORES.c.subject_ref, SCORES.c.black, SCORES.c.red)):
                if (list_name == "red" and red) or list_name in black:
                    members.append(bytes(ref))
        return sorted(members)

    def publish(self, list_name: str, *, by: str) -> ListSnapshot:
        """Publish a list as of today: a ``credit_list`` record committing to the Merkle root (SM3,
        RFC 9162) of its members' references, so the list as published can be proven later."""
        members = self.members(list_name)
        hasher = tree_hasher(HashAlgorithm.SM3)
        root = hasher.root_of([hasher.leaf_hash(ref) for ref in members])
        today = self.today()
        document = {"v": 1, "list": list_name, "as_of": today.isoformat(), "size": len(members), "by": by}
        document["root"] = root.hex()
        row = {"list_name": list_name, "as_of": today, "size": len(members), "root": root}
        row["members"] = [m.hex() for m in members]
        write = PendingWrite()
        write.record(
            Submission(kind=RecordKind.CREDIT_LIST, content_hash=root, metadata=document), SNAPSHOTS, row
        )
        (accepted,) = self.gateway.commit(write)
        return ListSnapshot(list_name, today, len(members), root, accepted.id, by=by)

    def snapshots(self, list_name: str, *, limit: int = 50) -> list[ListSnapshot]:
        """Published snapshots of a list, newest first."""
        with self.gateway.reading() as conn:
            rows = conn.execute(
                select(SNAPSHOTS)
                .where(SNAPSHOTS.c.list_name == list_name)
                .order_by(SNAPSHOTS.c.seq.desc())
                .limit(limit)
            ).all()
        return [_snapshot(r) for r in rows]

    def proof(self, seq: int, ref: bytes) -> SnapshotProof:
        """Whether ``ref`` was on a published snapshot, with an RFC 9162 inclusion proof if so."""
        with self.gateway.reading() as conn:
            row = conn.execute(select(SNAPSHOTS).where(SNAPSHOTS.c.seq == seq)).first()
        if row is None:
            raise NotFoundError(f"no list snapshot {seq}", reason="unknown-snapshot")
        members = [bytes.fromhex(m) for m in row.members]
        snapshot = (row.list_name, row.as_of, row.size, bytes(row.root), row.record_id)
        if ref not in members:
            return SnapshotProof(*snapshot, member=False)
        tree = MemoryTree(tree_hasher(HashAlgorithm.SM3))
        for m in members:
            tree.append(m)
        index = members.index(ref)
        proof = tuple(inclusion_proof(tree.hasher, index, tree.size, tree.read_node))
        return SnapshotProof(*snapshot, member=True, index=index, proof=proof)


def _snapshot(row: Row[Any]) -> ListSnapshot:
    return ListSnapshot(row.list_name, row.as_of, row.size, bytes(row.root), row.record_id, seq=row.seq)
