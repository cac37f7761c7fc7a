"""Stored Merkle tree nodes grouped into tiles, in the manner of C2SP tlog-tiles.

The RFC 9162 tree (see :mod:`ledger.core.merkle`) is cut into horizontal bands of
:data:`TILE_HEIGHT` = 8 levels. A tile ``(L, k)`` stores the hashes of the tree nodes at height
``8 * L`` with node indices ``256 * k`` to ``256 * k + w - 1``, where ``w`` (1..256) is the tile
width; only the rightmost tile of a level may be partial (``w < 256``). Level-0 tile entries are
leaf hashes; an entry of a level-``L + 1`` tile is the Merkle tree hash of a full level-``L`` tile.
Every node of height ``h`` is thus computable from ``2 ** (h % 8)`` consecutive entries of a single
tile, so a proof, which needs O(log n) subtree roots, reads O(log n) tiles.

Tile paths (:func:`tile_path`) follow https://c2sp.org/tlog-tiles, for a static export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.core.merkle import TreeHasher

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileId",
    "TileNodeReader",
    "TileWriter",
    "node_from_tile",
    "tile_for_node",
    "tile_path",
    "tile_width",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Number of tree levels covered by one tile."""

TILE_WIDTH = 256
"""Number of entries in a full tile (``2 ** TILE_HEIGHT``)."""


@dataclass(frozen=True, order=True)
class TileId:
    """A tile: ``level`` is the tile level (tree height ``8 * level``), ``index`` its position."""

    level: int
    index: int


def tile_for_node(level: int, index: int) -> tuple[TileId, int, int]:
    """Locate tree node (height ``level``, index ``index``) in the tiles.

    Returns ``(tile, offset, count)``: the node is the Merkle tree hash of the ``count`` entries
    (``2 ** (level % 8)``) of ``tile`` starting at ``offset``.
    """
    if level < 0 or index < 0:
        raise ValueError(f"invalid node ({level}, {index})")
    tile_level, height_in_tile = divmod(level, TILE_HEIGHT)
    first = index << height_in_tile  # first covered entry at height 8 * tile_level
    tile_index, offset = divmod(first, TILE_WIDTH)
    return TileId(tile_level, tile_index), offset, 1 << height_in_tile


def node_from_tile(hasher: TreeHasher, tile_hashes: Sequence[bytes], level: int, index: int) -> bytes:
    """The hash of node (``level``, ``index``) computed from the entries of the tile holding it.

    Raises :class:`LookupError` if ``tile_hashes`` is too narrow to contain the complete node.
    """
    tile, offset, count = tile_for_node(level, index)
    if offset + count > len(tile_hashes):
        raise LookupError(
            f"tile {tile.level}/{tile.index} of width {len(tile_hashes)} does not contain"
            f" the complete node ({level}, {index})"
        )
    if count == 1:
        return tile_hashes[offset]
    return hasher.root_of(tile_hashes[offset : offset + count])


def _entries_at(tile_level: int, size: int) -> int:
    """Number of complete nodes at height ``8 * tile_level`` in a tree of ``size`` leaves."""
    return size >> (TILE_HEIGHT * tile_level)


def tile_width(tile: TileId, size: int) -> int:
    """The width of ``tile`` in a tree of ``size`` leaves (0 if the tile does not exist yet)."""
    entries = _entries_at(tile.level, size)
    return max(0, min(TILE_WIDTH, entries - tile.index * TILE_WIDTH))


