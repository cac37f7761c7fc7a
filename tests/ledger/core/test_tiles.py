"""Tests of ledger.core.tiles: tile layout, TileWriter / TileNodeReader against MemoryTree."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core.merkle import (
    MemoryTree,
    TreeHasher,
    consistency_proof,
    inclusion_proof,
    root_hash,
    sha256_hasher,
    verify_consistency,
    verify_inclusion,
)
from ledger.core.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileId,
    TileNodeReader,
    TileWriter,
    node_from_tile,
    tile_for_node,
    tile_path,
    tile_width,
    tiles_for_inclusion,
    tiles_for_size,
)

H = sha256_hasher()


def _blake(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


FAST = TreeHasher("blake2b-128", _blake)  # a cheap digest for the large tree

Store = dict[TileId, list[bytes]]


class FetchCounter:
    """A ``fetch_tiles`` over an in-memory store that counts its calls."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0
        self.tiles = 0

    def __call__(self, tiles: Sequence[TileId]) -> Mapping[TileId, Sequence[bytes]]:
        self.calls += 1
        self.tiles += len(tiles)
        return {tile: self.store[tile] for tile in tiles if tile in self.store}


def leaf_hashes(hasher: TreeHasher, count: int, start: int = 0) -> list[bytes]:
    return [hasher.leaf_hash(i.to_bytes(4, "big")) for i in range(start, start + count)]


def memory_tree(hasher: TreeHasher, hashes: Sequence[bytes]) -> MemoryTree:
    tree = MemoryTree(hasher)
    for value in hashes:
        tree.append_hash(value)
    return tree


def flush(writer: TileWriter, store: Store) -> None:
    store.update(writer.dirty_tiles())
    writer.clear_dirty()


def truncated(store: Store, size: int) -> Store:
    """The store as it was when the tree had ``size`` leaves (tiles are append-only)."""
    result = {tile: content[: tile_width(tile, size)] for tile, content in store.items()}
    return {tile: content for tile, content in result.items() if content}


def write_in_batches(
    hasher: TreeHasher, hashes: Sequence[bytes], cuts: Sequence[int], store: Store, *, start: int = 0
) -> TileWriter:
    """Append ``hashes[start:]`` to a writer resumed from ``store`` at ``start``, split at ``cuts``."""
    rightmost = {tile: store[tile][:width] for tile, width in tiles_for_size(start)}
    writer = TileWriter(hasher, start, rightmost)
    bounds = sorted({c for c in cuts if start < c < len(hashes)} | {len(hashes)})
    position = start
    for bound in bounds:
        writer.append(hashes[position:bound])
        position = bound
        assert writer.size == bound
        flush(writer, store)
    return writer


# --- layout ------------------------------------------------------------------------------------


def test_constants() -> None:
    assert TILE_WIDTH == 2**TILE_HEIGHT == 256


def test_tile_path_examples_from_c2sp_tlog_tiles() -> None:
    assert tile_path(TileId(0, 1234067), 256) == "tile/0/x001/x234/067"
    assert tile_path(TileId(0, 1234067), 8) == "tile/0/x001/x234/067.p/8"
    assert tile_path(TileId(1, 0), 256) == "tile/1/000"
    assert tile_path(TileId(2, 1), 1) == "tile/2/001.p/1"
    assert tile_path(TileId(0, 1000), 256) == "tile/0/x001/000"
    assert tile_path(TileId(3, 999), 255) == "tile/3/999.p/255"
    assert tile_path(TileId(0, 1_000_000), 256) == "tile/0/x001/x000/000"
    for width in (0, 257):
        with pytest.raises(ValueError):
            tile_path(TileId(0, 0), width)


def test_tile_for_node() -> None:
    assert tile_for_node(0, 0) == (TileId(0, 0), 0, 1)
    assert tile_for_node(0, 300) == (TileId(0, 1), 44, 1)
    assert tile_for_node(3, 40) == (TileId(0, 1), 64, 8)
    assert tile_for_node(7, 3) == (TileId(0, 1), 128, 128)
    assert tile_for_node(8, 5) == (TileId(1, 0), 5, 1)
    assert tile_for_node(9, 200) == (TileId(1, 1), 144, 2)
    assert tile_for_node(16, 1) == (TileId(2, 0), 1, 1)
    with pytest.raises(ValueError):
        tile_for_node(-1, 0)


def test_tiles_for_size() -> None:
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [(TileId(0, 0), 1)]
    assert tiles_for_size(255) == [(TileId(0, 0), 255)]
    assert tiles_for_size(256) == [(TileId(1, 0), 1)]
    assert tiles_for_size(257) == [(TileId(0, 1), 1), (TileId(1, 0), 1)]
    assert tiles_for_size(65536) == [(TileId(2, 0), 1)]
    assert tiles_for_size(70000) == [(TileId(0, 273), 112), (TileId(1, 1), 17), (TileId(2, 0), 1)]
    assert tile_width(TileId(0, 273), 70000) == 112
    assert tile_width(TileId(0, 272), 70000) == 256
    assert tile_width(TileId(0, 274), 70000) == 0


