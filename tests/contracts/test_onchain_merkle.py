"""On-chain RFC 9162 hashing and proof checking, and SM3 in Solidity, against the shared vectors.

The golden files are the ones the Python core is tested with: tests/vectors/rfc6962_sha256.json
(Certificate Transparency's leaves), tests/vectors/rfc9162_sm3.json (the same leaves over SM3) and
tests/vectors/sm3.json (GB/T 32905 known answers). Every entry is checked on chain, with SM3 both
in Solidity and through the precompile stand-in; tampered proofs must yield false, not revert.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.hashing import tree_hasher
from tests.contracts.conftest import deploy_registry
from tests.contracts.support import (
    ALG_IDS,
    HASH_SHA256,
    HASH_SM3,
    Chain,
    anchor_call,
    inclusion,
    leaf_bytes,
    make_tree,
    revert_of,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TREE_FILES = {HashAlgorithm.SHA256: "rfc6962_sha256.json", HashAlgorithm.SM3: "rfc9162_sm3.json"}
SM3 = digest_function(HashAlgorithm.SM3)
LOG = b"\x33" * 32


def load(name: str) -> dict[str, Any]:
    with (VECTORS / name).open() as f:
        data: dict[str, Any] = json.load(f)
    return data


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def flip(value: bytes, bit: int = 0) -> bytes:
    """``value`` with one bit flipped."""
    return value[:-1] + bytes([value[-1] ^ (1 << bit)]) if bit < 8 else bytes([value[0] ^ 1]) + value[1:]


@pytest.fixture(scope="module")
def library_registry(chain: Chain) -> Contract:
    """A registry computing SM3 in Solidity, for view calls only (shared by the module)."""
    return deploy_registry(chain)


@pytest.fixture(scope="module")
def precompiled_registry(chain: Chain) -> Contract:
    """A registry obtaining SM3 from the precompile stand-in, for view calls only."""
    return deploy_registry(chain, chain.deploy("Sm3Precompile").address)


@pytest.fixture(params=["library", "precompile"])
def verifier(chain: Chain, request: pytest.FixtureRequest) -> Contract:
    """Each SM3 path in turn."""
    name = "library_registry" if request.param == "library" else "precompiled_registry"
    registry: Contract = request.getfixturevalue(name)
    return registry


# --- SM3 itself ----------------------------------------------------------------------------------


def test_sm3_known_answers(verifier: Contract) -> None:
    for vector in load("sm3.json")["vectors"]:
        message = bytes.fromhex(vector["message_hex"])
        assert verifier.functions.sm3(message).call().hex() == vector["digest"], vector["source"]


def test_sm3_block_boundaries(library_registry: Contract) -> None:
    # Lengths around the padding edges (55/56 bytes: one or two final blocks) and several blocks.
    for length in (1, 31, 32, 33, 54, 55, 56, 57, 63, 64, 65, 119, 120, 128, 129, 200, 513):
        message = bytes((7 * i + length) % 256 for i in range(length))
        assert library_registry.functions.sm3(message).call() == SM3(message), length


PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(message=st.binary(min_size=0, max_size=300))
def test_sm3_random_messages(
    library_registry: Contract, precompiled_registry: Contract, message: bytes
) -> None:
    expected = SM3(message)
    assert library_registry.functions.sm3(message).call() == expected
    assert precompiled_registry.functions.sm3(message).call() == expected


# --- the golden tree vectors ---------------------------------------------------------------------


Checked = list[tuple[Contract, int]]
"""(registry, stride): check every ``stride``-th vector entry with that registry."""

# py-evm runs SM3 at about 2M gas/s: on the embedded chain the precompile path (which computes the
# same library SM3 behind an extra call) is checked on every third entry; on the devnet, on all.
EMBEDDED_PRECOMPILE_STRIDE = 3


@pytest.fixture
def registries(
    chain: Chain, library_registry: Contract, precompiled_registry: Contract
) -> dict[HashAlgorithm, Checked]:
    """The registries to check each algorithm with: SM3 through both SM3 paths."""
    stride = EMBEDDED_PRECOMPILE_STRIDE if chain.name == "embedded" else 1
    return {
        HashAlgorithm.SHA256: [(library_registry, 1)],
        HashAlgorithm.SM3: [(library_registry, 1), (precompiled_registry, stride)],
    }


@pytest.mark.parametrize("alg", list(TREE_FILES))
def test_leaf_hashes_and_empty_root(alg: HashAlgorithm, registries: dict[HashAlgorithm, Checked]) -> None:
    doc = load(TREE_FILES[alg])
    for registry, _ in registries[alg]:
        f = registry.functions
        for leaf, expected in zip(unhex(doc["leaves"]), doc["leaf_hashes"], strict=True):
            assert f.hashLeaf(ALG_IDS[alg], leaf).call().hex() == expected
        # The empty root is the one an old size 0 must present.
        empty = bytes.fromhex(doc["empty_root"])
        assert f.verifyConsistencyProof(ALG_IDS[alg], 0, 3, empty, bytes(32), []).call()
        assert not f.verifyConsistencyProof(ALG_IDS[alg], 0, 3, bytes(32), bytes(32), []).call()


@pytest.mark.parametrize("alg", list(TREE_FILES))
def test_inclusion_vectors(alg: HashAlgorithm, registries: dict[HashAlgorithm, Checked]) -> None:
    doc = load(TREE_FILES[alg])
    alg_id = ALG_IDS[alg]
    for registry, stride in registries[alg]:
        verify = registry.functions.verifyInclusionProof
        for n, e in enumerate(doc["inclusion"]):
            if n % stride:
                continue
            index, size = e["index"], e["size"]
            leaf_hash, root, proof = (
                bytes.fromhex(e["leaf_hash"]),
                bytes.fromhex(e["root"]),
                unhex(e["proof"]),
            )
            assert verify(alg_id, index, size, leaf_hash, proof, root).call(), (index, size)
            # One tampering per entry, rotating through the kinds.
            kind = n % 4
            if kind == 0 and proof:
                bad = [*proof[:-1], flip(proof[-1], n % 9)]
                assert not verify(alg_id, index, size, leaf_hash, bad, root).call()
            elif kind == 1:
                assert not verify(alg_id, index, size, flip(leaf_hash, n % 9), proof, root).call()
            elif kind == 2:
                other = (index + 1) % size if size > 1 else 1
                assert not verify(alg_id, other, size, leaf_hash, proof, root).call()
            else:
                assert not verify(alg_id, index, size, leaf_hash, [*proof, root], root).call()
        assert not verify(alg_id, 8, 8, bytes(32), [], bytes(32)).call()  # index out of range


@pytest.mark.parametrize("alg", list(TREE_FILES))
def test_consistency_vectors(alg: HashAlgorithm, registries: dict[HashAlgorithm, Checked]) -> None:
    doc = load(TREE_FILES[alg])
    alg_id = ALG_IDS[alg]
    for registry, stride in registries[alg]:
        verify = registry.functions.verifyConsistencyProof
        for n, e in enumerate(doc["consistency"]):
            if n % stride:
                continue
            old, new = e["old_size"], e["new_size"]
            old_root, new_root, proof = (
                bytes.fromhex(e["old_root"]),
                bytes.fromhex(e["new_root"]),
                unhex(e["proof"]),
            )
            assert verify(alg_id, old, new, old_root, new_root, proof).call(), (old, new)
            kind = n % 4
            if kind == 0 and proof:
                bad = [flip(proof[0], n % 9), *proof[1:]]
                assert not verify(alg_id, old, new, old_root, new_root, bad).call()
            elif kind == 1:
                assert not verify(alg_id, old, new, flip(old_root), new_root, proof).call()
            elif kind == 2:
                assert not verify(alg_id, old, new, old_root, flip(new_root), proof).call()
            else:
                assert not verify(alg_id, old, new, old_root, new_root, [*proof, new_root]).call()
            if old < new:
                assert not verify(alg_id, new, old, new_root, old_root, proof).call()  # shrinking
                assert not verify(alg_id, old, new, old_root, new_root, proof[:-1]).call()


def test_unknown_hash_algorithm_reverts(library_registry: Contract) -> None:
    f = library_registry.functions
    assert revert_of(f.hashLeaf(3, b"x")) == ("UnknownHashAlg", (3,))
    assert revert_of(f.verifyInclusionProof(0, 0, 1, bytes(32), [], bytes(32))) == ("UnknownHashAlg", (0,))
    assert revert_of(f.verifyConsistencyProof(9, 1, 2, bytes(32), bytes(32), [])) == ("UnknownHashAlg", (9,))


@pytest.mark.parametrize("alg", list(TREE_FILES))
def test_second_preimage_interior_node_as_leaf(alg: HashAlgorithm, library_registry: Contract) -> None:
    # In the tree of four leaves, the level-1 nodes n01, n23 form a "tree of two": presenting
    # n01's children (l0 || l1) as a leaf must not verify, thanks to the 0x00 / 0x01 prefixes.
    tree = make_tree(alg, 4)
    hasher = tree_hasher(alg)
    l0, l1, l2, l3 = tree.leaf_hashes
    n23 = hasher.node_hash(l2, l3)
    assert hasher.node_hash(hasher.node_hash(l0, l1), n23) == tree.root()
    f = library_registry.functions
    fake_leaf_hash = f.hashLeaf(ALG_IDS[alg], l0 + l1).call()
    assert not f.verifyInclusionProof(ALG_IDS[alg], 0, 2, fake_leaf_hash, [n23], tree.root()).call()
    # ... while the interior node itself, supplied as a hash, is (by design) what the proof checks.
    assert f.verifyInclusionProof(ALG_IDS[alg], 0, 2, hasher.node_hash(l0, l1), [n23], tree.root()).call()


# --- receipts against anchored checkpoints -------------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "sm3_path"),
    [(HashAlgorithm.SHA256, "library"), (HashAlgorithm.SM3, "library"), (HashAlgorithm.SM3, "precompile")],
)
def test_verify_inclusion_against_anchored_checkpoint(
    chain: Chain, alpha: str, alg: HashAlgorithm, sm3_path: str, request: pytest.FixtureRequest
) -> None:
    registry: Contract = request.getfixturevalue(
        "registry" if sm3_path == "library" else "precompile_registry"
    )
    tree = make_tree(alg, 13)
    chain.ok(anchor_call(registry, LOG, alg, tree, 5, None), alpha)
    chain.ok(anchor_call(registry, LOG, alg, tree, 13, 5), alpha)
    verify = registry.functions.verifyInclusion
    for size in (5, 13):
        for index in range(size):
            assert verify(LOG, size, index, leaf_bytes(index), inclusion(tree, index, size)).call(), (
                index,
                size,
            )
    proof = inclusion(tree, 6, 13)
    assert not verify(LOG, 13, 6, leaf_bytes(6) + b"!", proof).call()  # altered record
    assert not verify(LOG, 13, 7, leaf_bytes(6), proof).call()  # wrong position
    assert not verify(LOG, 13, 6, leaf_bytes(6), proof[:-1]).call()  # truncated proof
    assert not verify(LOG, 5, 3, leaf_bytes(3), inclusion(tree, 3, 13)).call()  # proof for another size
    assert revert_of(verify(LOG, 7, 3, leaf_bytes(3), inclusion(tree, 3, 7))) == ("NoSuchAnchor", (LOG, 7))
    assert revert_of(verify(b"\x44" * 32, 13, 3, leaf_bytes(3), proof)) == ("UnknownLog", (b"\x44" * 32,))
    # The registry uses the log's own algorithm: an anchored SHA-256 log is not checked with SM3.
    assert registry.functions.logHashAlg(LOG).call() == (
        HASH_SHA256 if alg is HashAlgorithm.SHA256 else HASH_SM3
    )