def tiles_for_size(size: int) -> list[tuple[TileId, int]]:
    """The rightmost partial tile of every tile level, with its width, for ``size`` leaves.

    Levels whose entry count is a multiple of 256 have no partial tile and are omitted (their full
    tiles are already summarised as entries one level up). This is exactly the state that
    :class:`TileWriter` needs to resume appending, and from which the root can be computed.
    """
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    result: list[tuple[TileId, int]] = []
    tile_level = 0
    while (entries := _entries_at(tile_level, size)) > 0:
        width = entries % TILE_WIDTH
        if width:
            result.append((TileId(tile_level, entries // TILE_WIDTH), width))
        tile_level += 1
    return result


def _partial_roots(hasher: TreeHasher, partials: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Complete-subtree roots, left to right, of the tree whose partial tiles are ``partials``.

    ``partials[L]`` is the content of the rightmost partial tile of level ``L`` (possibly empty).
    """
    roots: list[bytes] = []
    for entries in reversed(partials):  # the highest level covers the leftmost leaves
        position = 0
        for bit in range(TILE_HEIGHT - 1, -1, -1):
            block = 1 << bit
            if len(entries) & block:
                roots.append(hasher.root_of(entries[position : position + block]))
                position += block
    return roots


class TileWriter:
    """Incremental tile builder for the single sequencer.

    Keeps only the rightmost partial tile of each level in memory. :meth:`append` adds leaf
    hashes; :meth:`dirty_tiles` reports every tile written since :meth:`clear_dirty` with its full
    current content, to be persisted (a partial tile overwrites its narrower predecessor).
    """

    def __init__(self, hasher: TreeHasher, size: int, rightmost: Mapping[TileId, Sequence[bytes]]) -> None:
        """Resume at ``size`` from the rightmost tiles (see :func:`tiles_for_size`).

        Raises :class:`ValueError` if ``rightmost`` does not hold exactly those tiles with exactly
        those widths, or holds a value that is not a hash of the right size.
        """
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        self._hasher = hasher
        self._digest_size = hasher.digest_size
        self._size = size
        expected = dict(tiles_for_size(size))
        unexpected = sorted(set(rightmost) - set(expected))
        if unexpected:
            raise ValueError(f"tiles {unexpected} are not rightmost partial tiles at size {size}")
        # One (possibly empty) partial tile per level that has at least one entry.
        levels = 0
        while _entries_at(levels, size) > 0:
            levels += 1
        self._partials: list[list[bytes]] = [[] for _ in range(levels)]
        for tile, width in expected.items():
            content = rightmost.get(tile)
            if content is None:
                raise ValueError(f"missing tile {tile.level}/{tile.index} (width {width}) at size {size}")
            if len(content) != width:
                raise ValueError(
                    f"tile {tile.level}/{tile.index} has width {len(content)},"
                    f" expected {width} at size {size}"
                )
            for value in content:
                self._check(value)
            self._partials[tile.level] = list(content)
        self._dirty: set[TileId] = set()
        self._completed: dict[TileId, list[bytes]] = {}

    def _check(self, value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) != self._digest_size:
            raise ValueError(f"not a {self._digest_size}-byte {self._hasher.name} hash: {value!r}")

    @property
    def size(self) -> int:
        """The number of leaves in the tree."""
        return self._size

    def append(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes (``TreeHasher.leaf_hash`` of each record) in order."""
        for leaf_hash in leaf_hashes:
            self._check(leaf_hash)
            self._push(0, leaf_hash)
            self._size += 1

    def _push(self, tile_level: int, value: bytes) -> None:
        while True:
            if tile_level == len(self._partials):
                self._partials.append([])
            entries = self._partials[tile_level]
            # The new entry's index at this level: entries complete before the leaf being added.
            position = self._size >> (TILE_HEIGHT * tile_level)
            tile = TileId(tile_level, position // TILE_WIDTH)
            entries.append(value)
            self._dirty.add(tile)
            if len(entries) < TILE_WIDTH:
                return
            # The tile is full: keep its content for dirty_tiles(), carry its hash one level up.
            self._completed[tile] = entries
            self._partials[tile_level] = []
            value = self._hasher.root_of(entries)
            tile_level += 1

    def dirty_tiles(self) -> dict[TileId, list[bytes]]:
        """Every tile changed since the last :meth:`clear_dirty`, with its full current content."""
        result: dict[TileId, list[bytes]] = {}
        for tile in sorted(self._dirty):
            completed = self._completed.get(tile)
            result[tile] = list(completed) if completed is not None else list(self._partials[tile.level])
        return result

    def clear_dirty(self) -> None:
        """Forget which tiles changed (after they were persisted)."""
        self._dirty.clear()
        self._completed.clear()

    def rightmost(self) -> dict[TileId, list[bytes]]:
        """The rightmost partial tiles, as :func:`tiles_for_size` lists them for the current size."""
        return {tile: list(self._partials[tile.level]) for tile, _ in tiles_for_size(self._size)}

    def root(self) -> bytes:
        """The tree head at the current size, from the rightmost partial tiles only."""
        roots = _partial_roots(self._hasher, self._partials)
        if not roots:
            return self._hasher.empty_root()
        result = roots[-1]
        for value in reversed(roots[:-1]):
            result = self._hasher.node_hash(value, result)
        return result


TileFetcher = Callable[[Sequence[TileId]], Mapping[TileId, Sequence[bytes]]]
"""Loads tiles by id; tiles that do not exist are absent from the result."""


class TileNodeReader:
    """A :data:`~ledger.core.merkle.NodeReader` over stored tiles, for a tree of ``size`` leaves.

    Each tile is fetched at most once per instance (instances are meant to be short-lived, e.g.
    one per request). A stored tile may be wider than it was at ``size`` (the log grew since); only
    the entries that existed at ``size`` are used.
    """

    def __init__(self, hasher: TreeHasher, fetch_tiles: TileFetcher, size: int) -> None:
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        self._hasher = hasher
        self._fetch_tiles = fetch_tiles
        self._size = size
        self._cache: dict[TileId, Sequence[bytes]] = {}

    @property
    def size(self) -> int:
        """The tree size this reader serves."""
        return self._size

    def prefetch(self, tiles: Iterable[TileId]) -> None:
        """Fetch, in a single call, those of ``tiles`` that are not cached yet."""
        missing = sorted({tile for tile in tiles if tile not in self._cache})
        if missing:
            fetched = self._fetch_tiles(missing)
            for tile in missing:
                content = fetched.get(tile)
                if content is not None:
                    self._cache[tile] = content[: tile_width(tile, self._size)]

    def _tile(self, tile: TileId) -> Sequence[bytes]:
        if tile not in self._cache:
            self.prefetch([tile])
        content = self._cache.get(tile)
        if content is None:
            raise LookupError(f"tile {tile.level}/{tile.index} is not stored")
        return content

    def read_node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree (``level``, ``index``).

        Raises :class:`LookupError` if the node is not complete at ``size`` or its tile is missing
        or too narrow.
        """
        if level < 0 or index < 0 or (index + 1) << level > self._size:
            raise LookupError(f"node ({level}, {index}) is not complete at tree size {self._size}")
        tile, _, _ = tile_for_node(level, index)
        return node_from_tile(self._hasher, self._tile(tile), level, index)


def _index_path(index: int) -> str:
    """C2SP tlog-tiles encoding of a tile index: 3-digit groups, all but the last ``x``-prefixed."""
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index > 0:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def tile_path(tile: TileId, width: int) -> str:
    """The C2SP tlog-tiles path of a Merkle tree tile, e.g. ``tile/0/x001/x234/067.p/8``.

    ``width`` 256 denotes a full tile; 1..255 a partial one (``.p/<width>`` suffix).
    """
    if tile.level < 0 or tile.index < 0:
        raise ValueError(f"invalid tile {tile}")
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"invalid tile width {width}")
    path = f"tile/{tile.level}/{_index_path(tile.index)}"
    if width < TILE_WIDTH:
        path += f".p/{width}"
    return path


def tiles_for_inclusion(index: int, size: int) -> list[TileId]:
    """The tiles an inclusion proof of ``index`` at ``size`` reads (prefetch them in one query).

    On every tile level, the leaf's ancestors and their siblings share one tile; the right edge
    of the tree lives in the rightmost tiles.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    wanted = {tile for tile, _ in tiles_for_size(size)}
    wanted.add(TileId(0, (size - 1) >> TILE_HEIGHT))  # the last leaf: proves the tree has ``size``
    level = 0
    while (size - 1) >> (TILE_HEIGHT * level):
        wanted.add(TileId(level, index >> (TILE_HEIGHT * (level + 1))))
        level += 1
    return sorted(wanted)
