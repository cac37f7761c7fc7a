"""Proofs served from the stored tiles, and the receipt's anchor section.

RFC 9162 inclusion and consistency proofs read the node hashes they need from tlog-tiles
(:mod:`ledger.core.tiles`), fetched in one query per proof; full tiles never change again, so a
bounded cache keeps the most recently used ones in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from ledger.core.anchor import ReceiptAnchor, log_id
from ledger.core.merkle import TreeHasher, consistency_proof, inclusion_proof
from ledger.core.tiles import TILE_WIDTH, TileId, TileNodeReader, tiles_for_inclusion
from ledger.errors import InvalidRequest, StorageError
from ledger.store import LogStore
from ledger.stored import StoredAnchor

_FULL_TILE_CACHE = 8192  # immutable full tiles (8 KiB each) kept in memory: 64 MiB at most


class TileProofs:
    """Inclusion and consistency proofs of one log, with its cache of full tiles (thread-safe)."""

    def __init__(self, store: LogStore, hasher: TreeHasher) -> None:
        self.store = store
        self.hasher = hasher
        self._tile_cache: OrderedDict[TileId, list[bytes]] = OrderedDict()
        self._tile_lock = threading.Lock()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` (one tile query).

        A size beyond the sequenced tree shows as tiles that are missing or too narrow, so no
        separate size query is needed.
        """
        if not 0 <= index < size:
            raise InvalidRequest(f"no leaf {index} in a tree of size {size}", reason="invalid-proof-request")
        try:
            return inclusion_proof(self.hasher, index, size, self._node_reader(size, index).read_node)
        except LookupError as e:
            raise InvalidRequest(
                f"the log has fewer than {size} leaves", reason="invalid-proof-request"
            ) from e

    def consistency_proof(self, first: int, second: int, current_size: Callable[[], int]) -> list[bytes]:
        """RFC 9162 consistency proof between tree sizes ``first`` <= ``second``; ``current_size``
        gives the sequenced size (read only when no tile is needed to check ``second``)."""
        if not 0 <= first <= second:
            raise InvalidRequest(
                f"cannot prove consistency from {first} to {second}", reason="invalid-proof-request"
            )
        if first in (0, second):
            if second > current_size():
                raise InvalidRequest(
                    f"the log has fewer than {second} leaves", reason="invalid-proof-request"
                )
            return []
        try:
            reader = self._node_reader(second, first - 1)
            return consistency_proof(self.hasher, first, second, reader.read_node)
        except LookupError as e:
            raise InvalidRequest(
                f"the log has fewer than {second} leaves", reason="invalid-proof-request"
            ) from e

    def _node_reader(self, size: int, *near: int) -> TileNodeReader:
        """A node reader at ``size`` with the tiles around leaves ``near`` fetched in one query.

        Raises LookupError unless the log has ``size`` leaves: a proof need not read the leaf it
        is about, so a proof for a leaf past the end could otherwise be built.
        """
        reader = TileNodeReader(self.hasher, self._fetch_tiles, size)
        wanted: set[TileId] = set()
        for index in (*near, size - 1):
            wanted.update(tiles_for_inclusion(index, size))
        reader.prefetch(wanted)
        reader.read_node(0, size - 1)
        return reader

    def _fetch_tiles(self, ids: Sequence[TileId]) -> Mapping[TileId, Sequence[bytes]]:
        found: dict[TileId, Sequence[bytes]] = {}
        missing: list[TileId] = []
        with self._tile_lock:
            for tid in ids:
                cached = self._tile_cache.get(tid)
                if cached is None:
                    missing.append(tid)
                else:
                    self._tile_cache.move_to_end(tid)
                    found[tid] = cached
        if missing:
            fetched = self.store.fetch_tiles(missing)
            found.update(fetched)
            with self._tile_lock:
                for tid, hashes in fetched.items():
                    if len(hashes) == TILE_WIDTH:  # full tiles never change again
                        self._tile_cache[tid] = hashes
                while len(self._tile_cache) > _FULL_TILE_CACHE:
                    self._tile_cache.popitem(last=False)
        return found


def receipt_anchor(origin: str, row: StoredAnchor) -> ReceiptAnchor:
    """The receipt ``anchor`` section of a final anchor row."""
    if row.tx_hash is None or row.sequence is None or row.block_number is None or row.block_hash is None:
        raise StorageError(f"anchor of size {row.tree_size} is final but incomplete")
    return ReceiptAnchor(
        chain_id=row.chain_id,
        registry=row.registry_address,
        log_id="0x" + log_id(origin).hex(),
        sequence=row.sequence,
        tree_size=row.tree_size,
        checkpoint_hash="0x" + row.checkpoint_hash.hex(),
        tx_hash=row.tx_hash,
        block_number=row.block_number,
        block_hash=row.block_hash,
    )