def test_node_from_tile() -> None:
    hashes = leaf_hashes(H, 300)
    tree = memory_tree(H, hashes)
    tile1 = hashes[256:300]  # the partial level-0 tile 1, width 44
    assert node_from_tile(H, tile1, 0, 257) == hashes[257]
    assert node_from_tile(H, tile1, 5, 8) == tree.read_node(5, 8)  # leaves 256..287
    with pytest.raises(LookupError):
        node_from_tile(H, tile1, 4, 18)  # leaves 288..303: not complete at width 44
    assert node_from_tile(H, hashes[:256], 7, 1) == tree.read_node(7, 1)


# --- writer and reader -------------------------------------------------------------------------


def check_tree(hasher: TreeHasher, store: Store, tree: MemoryTree, size: int, probes: Sequence[int]) -> None:
    """The tiles in ``store`` give the same roots and proofs as ``tree`` at ``size``."""
    reader = TileNodeReader(hasher, FetchCounter(store), size)
    root = tree.root(size)
    assert root_hash(hasher, size, reader.read_node) == root
    for probe in probes:
        index = probe % size
        proof = inclusion_proof(hasher, index, size, reader.read_node)
        assert proof == inclusion_proof(hasher, index, size, tree.read_node)
        verify_inclusion(hasher, tree.leaf_hashes[index], index, size, proof, root)
        old = probe % size + 1
        proof = consistency_proof(hasher, old, size, reader.read_node)
        assert proof == consistency_proof(hasher, old, size, tree.read_node)
        verify_consistency(hasher, old, size, tree.root(old), root, proof)


