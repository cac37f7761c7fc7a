"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs, independent of storage.

The tree is the one of RFC 9162 §2.1 (unchanged from RFC 6962 §2.1). Given an ordered list of
``n`` inputs ``D[n] = {d(0), ..., d(n-1)}`` and a hash function ``HASH``:

* ``MTH({}) = HASH()`` — the hash of the empty string;
* ``MTH({d(0)}) = HASH(0x00 || d(0))`` — a leaf hash;
* ``MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` for ``n > 1``, where ``k`` is the
  largest power of two smaller than ``n`` (§2.1.1).

The distinct ``0x00`` / ``0x01`` prefixes separate the leaf and interior-node domains, so that an
interior node can never be presented as a leaf (second-preimage resistance).

Inclusion proofs follow §2.1.3 (``PATH(m, D[n])`` and the verification algorithm of §2.1.3.2);
consistency proofs follow §2.1.4 (``PROOF(m, D[n])`` / ``SUBPROOF(m, D[n], b)`` and the
verification algorithm of §2.1.4.2).

Storage is abstracted as a :data:`NodeReader`: a function returning the hash of a *complete*
(perfect) subtree identified by its height and index. Every range that the RFC recursion needs is a
left-to-right concatenation of O(log n) such subtrees, so proofs cost O(log² n) node reads at most.

The hash function is a parameter (:class:`TreeHasher`): SHA-256 here, SM3 elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ledger.errors import InvalidProof

__all__ = [
    "CompactRange",
    "DigestFn",
    "MemoryTree",
    "NodeReader",
    "TreeHasher",
    "consistency_proof",
    "inclusion_proof",
    "root_from_inclusion_proof",
    "root_hash",
    "sha256_hasher",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

DigestFn = Callable[[bytes], bytes]
"""A hash function: message bytes in, digest bytes out (e.g. SHA-256 or SM3)."""

NodeReader = Callable[[int, int], bytes]
"""``read_node(level, index)``: the hash of the complete subtree of height ``level`` covering the
leaves ``[index << level, (index + 1) << level)``. Height 0 nodes are leaf hashes."""

LEAF_PREFIX = b"\x00"
"""Domain-separation prefix of leaf hashes (RFC 9162 §2.1.1)."""

NODE_PREFIX = b"\x01"
"""Domain-separation prefix of interior node hashes (RFC 9162 §2.1.1)."""


@dataclass(frozen=True)
class TreeHasher:
    """The RFC 9162 §2.1.1 tree hashing operations over a given hash function.

    ``name`` identifies the hash function (e.g. ``"sha256"``, ``"sm3"``); ``digest`` computes it.
    """

    name: str
    digest: DigestFn

    def leaf_hash(self, leaf: bytes) -> bytes:
        """``MTH({d}) = HASH(0x00 || d)``: the hash of a leaf's input data."""
        return self.digest(LEAF_PREFIX + leaf)

    def node_hash(self, left: bytes, right: bytes) -> bytes:
        """``HASH(0x01 || left || right)``: the hash of an interior node."""
        return self.digest(NODE_PREFIX + left + right)

    def empty_root(self) -> bytes:
        """``MTH({}) = HASH()``: the root of the empty tree."""
        return self.digest(b"")

    @property
    def digest_size(self) -> int:
        """The length in bytes of the hash function's output."""
        return len(self.digest(b""))

    def root_of(self, hashes: Sequence[bytes]) -> bytes:
        """The Merkle tree hash over already-hashed leaves (or nodes of equal height).

        Applies the RFC 9162 §2.1.1 split rule (the left subtree holds the largest power of two
        smaller than ``n`` entries); for an empty list returns :meth:`empty_root`. Runs in O(n)
        hash operations without recursion.
        """
        if not hashes:
            return self.empty_root()
        # Right edge of the tree: roots of complete subtrees with strictly decreasing heights.
        stack: list[bytes] = []
        for count, value in enumerate(hashes):
            node = value
            # Merge as many times as there are trailing one bits in ``count``.
            merges = count
            while merges & 1:
                node = self.node_hash(stack.pop(), node)
                merges >>= 1
            stack.append(node)
        return _fold(self, stack)


def sha256_hasher() -> TreeHasher:
    """The RFC 9162 tree hasher over SHA-256."""
    return TreeHasher("sha256", _sha256)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _fold(hasher: TreeHasher, hashes: Sequence[bytes]) -> bytes:
    """Combine complete-subtree roots listed left to right (decreasing heights) right to left."""
    result = hashes[-1]
    for value in reversed(hashes[:-1]):
        result = hasher.node_hash(value, result)
    return result


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``), RFC 9162 §2.1.1 ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def subtree_hash(hasher: TreeHasher, begin: int, end: int, read_node: NodeReader) -> bytes:
    """``MTH(D[begin:end])`` assembled from complete subtrees read with ``read_node``.

    The range is decomposed left to right into maximal aligned power-of-two blocks (one per set
    bit of ``end - begin``, largest first), each read with a single ``read_node`` call, and the
    block roots are folded right to left with :meth:`TreeHasher.node_hash`. This is exact when
    ``begin`` is a multiple of the smallest power of two ``>= end - begin``, which holds for
    ``[0, size)`` and for every range of the RFC 9162 proof recursion (each is ``[s, s + w)`` with
    ``s`` aligned to a power of two ``>= w``). Other ranges raise :class:`ValueError`, because
    their hash would need O(n) reads. Costs at most ``log2(end - begin) + 1`` reads.
    """
    if not 0 <= begin < end:
        raise ValueError(f"invalid subtree range [{begin}, {end})")
    width = end - begin
    alignment = 1 << (width - 1).bit_length()  # smallest power of two >= width
    if begin % alignment:
        raise ValueError(f"subtree range [{begin}, {end}) is not aligned as an RFC 9162 subtree")
    blocks: list[bytes] = []
    position = begin
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            blocks.append(read_node(level, position >> level))
            position += 1 << level
    return _fold(hasher, blocks)


def root_hash(hasher: TreeHasher, size: int, read_node: NodeReader) -> bytes:
    """The tree head ``MTH(D[0:size])``; the empty root for ``size == 0``."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    if size == 0:
        return hasher.empty_root()
    return subtree_hash(hasher, 0, size, read_node)


def inclusion_proof(hasher: TreeHasher, index: int, size: int, read_node: NodeReader) -> list[bytes]:
    """The audit path ``PATH(index, D[0:size])`` of RFC 9162 §2.1.3.1, leaf level first.

    Raises :class:`ValueError` unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    top_down: list[bytes] = []
    start, width = 0, size
    while width > 1:
        k = _split(width)
        if index < start + k:
            top_down.append(subtree_hash(hasher, start + k, start + width, read_node))
            width = k
        else:
            top_down.append(subtree_hash(hasher, start, start + k, read_node))
            start += k
            width -= k
    top_down.reverse()
    return top_down


def consistency_proof(hasher: TreeHasher, old_size: int, new_size: int, read_node: NodeReader) -> list[bytes]:
    """The consistency proof ``PROOF(old_size, D[0:new_size])`` of RFC 9162 §2.1.4.1.

    Implements ``SUBPROOF(m, D[n], b)`` with the ``b`` flag: the root of the final subtree is
    omitted when it is the old tree itself (``old_size`` a power of two). Returns an empty list when
    ``old_size`` is 0 or equal to ``new_size``. Raises :class:`ValueError` unless
    ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"invalid consistency range {old_size} -> {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    top_down: list[bytes] = []
    start, old_width, width, is_old_root = 0, old_size, new_size, True
    while old_width != width:
        k = _split(width)
        if old_width <= k:
            top_down.append(subtree_hash(hasher, start + k, start + width, read_node))
            width = k
        else:
            top_down.append(subtree_hash(hasher, start, start + k, read_node))
            start += k
            old_width -= k
            width -= k
            is_old_root = False
    top_down.reverse()
    if is_old_root:
        return top_down
    return [subtree_hash(hasher, start, start + width, read_node), *top_down]


def _check_hashes(hasher: TreeHasher, values: Sequence[bytes], what: str, *, indexed: bool = True) -> None:
    """Raise InvalidProof unless every value is a digest of the hasher's size."""
    size = hasher.digest_size
    for position, value in enumerate(values):
        if not isinstance(value, bytes) or len(value) != size:
            name = f"{what} element {position}" if indexed else what
            raise InvalidProof(f"{name} is not a {size}-byte {hasher.name} hash")


def _inclusion_proof_length(index: int, size: int) -> int:
    """Length of ``PATH(index, D[0:size])``: inner (below the right border) plus border nodes."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def root_from_inclusion_proof(
    hasher: TreeHasher, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof, computed as in RFC 9162 §2.1.3.2.

    Raises :class:`~ledger.errors.InvalidProof` if the index is out of range, the proof has the
    wrong number of elements, or an element (or the leaf hash) is not a hash of the right size.
    """
    if not 0 <= index < size:
        raise InvalidProof(f"leaf index {index} out of range for tree size {size}")
    expected = _inclusion_proof_length(index, size)
    if len(proof) != expected:
        raise InvalidProof(
            f"inclusion proof has wrong length {len(proof)} for index {index} in tree size {size},"
            f" expected {expected}"
        )
    _check_hashes(hasher, [leaf_hash], "leaf hash", indexed=False)
    _check_hashes(hasher, proof, "inclusion proof")
    fn, sn, result = index, size - 1, leaf_hash
    for element in proof:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise InvalidProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            result = hasher.node_hash(element, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = hasher.node_hash(result, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check
        raise InvalidProof("inclusion proof is too short")
    return result


def verify_inclusion(
    hasher: TreeHasher, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf_hash`` is the leaf at ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2. Returns ``None`` on success and raises
    :class:`~ledger.errors.InvalidProof` saying why otherwise.
    """
    computed = root_from_inclusion_proof(hasher, leaf_hash, index, size, proof)
    if not hmac.compare_digest(computed, root):
        raise InvalidProof(
            f"inclusion proof for index {index} in tree size {size} leads to root {computed.hex()},"
            f" not the expected root {root.hex()}"
        )


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    """Length of ``PROOF(old_size, D[0:new_size])`` for ``0 < old_size < new_size``."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    inner_full = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> inner_full).bit_count()
    seed = 0 if old_size == 1 << shift else 1
    return seed + (inner_full - shift) + border


def verify_consistency(
    hasher: TreeHasher,
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Verify that the tree of ``old_size`` with ``old_root`` is a prefix of the one of ``new_size``.

    RFC 9162 §2.1.4.2. For ``old_size == new_size`` the proof must be empty and the roots equal;
    for ``old_size == 0`` the proof must be empty and ``old_root`` must be the empty-tree root.
    Returns ``None`` on success and raises :class:`~ledger.errors.InvalidProof` saying why
    otherwise.
    """
    if not 0 <= old_size <= new_size:
        raise InvalidProof(f"invalid consistency range {old_size} -> {new_size}")
    if old_size == new_size:
        if proof:
            raise InvalidProof(f"consistency proof between equal sizes {old_size} must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise InvalidProof(f"roots differ for equal tree sizes {old_size}")
        return
    if old_size == 0:
        if proof:
            raise InvalidProof("consistency proof from the empty tree must be empty")
        if not hmac.compare_digest(old_root, hasher.empty_root()):
            raise InvalidProof("old root of a tree of size 0 is not the empty-tree root")
        return
    expected = _consistency_proof_length(old_size, new_size)
    if len(proof) != expected:
        raise InvalidProof(
            f"consistency proof has wrong length {len(proof)} for sizes {old_size} -> {new_size},"
            f" expected {expected}"
        )
    _check_hashes(hasher, proof, "consistency proof")
    path = list(proof)
    # Step 1: if the old tree is a complete subtree, its root is the implied first element.
    if _is_power_of_two(old_size):
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise InvalidProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = hasher.node_hash(element, fr)
            sr = hasher.node_hash(element, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = hasher.node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check
        raise InvalidProof("consistency proof is too short")
    if not hmac.compare_digest(fr, old_root):
        raise InvalidProof(
            f"consistency proof {old_size} -> {new_size} leads to old root {fr.hex()},"
            f" not the expected {old_root.hex()}"
        )
    if not hmac.compare_digest(sr, new_root):
        raise InvalidProof(
            f"consistency proof {old_size} -> {new_size} leads to new root {sr.hex()},"
            f" not the expected {new_root.hex()}"
        )


class CompactRange:
    """A Merkle frontier: the roots of the complete subtrees along the right edge of the tree.

    Holds at most ``log2(size) + 1`` hashes, so a whole log can be streamed through it to obtain
    the tree head at any size without storing the leaves.
    """

    def __init__(self, hasher: TreeHasher) -> None:
        self._hasher = hasher
        self._size = 0
        # Complete-subtree roots, left to right, with strictly decreasing heights.
        self._nodes: list[bytes] = []

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The frontier: complete-subtree roots left to right (one per set bit of ``size``)."""
        return list(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf, given as its leaf hash (``TreeHasher.leaf_hash``)."""
        node = leaf_hash
        merges = self._size
        while merges & 1:
            node = self._hasher.node_hash(self._nodes.pop(), node)
            merges >>= 1
        self._nodes.append(node)
        self._size += 1

    def extend(self, hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for value in hashes:
            self.append(value)

    def root(self) -> bytes:
        """The tree head ``MTH`` over all leaves appended so far."""
        if not self._nodes:
            return self._hasher.empty_root()
        return _fold(self._hasher, self._nodes)


class MemoryTree:
    """A naive in-memory reference tree, for tests and small logs.

    Keeps every leaf hash; :meth:`read_node` recomputes a complete subtree from its leaf hashes
    (cached, since complete subtrees of an append-only tree never change).
    """

    def __init__(self, hasher: TreeHasher) -> None:
        self._hasher = hasher
        self._leaf_hashes: list[bytes] = []
        self._cache: dict[tuple[int, int], bytes] = {}

    @property
    def hasher(self) -> TreeHasher:
        """The tree hasher in use."""
        return self._hasher

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._leaf_hashes)

    @property
    def leaf_hashes(self) -> list[bytes]:
        """A copy of the leaf hashes, in order."""
        return list(self._leaf_hashes)

    def append(self, leaf: bytes) -> int:
        """Append a leaf's input data (hashed with the 0x00 prefix); return its index."""
        return self.append_hash(self._hasher.leaf_hash(leaf))

    def append_hash(self, leaf_hash: bytes) -> int:
        """Append an already-computed leaf hash; return its index."""
        self._leaf_hashes.append(leaf_hash)
        return len(self._leaf_hashes) - 1

    def read_node(self, level: int, index: int) -> bytes:
        """The :data:`NodeReader` of this tree; :class:`LookupError` for incomplete nodes."""
        if level < 0 or index < 0:
            raise LookupError(f"invalid node ({level}, {index})")
        begin, end = index << level, (index + 1) << level
        if end > len(self._leaf_hashes):
            raise LookupError(f"node ({level}, {index}) is not complete at size {self.size}")
        key = (level, index)
        value = self._cache.get(key)
        if value is None:
            value = self._hasher.root_of(self._leaf_hashes[begin:end])
            self._cache[key] = value
        return value

    def root(self, size: int | None = None) -> bytes:
        """The tree head at ``size`` (default: the current size)."""
        return root_hash(self._hasher, self.size if size is None else size, self.read_node)
