"""The SM3 Merkle golden file (tests/vectors/rfc9162_sm3.json) against two independent computations.

The file was generated with ``ledger.core.merkle``; to keep it from being self-referential, every
entry is recomputed here by a deliberately naive recursive transcription of RFC 9162 §2.1
(``MTH``, ``PATH``, ``PROOF``/``SUBPROOF``) over gmssl's pure-Python SM3 (``gmssl.sm3.sm3_hash``,
not the OpenSSL / GmSSL backends ``ledger.core.crypto`` prefers). The ledger core must then
reproduce the file and accept every proof in it. The same file drives the on-chain tests
(tests/contracts/test_onchain_merkle.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from gmssl import sm3 as gmssl_sm3

from ledger.core.crypto import HashAlgorithm
from ledger.core.hashing import tree_hasher
from ledger.core.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.errors import InvalidProof

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
SM3_TREE = VECTORS / "rfc9162_sm3.json"
SHA256_TREE = VECTORS / "rfc6962_sha256.json"


def load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        data: dict[str, Any] = json.load(f)
    return data


DOC = load(SM3_TREE)
LEAVES = tuple(bytes.fromhex(leaf) for leaf in DOC["leaves"])


# --- naive RFC 9162 §2.1 over gmssl's SM3 ------------------------------------------------------


def sm3(data: bytes) -> bytes:
    return bytes.fromhex(gmssl_sm3.sm3_hash(list(data)))


def k_of(n: int) -> int:
    """The largest power of two smaller than n (n > 1), RFC 9162 §2.1.1."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(leaves: tuple[bytes, ...]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1, recursively."""
    n = len(leaves)
    if n == 0:
        return sm3(b"")
    if n == 1:
        return sm3(b"\x00" + leaves[0])
    k = k_of(n)
    return sm3(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = k_of(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m: int, leaves: tuple[bytes, ...], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = k_of(n)
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def proof(m: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (0 < m < n), and [] for m == n."""
    if m == len(leaves):
        return []
    return subproof(m, leaves, True)


def hexes(values: Sequence[bytes]) -> list[str]:
    return [value.hex() for value in values]


# --- the file against the naive implementation ---------------------------------------------------


def test_file_structure_matches_the_sha256_vectors() -> None:
    sha = load(SHA256_TREE)
    assert DOC["hash"] == "sm3"
    assert DOC["leaves"] == sha["leaves"]
    assert list(DOC) == list(sha)
    assert [(e["index"], e["size"]) for e in DOC["inclusion"]] == [
        (e["index"], e["size"]) for e in sha["inclusion"]
    ]
    assert [(e["old_size"], e["new_size"]) for e in DOC["consistency"]] == [
        (e["old_size"], e["new_size"]) for e in sha["consistency"]
    ]
    # Every pair is present.
    n = len(LEAVES)
    assert len(DOC["inclusion"]) == n * (n + 1) // 2
    assert len(DOC["consistency"]) == n * (n + 1) // 2


def test_gmssl_sm3_is_the_standard_sm3() -> None:
    # GB/T 32905-2016 Appendix A, example 1; guards the reference against a broken gmssl.
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_leaf_hashes_roots_and_empty_root_naive() -> None:
    assert DOC["empty_root"] == mth(()).hex()
    assert DOC["leaf_hashes"] == [mth((leaf,)).hex() for leaf in LEAVES]
    assert DOC["roots"] == [{"size": n, "root": mth(LEAVES[:n]).hex()} for n in range(1, len(LEAVES) + 1)]


@pytest.mark.parametrize("entry", DOC["inclusion"], ids=lambda e: f"{e['index']}-{e['size']}")
def test_inclusion_entry_naive(entry: dict[str, Any]) -> None:
    leaves = LEAVES[: entry["size"]]
    assert entry["leaf_hash"] == mth((LEAVES[entry["index"]],)).hex()
    assert entry["root"] == mth(leaves).hex()
    assert entry["proof"] == hexes(path(entry["index"], leaves))


@pytest.mark.parametrize("entry", DOC["consistency"], ids=lambda e: f"{e['old_size']}-{e['new_size']}")
def test_consistency_entry_naive(entry: dict[str, Any]) -> None:
    assert entry["old_root"] == mth(LEAVES[: entry["old_size"]]).hex()
    assert entry["new_root"] == mth(LEAVES[: entry["new_size"]]).hex()
    assert entry["proof"] == hexes(proof(entry["old_size"], LEAVES[: entry["new_size"]]))


# --- the ledger core against the file ------------------------------------------------------------

H = tree_hasher(HashAlgorithm.SM3)


def core_tree() -> MemoryTree:
    tree = MemoryTree(H)
    for leaf in LEAVES:
        tree.append(leaf)
    return tree


def test_core_reproduces_the_file() -> None:
    tree = core_tree()
    assert H.empty_root().hex() == DOC["empty_root"]
    assert hexes(tree.leaf_hashes) == DOC["leaf_hashes"]
    assert [{"size": r["size"], "root": tree.root(r["size"]).hex()} for r in DOC["roots"]] == DOC["roots"]
    for e in DOC["inclusion"]:
        assert hexes(inclusion_proof(H, e["index"], e["size"], tree.read_node)) == e["proof"]
    for e in DOC["consistency"]:
        assert hexes(consistency_proof(H, e["old_size"], e["new_size"], tree.read_node)) == e["proof"]


def test_core_verifies_every_proof_and_rejects_tampering() -> None:
    for e in DOC["inclusion"]:
        leaf_hash, root = bytes.fromhex(e["leaf_hash"]), bytes.fromhex(e["root"])
        proof_bytes = [bytes.fromhex(p) for p in e["proof"]]
        verify_inclusion(H, leaf_hash, e["index"], e["size"], proof_bytes, root)
        with pytest.raises(InvalidProof):
            verify_inclusion(H, leaf_hash, e["index"], e["size"], proof_bytes, bytes(32))
    for e in DOC["consistency"]:
        old_root, new_root = bytes.fromhex(e["old_root"]), bytes.fromhex(e["new_root"])
        proof_bytes = [bytes.fromhex(p) for p in e["proof"]]
        verify_consistency(H, e["old_size"], e["new_size"], old_root, new_root, proof_bytes)
        with pytest.raises(InvalidProof):
            verify_consistency(H, e["old_size"], e["new_size"], old_root, bytes(32), proof_bytes)