def check_store_layout(hasher: TreeHasher, store: Store, tree: MemoryTree) -> None:
    """Every stored tile holds exactly the node hashes it should at the tree's size."""
    size = tree.size
    for tile, content in store.items():
        assert len(content) == tile_width(tile, size)
        level = TILE_HEIGHT * tile.level
        expected = [tree.read_node(level, TILE_WIDTH * tile.index + i) for i in range(len(content))]
        assert content == expected, tile
    expected_tiles = {TileId(0, i) for i in range((size + TILE_WIDTH - 1) // TILE_WIDTH)}
    assert {tile for tile in store if tile.level == 0} == expected_tiles


sizes = st.one_of(
    st.integers(1, 1100),
    st.sampled_from([1, 255, 256, 257, 511, 512, 513, 768, 1023, 1024, 1025]),
)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=sizes, data=st.data())
def test_writer_tiles_match_memory_tree(size: int, data: st.DataObject) -> None:
    hashes = leaf_hashes(H, size)
    tree = memory_tree(H, hashes)
    cuts = data.draw(st.lists(st.integers(1, size), max_size=8), label="cuts")
    store: Store = {}
    writer = TileWriter(H, 0, {})
    assert writer.root() == H.empty_root()
    position = 0
    for bound in sorted(set(cuts) | {size}):
        writer.append(hashes[position:bound])
        position = bound
        assert writer.root() == tree.root(bound)
        flush(writer, store)
        # A reader at an older size works on tiles that have grown since.
        check_tree(H, store, tree, bound, [0, bound // 2])
    assert writer.dirty_tiles() == {}
    assert writer.rightmost() == {tile: store[tile] for tile, _ in tiles_for_size(size)}
    check_store_layout(H, store, tree)
    probes = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=4), label="probes")
    check_tree(H, store, tree, size, probes)
    old = data.draw(st.integers(1, size), label="old")
    check_tree(H, store, tree, old, probes)

    # Resume from the rightmost tiles at a cut point and write the rest: identical tiles.
    middle = data.draw(st.integers(0, size), label="middle")
    resumed_store = truncated(store, middle)
    resumed = write_in_batches(H, hashes, cuts, resumed_store, start=middle)
    assert resumed.root() == writer.root() == tree.root()
    assert resumed_store == store


def test_dirty_tiles_report_full_and_partial_tiles() -> None:
    hashes = leaf_hashes(H, 600)
    writer = TileWriter(H, 0, {})
    writer.append(hashes[:10])
    assert writer.dirty_tiles() == {TileId(0, 0): hashes[:10]}
    writer.append(hashes[10:300])
    dirty = writer.dirty_tiles()
    assert dirty[TileId(0, 0)] == hashes[:256]  # filled since: reported full
    assert dirty[TileId(0, 1)] == hashes[256:300]
    assert dirty[TileId(1, 0)] == [H.root_of(hashes[:256])]
    assert set(dirty) == {TileId(0, 0), TileId(0, 1), TileId(1, 0)}
    writer.clear_dirty()
    assert writer.dirty_tiles() == {}
    writer.append(hashes[300:301])
    assert writer.dirty_tiles() == {TileId(0, 1): hashes[256:301]}


def test_writer_rejects_mismatched_resume_state() -> None:
    hashes = leaf_hashes(H, 300)
    store: Store = {}
    write_in_batches(H, hashes, [], store)
    good = {tile: store[tile] for tile, _ in tiles_for_size(300)}
    assert TileWriter(H, 300, good).root() == H.root_of(hashes)
    with pytest.raises(ValueError, match="width"):
        TileWriter(H, 300, {**good, TileId(0, 1): hashes[256:299]})
    with pytest.raises(ValueError, match="missing"):
        TileWriter(H, 300, {TileId(1, 0): good[TileId(1, 0)]})
    with pytest.raises(ValueError, match="not rightmost"):
        TileWriter(H, 300, {**good, TileId(0, 0): hashes[:256]})
    with pytest.raises(ValueError):
        TileWriter(H, 300, {**good, TileId(0, 1): [b"short"] * 44})
    with pytest.raises(ValueError):
        TileWriter(H, 0, {}).append([b"short"])


def test_reader_rejects_incomplete_and_missing_nodes() -> None:
    hashes = leaf_hashes(H, 300)
    store: Store = {}
    write_in_batches(H, hashes, [100], store)
    reader = TileNodeReader(H, FetchCounter(store), 300)
    with pytest.raises(LookupError):
        reader.read_node(0, 300)
    with pytest.raises(LookupError):
        reader.read_node(3, 37)  # leaves 296..303
    with pytest.raises(LookupError):
        reader.read_node(9, 0)
    assert reader.read_node(3, 36) == H.root_of(hashes[288:296])
    assert reader.read_node(8, 0) == H.root_of(hashes[:256])
    empty = TileNodeReader(H, FetchCounter({}), 300)
    with pytest.raises(LookupError, match="not stored"):
        empty.read_node(0, 0)


def test_large_tree_over_65536_leaves() -> None:
    """70000 leaves: three tile levels, tiles equal MemoryTree, proofs read O(log n) tiles."""
    size = 70_000
    hashes = leaf_hashes(FAST, size)
    tree = memory_tree(FAST, hashes)
    rng = random.Random(20240607)
    cuts = sorted(rng.sample(range(1, size), 40)) + [256 * 256, 256 * 256 + 1]
    store: Store = {}
    writer = write_in_batches(FAST, hashes, cuts, store)
    assert writer.root() == tree.root()
    levels = len(tiles_for_size(size))
    assert levels == 3

    check_tree(FAST, store, tree, size, [0, 255, 256, 65535, 65536, 69999, 12345])
    for older in (65535, 65536, 65537, 69999):
        check_tree(FAST, store, tree, older, [older - 1, 4321])

    # Resuming mid-way reproduces the same tiles.
    resumed_store = truncated(store, 40_000)
    resumed = write_in_batches(FAST, hashes, cuts, resumed_store, start=40_000)
    assert resumed.root() == tree.root()
    assert resumed_store == store

    # Each proof needs only a handful of tile fetches (O(log n)), never O(n).
    for index in (0, 31337, 65536, 69999):
        fetch = FetchCounter(store)
        proof = inclusion_proof(FAST, index, size, TileNodeReader(FAST, fetch, size).read_node)
        verify_inclusion(FAST, hashes[index], index, size, proof, tree.root())
        assert fetch.calls <= levels + 3, (index, fetch.calls)
    for old in (1, 1000, 65536, 65537, 69999):
        fetch = FetchCounter(store)
        proof = consistency_proof(FAST, old, size, TileNodeReader(FAST, fetch, size).read_node)
        verify_consistency(FAST, old, size, tree.root(old), tree.root(), proof)
        assert fetch.calls <= levels + 3, (old, fetch.calls)
    fetch = FetchCounter(store)
    assert root_hash(FAST, size, TileNodeReader(FAST, fetch, size).read_node) == tree.root()
    assert fetch.calls == levels  # exactly the rightmost tiles


def test_reader_prefetch_batches_fetches() -> None:
    hashes = leaf_hashes(H, 1000)
    store: Store = {}
    write_in_batches(H, hashes, [], store)
    fetch = FetchCounter(store)
    reader = TileNodeReader(H, fetch, 1000)
    reader.prefetch([tile for tile, _ in tiles_for_size(1000)])
    assert (fetch.calls, fetch.tiles) == (1, 2)
    assert root_hash(H, 1000, reader.read_node) == H.root_of(hashes)
    assert fetch.calls == 1


@pytest.fixture(scope="module")
def large_store() -> tuple[Store, int]:
    """70,000 leaves in tiles (three tile levels)."""
    size = 70_000
    store: Store = {}
    write_in_batches(FAST, leaf_hashes(FAST, size), [], store)
    return store, size


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_prefetch_for_inclusion_covers_every_tile_a_proof_reads(
    large_store: tuple[Store, int], data: st.DataObject
) -> None:
    """After prefetching tiles_for_inclusion, an inclusion proof needs no further tile query."""
    full, full_size = large_store
    size = data.draw(st.integers(1, full_size))
    index = data.draw(st.integers(0, size - 1))
    fetch = FetchCounter(truncated(full, size))
    reader = TileNodeReader(FAST, fetch, size)
    reader.prefetch(tiles_for_inclusion(index, size))
    inclusion_proof(FAST, index, size, reader.read_node)
    assert fetch.calls == 1
