"""Tests of ledger.core.merkle: RFC 6962/9162 known answers, pymerkle as an oracle, tampering."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pymerkle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core.merkle import (
    CompactRange,
    MemoryTree,
    NodeReader,
    TreeHasher,
    consistency_proof,
    inclusion_proof,
    root_from_inclusion_proof,
    root_hash,
    sha256_hasher,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.errors import InvalidProof

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "rfc6962_sha256.json"

# The roots after each of the eight CT test leaves, as published in certificate-transparency
# merkle_tree_test.cc (and copied into trillian / certificate-transparency-go). Guards the golden file.
PUBLISHED_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

H = sha256_hasher()

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def load_vectors() -> dict[str, Any]:
    with VECTORS.open() as f:
        data: dict[str, Any] = json.load(f)
    return data


def unhex(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def vector_tree() -> tuple[MemoryTree, pymerkle.InmemoryTree]:
    leaves = unhex(load_vectors()["leaves"])
    ours = MemoryTree(H)
    oracle = pymerkle.InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        ours.append(leaf)
        oracle.append_entry(leaf)
    return ours, oracle


# --- pymerkle as an oracle -------------------------------------------------------------------------


def oracle_inclusion(oracle: pymerkle.InmemoryTree, index: int, size: int) -> list[bytes]:
    """pymerkle's inclusion proof in RFC 9162 form.

    pymerkle's path is ``[leaf hash, sibling, sibling, ...]`` bottom-up; the RFC audit path is the
    same list without the leading leaf hash. pymerkle indices count from one.
    """
    proof = oracle.prove_inclusion(index + 1, size)
    assert proof.path[0] == oracle.get_leaf(index + 1)
    return list(proof.path[1:])


def oracle_consistency(oracle: pymerkle.InmemoryTree, old: int, new: int) -> list[bytes]:
    """pymerkle's consistency proof converted to the RFC 9162 ``PROOF(m, D[n])`` form.

    pymerkle's path is ``[base, sibling, ...]`` bottom-up with a ``subset`` mask marking the
    hashes that fold into the old root. Its split differs from RFC 9162 in one case: when the old
    size equals the left subtree width ``k`` it descends to the *right* (down to the first leaf of
    the right subtree) where RFC 9162 stops at the left subtree. Then the entries below the first
    masked one (all mask 0) fold left-to-right into the root of that right subtree, which is the
    element RFC 9162 uses. Finally RFC 9162 omits the seed when the old tree is itself a complete
    subtree (old size a power of two: the ``b`` flag stays true).
    """
    proof = oracle.prove_consistency(old, new)
    path, subset, rule = list(proof.path), list(proof.subset), list(proof.rule)
    if old == new:  # pymerkle gives the root itself; RFC 9162 gives an empty proof
        assert path == [oracle.get_root(old)]
        return []
    if subset[0] == 0:
        first = subset.index(1)
        folded = path[0]
        for bit, value in zip(rule[:first], path[1:first], strict=False):
            assert bit == 0
            folded = H.node_hash(folded, value)
        path = [path[first], folded, *path[first + 1 :]]
    if old & (old - 1) == 0:
        path = path[1:]
    return path


def test_pymerkle_uses_rfc9162_domain_separation() -> None:
    oracle = pymerkle.InmemoryTree(algorithm="sha256")
    assert oracle.security is True
    assert (oracle.leaf_prefix, oracle.node_prefix) == (b"\x00", b"\x01")
    oracle.append_entry(b"abc")
    oracle.append_entry(b"def")
    left = hashlib.sha256(b"\x00abc").digest()
    right = hashlib.sha256(b"\x00def").digest()
    assert oracle.get_leaf(1) == left == H.leaf_hash(b"abc")
    assert oracle.get_root() == hashlib.sha256(b"\x01" + left + right).digest() == H.node_hash(left, right)
    # disable_security drops the prefixes: that tree is *not* RFC 9162 and must differ from ours.
    insecure = pymerkle.InmemoryTree(algorithm="sha256", disable_security=True)
    insecure.append_entry(b"abc")
    assert insecure.get_leaf(1) == hashlib.sha256(b"abc").digest() != H.leaf_hash(b"abc")
    assert pymerkle.InmemoryTree(algorithm="sha256").get_root(0) == H.empty_root()


# --- known-answer vectors ----------------------------------------------------------------------


def test_vector_file_holds_published_roots() -> None:
    data = load_vectors()
    assert data["hash"] == "sha256"
    assert [r["root"] for r in data["roots"]] == PUBLISHED_ROOTS
    assert [r["size"] for r in data["roots"]] == list(range(1, 9))
    assert data["empty_root"] == hashlib.sha256(b"").hexdigest()
    published_inclusion = {(v["index"], v["size"]) for v in data["inclusion"] if v["published"]}
    published_consistency = {(v["old_size"], v["new_size"]) for v in data["consistency"] if v["published"]}
    assert published_inclusion == {(0, 1), (0, 8), (5, 8), (2, 3), (1, 5)}
    assert published_consistency == {(1, 1), (1, 8), (6, 8), (2, 5), (6, 7)}


def test_vector_leaf_hashes_and_roots() -> None:
    data = load_vectors()
    ours, oracle = vector_tree()
    assert [h.hex() for h in ours.leaf_hashes] == data["leaf_hashes"]
    assert [H.leaf_hash(leaf).hex() for leaf in unhex(data["leaves"])] == data["leaf_hashes"]
    assert H.empty_root().hex() == data["empty_root"] == root_hash(H, 0, ours.read_node).hex()
    frontier = CompactRange(H)
    assert frontier.root().hex() == data["empty_root"]
    for entry, leaf_hash in zip(data["roots"], ours.leaf_hashes, strict=True):
        frontier.append(leaf_hash)
        size, expected = entry["size"], bytes.fromhex(entry["root"])
        assert root_hash(H, size, ours.read_node) == expected
        assert H.root_of(ours.leaf_hashes[:size]) == expected
        assert frontier.root() == expected
        assert oracle.get_root(size) == expected


def test_vector_inclusion_proofs() -> None:
    data = load_vectors()
    ours, oracle = vector_tree()
    assert len(data["inclusion"]) == 36  # every (index, size) with size <= 8
    for v in data["inclusion"]:
        index, size, proof = v["index"], v["size"], unhex(v["proof"])
        root, leaf_hash = bytes.fromhex(v["root"]), bytes.fromhex(v["leaf_hash"])
        assert root.hex() == PUBLISHED_ROOTS[size - 1]
        assert leaf_hash == ours.leaf_hashes[index]
        assert inclusion_proof(H, index, size, ours.read_node) == proof
        assert oracle_inclusion(oracle, index, size) == proof
        verify_inclusion(H, leaf_hash, index, size, proof, root)
        assert root_from_inclusion_proof(H, leaf_hash, index, size, proof) == root


def test_vector_consistency_proofs() -> None:
    data = load_vectors()
    ours, oracle = vector_tree()
    assert len(data["consistency"]) == 36  # every 1 <= old <= new <= 8
    for v in data["consistency"]:
        old, new, proof = v["old_size"], v["new_size"], unhex(v["proof"])
        old_root, new_root = bytes.fromhex(v["old_root"]), bytes.fromhex(v["new_root"])
        assert (old_root.hex(), new_root.hex()) == (PUBLISHED_ROOTS[old - 1], PUBLISHED_ROOTS[new - 1])
        assert consistency_proof(H, old, new, ours.read_node) == proof
        assert oracle_consistency(oracle, old, new) == proof
        verify_consistency(H, old, new, old_root, new_root, proof)


# --- properties against pymerkle -----------------------------------------------------------------


def make_leaves(size: int, seed: bytes) -> list[bytes]:
    """``size`` pseudo-random leaves of varying length, pairwise distinct (the index is a prefix),
    so that a proof cannot verify at two positions."""
    leaves = []
    for i in range(size):
        prefix = i.to_bytes(4, "big")
        leaves.append(prefix + hashlib.sha256(seed + prefix).digest()[: (i * 7 + len(seed)) % 33])
    return leaves


tree_sizes = st.one_of(
    st.integers(1, 300), st.sampled_from([1, 2, 3, 4, 8, 31, 32, 33, 64, 128, 255, 256, 257])
)
leaf_lists = st.builds(make_leaves, tree_sizes, st.binary(max_size=8))


def build(leaves: list[bytes]) -> tuple[MemoryTree, pymerkle.InmemoryTree]:
    ours = MemoryTree(H)
    oracle = pymerkle.InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        ours.append(leaf)
        oracle.append_entry(leaf)
    return ours, oracle


def flipped(proof: list[bytes], position: int) -> list[bytes]:
    tampered = list(proof)
    tampered[position] = bytes([tampered[position][0] ^ 0x01]) + tampered[position][1:]
    return tampered


@PROPERTY_SETTINGS
@given(leaves=leaf_lists, data=st.data())
def test_roots_and_inclusion_match_pymerkle(leaves: list[bytes], data: st.DataObject) -> None:
    ours, oracle = build(leaves)
    n = len(leaves)
    frontier = CompactRange(H)
    for size in range(1, n + 1):
        frontier.append(ours.leaf_hashes[size - 1])
        assert len(frontier.hashes) == size.bit_count()
    assert frontier.size == n
    assert frontier.root() == oracle.get_root() == root_hash(H, n, ours.read_node)
    for size in data.draw(st.lists(st.integers(1, n), min_size=1, max_size=5), label="sizes"):
        root = oracle.get_root(size)
        assert root_hash(H, size, ours.read_node) == root
        assert H.root_of(ours.leaf_hashes[:size]) == root
        index = data.draw(st.integers(0, size - 1), label="index")
        proof = inclusion_proof(H, index, size, ours.read_node)
        assert proof == oracle_inclusion(oracle, index, size)
        leaf_hash = ours.leaf_hashes[index]
        verify_inclusion(H, leaf_hash, index, size, proof, root)

        # Tampering: every one of these must be rejected.
        for position in range(len(proof)):
            with pytest.raises(InvalidProof):
                verify_inclusion(H, leaf_hash, index, size, flipped(proof, position), root)
        if proof:
            with pytest.raises(InvalidProof, match="wrong length"):
                verify_inclusion(H, leaf_hash, index, size, proof[:-1], root)
        with pytest.raises(InvalidProof, match="wrong length"):
            verify_inclusion(H, leaf_hash, index, size, [*proof, root], root)
        for wrong_index in {index - 1, index + 1, index ^ 1, index ^ 2} - {index}:
            if 0 <= wrong_index < size:
                with pytest.raises(InvalidProof):
                    verify_inclusion(H, leaf_hash, wrong_index, size, proof, root)
        # Doubling or halving the size always changes the proof shape. (A nearby size can share
        # the shape of the path, e.g. index 0 at sizes 3 and 4; the checkpoint binds size to root.)
        with pytest.raises(InvalidProof):
            verify_inclusion(H, leaf_hash, index, size * 2, proof, root)
        if index < size // 2:
            with pytest.raises(InvalidProof):
                verify_inclusion(H, leaf_hash, index, size // 2, proof, root)
        with pytest.raises(InvalidProof, match="out of range"):
            verify_inclusion(H, leaf_hash, size, size, proof, root)
        with pytest.raises(InvalidProof):
            verify_inclusion(H, H.leaf_hash(b"not a leaf"), index, size, proof, root)
        if size > 1:
            with pytest.raises(InvalidProof, match="not the expected root"):
                verify_inclusion(H, leaf_hash, index, size, proof, oracle.get_root(size - 1))


@PROPERTY_SETTINGS
@given(leaves=leaf_lists, data=st.data())
def test_consistency_matches_pymerkle(leaves: list[bytes], data: st.DataObject) -> None:
    ours, oracle = build(leaves)
    n = len(leaves)
    for _ in range(3):
        new = data.draw(st.integers(1, n), label="new")
        old = data.draw(st.integers(1, new), label="old")
        old_root, new_root = oracle.get_root(old), oracle.get_root(new)
        proof = consistency_proof(H, old, new, ours.read_node)
        assert proof == oracle_consistency(oracle, old, new)
        verify_consistency(H, old, new, old_root, new_root, proof)
        # pymerkle accepts its own proof of the same claim.
        oracle.prove_consistency(old, new).verify(old_root, new_root, prior_size=old, later_size=new)
        if old == new:
            assert proof == []
            continue

        for position in range(len(proof)):
            with pytest.raises(InvalidProof):
                verify_consistency(H, old, new, old_root, new_root, flipped(proof, position))
        with pytest.raises(InvalidProof, match="wrong length"):
            verify_consistency(H, old, new, old_root, new_root, proof[:-1])
        with pytest.raises(InvalidProof, match="wrong length"):
            verify_consistency(H, old, new, old_root, new_root, [*proof, new_root])
        with pytest.raises(InvalidProof):
            verify_consistency(H, old, new, new_root, old_root, proof)
        with pytest.raises(InvalidProof):
            verify_consistency(H, old, new, old_root, H.leaf_hash(b"x"), proof)
        for wrong_old in (old - 1, old + 1, old ^ 2):
            if 0 < wrong_old < new:
                with pytest.raises(InvalidProof):
                    verify_consistency(H, wrong_old, new, old_root, new_root, proof)
        with pytest.raises(InvalidProof):
            verify_consistency(H, old, new * 2, old_root, new_root, proof)


def test_consistency_edge_cases() -> None:
    ours, _ = vector_tree()
    r3, r5 = ours.root(3), ours.root(5)
    verify_consistency(H, 3, 3, r3, r3, [])
    verify_consistency(H, 0, 0, H.empty_root(), H.empty_root(), [])
    verify_consistency(H, 0, 5, H.empty_root(), r5, [])
    with pytest.raises(InvalidProof, match="must be empty"):
        verify_consistency(H, 3, 3, r3, r3, [r3])
    with pytest.raises(InvalidProof, match="roots differ"):
        verify_consistency(H, 3, 3, r3, r5, [])
    with pytest.raises(InvalidProof, match="must be empty"):
        verify_consistency(H, 0, 5, H.empty_root(), r5, [r5])
    with pytest.raises(InvalidProof, match="empty-tree root"):
        verify_consistency(H, 0, 5, r3, r5, [])
    with pytest.raises(InvalidProof, match="invalid consistency range"):
        verify_consistency(H, 5, 3, r5, r3, [])
    with pytest.raises(InvalidProof, match="wrong length"):
        verify_consistency(H, 3, 5, r3, r5, [])
    with pytest.raises(InvalidProof, match="not a 32-byte"):
        verify_consistency(H, 3, 5, r3, r5, [b"short"] * 4)
    assert consistency_proof(H, 0, 5, ours.read_node) == []
    assert consistency_proof(H, 5, 5, ours.read_node) == []


def test_inclusion_edge_cases() -> None:
    ours, _ = vector_tree()
    leaf = ours.leaf_hashes[0]
    verify_inclusion(H, leaf, 0, 1, [], leaf)  # a one-leaf tree's root is its leaf hash
    with pytest.raises(InvalidProof, match="out of range"):
        verify_inclusion(H, leaf, 0, 0, [], H.empty_root())
    with pytest.raises(InvalidProof, match="out of range"):
        verify_inclusion(H, leaf, -1, 4, [], ours.root(4))
    with pytest.raises(InvalidProof, match="leaf hash is not a 32-byte"):
        verify_inclusion(H, b"", 0, 1, [], leaf)
    with pytest.raises(InvalidProof, match="inclusion proof element 1 is not a 32-byte"):
        verify_inclusion(H, leaf, 0, 4, [leaf, b"short"], ours.root(4))
    with pytest.raises(InvalidProof, match="not the expected root"):
        verify_inclusion(H, leaf, 0, 1, [], H.empty_root())


def test_out_of_range_arguments_raise_value_error() -> None:
    ours, _ = vector_tree()
    for index, size in [(0, 0), (3, 3), (-1, 3), (9, 8)]:
        with pytest.raises(ValueError):
            inclusion_proof(H, index, size, ours.read_node)
    for old, new in [(-1, 3), (4, 3)]:
        with pytest.raises(ValueError):
            consistency_proof(H, old, new, ours.read_node)
    with pytest.raises(ValueError):
        root_hash(H, -1, ours.read_node)
    with pytest.raises(ValueError):
        subtree_hash(H, 3, 3, ours.read_node)
    with pytest.raises(ValueError, match="not aligned"):
        subtree_hash(H, 1, 3, ours.read_node)  # not a range of the RFC recursion
    with pytest.raises(LookupError):
        ours.read_node(3, 1)  # leaves 8..15 do not exist


def test_subtree_hash_matches_naive_mth_on_rfc_ranges() -> None:
    tree = MemoryTree(H)
    for i in range(100):
        tree.append(i.to_bytes(2, "big"))
    leaf_hashes = tree.leaf_hashes

    def ranges(start: int, width: int) -> list[tuple[int, int]]:
        """All ranges of the RFC 9162 MTH recursion over D[start:start + width]."""
        if width == 1:
            return [(start, start + 1)]
        k = 1 << ((width - 1).bit_length() - 1)
        return [(start, start + width), *ranges(start, k), *ranges(start + k, width - k)]

    for size in (1, 2, 3, 7, 64, 65, 99, 100):
        for begin, end in ranges(0, size):
            assert subtree_hash(H, begin, end, tree.read_node) == H.root_of(leaf_hashes[begin:end])


def counting_reader(calls: list[tuple[int, int]]) -> NodeReader:
    """A reader of fake node hashes that records its calls (only the number of reads matters)."""

    def read_node(level: int, index: int) -> bytes:
        calls.append((level, index))
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    return read_node


@pytest.mark.parametrize("size", [2**20, 2**20 + 1, 1_000_003, 2**31 - 1, 3 * 2**40 + 12345])
def test_proofs_read_polylog_nodes(size: int) -> None:
    bound = size.bit_length() ** 2
    for index in (0, size // 3, size - 1):
        calls: list[tuple[int, int]] = []
        proof = inclusion_proof(H, index, size, counting_reader(calls))
        assert len(proof) <= size.bit_length()
        assert len(calls) <= bound
    for old in (1, size // 2 + 1, size - 1):
        calls = []
        consistency_proof(H, old, size, counting_reader(calls))
        assert len(calls) <= bound
    calls = []
    root_hash(H, size, counting_reader(calls))
    assert len(calls) == size.bit_count()


def test_second_preimage_interior_node_as_leaf_does_not_verify() -> None:
    """An interior node presented as leaf data must not verify (0x00/0x01 domain separation)."""
    tree = MemoryTree(H)
    for leaf in (b"a", b"b", b"c", b"d"):
        tree.append(leaf)
    root = tree.root()
    l0, l1, l2, l3 = tree.leaf_hashes
    n01, n23 = H.node_hash(l0, l1), H.node_hash(l2, l3)
    assert root == H.node_hash(n01, n23)

    # Claim "leaf data n01 || n23 is the only leaf of a 1-leaf tree with this root".
    with pytest.raises(InvalidProof):
        verify_inclusion(H, H.leaf_hash(n01 + n23), 0, 1, [], root)
    # Claim "leaf data l0 || l1 is leaf 0 of a 2-leaf tree with this root", with n23 as its path.
    with pytest.raises(InvalidProof):
        verify_inclusion(H, H.leaf_hash(l0 + l1), 0, 2, [n23], root)
    # Likewise for the right node.
    with pytest.raises(InvalidProof):
        verify_inclusion(H, H.leaf_hash(l2 + l3), 1, 2, [n01], root)

    # Without domain separation (plain SHA-256 of the concatenation) the same forgery succeeds:
    def plain(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    p0, p1, p2, p3 = (plain(x) for x in (b"a", b"b", b"c", b"d"))
    p01, p23 = plain(p0 + p1), plain(p2 + p3)
    plain_root = plain(p01 + p23)
    forged_leaf = p01 + p23  # interior nodes serialised as one leaf
    assert plain(forged_leaf) == plain_root  # a 1-leaf tree with the 4-leaf tree's root
    assert H.leaf_hash(n01 + n23) != root  # impossible with the prefixes


def test_other_digests_are_accepted() -> None:
    def blake(data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=16).digest()

    hasher = TreeHasher("blake2b-128", blake)
    assert hasher.digest_size == 16
    tree = MemoryTree(hasher)
    for i in range(13):
        tree.append(bytes([i]))
    root = tree.root()
    for index in range(13):
        proof = inclusion_proof(hasher, index, 13, tree.read_node)
        verify_inclusion(hasher, tree.leaf_hashes[index], index, 13, proof, root)
    for old in range(1, 14):
        proof = consistency_proof(hasher, old, 13, tree.read_node)
        verify_consistency(hasher, old, 13, tree.root(old), root, proof)
    with pytest.raises(InvalidProof, match="16-byte"):
        verify_inclusion(hasher, H.leaf_hash(b"\x00"), 0, 1, [], root)


def test_compact_range_extend_and_root_of() -> None:
    tree = MemoryTree(H)
    frontier = CompactRange(H)
    chunks: list[Callable[[int], bytes]] = [lambda i: i.to_bytes(3, "big"), lambda i: b"x" * (i % 7)]
    for size in range(0, 70):
        leaf = chunks[size % 2](size)
        assert frontier.root() == tree.root() == H.root_of(tree.leaf_hashes)
        tree.append(leaf)
        frontier.extend([H.leaf_hash(leaf)])
    assert frontier.size == tree.size == 70
    assert frontier.hashes == [tree.read_node(6, 0), tree.read_node(2, 16), tree.read_node(1, 34)]
