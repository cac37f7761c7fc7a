#!/usr/bin/env python
"""Gas of anchoring checkpoints in AnchorRegistry: SHA-256 vs SM3 in Solidity vs SM3 by precompile.

Run from the repository root (about 30 seconds)::

    .venv/bin/python bench/bench_gas.py
    .venv/bin/python bench/bench_gas.py --json /tmp/gas.json

Everything runs on the embedded EVM (eth-tester on py-evm, in this process); gas does not depend
on the node, only on the EVM fork, which is printed. Three hash configurations:

* ``sha256``: a SHA-256 log; node hashes by the EVM's SHA-256 precompile (0x02);
* ``sm3-solidity``: an SM3 log in a registry computing SM3 with the Solidity library;
* ``sm3-precompile``: an SM3 log in a registry built with the address of ``Sm3Precompile``, the
  stand-in for FISCO BCOS's crypto precompile (0x100a). The stand-in computes SM3 with the same
  library, so this column is the library cost plus a call per hash. On FISCO BCOS the native
  precompile costs what the chain charges for it instead (far less).

Measured: the first anchor of a log (no proof), then the anchor of the same log at size N from
a previous anchor at size M, for N = 10^3, 10^6 and 10^9 and two choices of M each: ``N - 1000``
(anchoring every thousand entries; 500 for N = 10^3) and ``N/2 + 1`` (a long proof). The gas of
a verification depends only on the proof length and the number of node hashes the RFC 9162
§2.1.4.2 walk performs, both fixed by (M, N), so the trees at 10^6 and 10^9 entries are sparse:
every leaf is the same, so that every complete subtree of height h has the same hash and any
proof is built from log2(N) hashes. The proofs are real RFC 9162 proofs of those trees (made by
``ledger.core.merkle.consistency_proof``) and the registry verifies them. Also measured, with a
probe contract compiled on the fly: one node hash H(0x01 || l || r) and a bare SM3 of 65 bytes,
as ``gasleft()`` differences inside the EVM (no transaction overhead).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from _common import code_version, log, print_table
from web3 import Web3
from web3.contract import Contract
from web3.providers.eth_tester import EthereumTesterProvider

from contracts import compiler, load_artifact
from ledger.core.crypto import HashAlgorithm
from ledger.core.hashing import tree_hasher
from ledger.core.merkle import TreeHasher, consistency_proof, root_hash

TX_GAS = 25_000_000
ZERO_ADDRESS = "0x" + "00" * 20
CONFIGS = ("sha256", "sm3-solidity", "sm3-precompile")
ALG_ID = {"sha256": 1, "sm3-solidity": 2, "sm3-precompile": 2}
SIZES = (10**3, 10**6, 10**9)

PROBE_UNIT = "bench/GasProbe.sol"
PROBE_SOURCE = """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {SM3} from "../src/SM3.sol";
import {Hasher, RFC9162} from "../src/RFC9162.sol";

/// Gas of the hashing primitives, measured with gasleft() around the call (bench/bench_gas.py).
contract GasProbe {
    function sm3(bytes memory data) external view returns (bytes32 digest, uint256 gasUsed) {
        uint256 before = gasleft();
        digest = SM3.hash(data);
        gasUsed = before - gasleft();
    }

    function node(uint8 alg, address sm3Precompile, bytes32 left, bytes32 right)
        external
        view
        returns (bytes32 digest, uint256 gasUsed)
    {
        Hasher h = RFC9162.hasher(alg, sm3Precompile);
        uint256 before = gasleft();
        digest = RFC9162.hashNode(h, left, right);
        gasUsed = before - gasleft();
    }
}
"""


@dataclass(frozen=True)
class AnchorGas:
    """Gas of one anchor transaction (receipt gasUsed, including the 21,000 base)."""

    config: str
    previous_size: int | None
    tree_size: int
    proof_length: int
    node_hashes: int
    gas: int


class UniformTree:
    """A sparse tree whose every leaf is the same: complete subtrees of one height are equal."""

    def __init__(self, hasher: TreeHasher, leaf: bytes = b"trustledger bench leaf") -> None:
        self.hasher = hasher
        self._levels = [hasher.leaf_hash(leaf)]

    def read_node(self, level: int, index: int) -> bytes:
        """The :data:`~ledger.core.merkle.NodeReader` (the index does not matter)."""
        del index
        while len(self._levels) <= level:
            self._levels.append(self.hasher.node_hash(self._levels[-1], self._levels[-1]))
        return self._levels[level]

    def root(self, size: int) -> bytes:
        return root_hash(self.hasher, size, self.read_node)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(self.hasher, old, new, self.read_node)


def node_hash_count(old: int, new: int, proof_length: int) -> int:
    """Node hashes computed by the RFC 9162 §2.1.4.2 walk for a valid proof (old < new)."""
    path = proof_length + (1 if old & (old - 1) == 0 else 0)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    count = 0
    for _ in range(path - 1):
        if fn & 1 or fn == sn:
            count += 2
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            count += 1
        fn, sn = fn >> 1, sn >> 1
    return count


class Bench:
    """The embedded chain with the three registry configurations deployed."""

    def __init__(self) -> None:
        self.w3 = Web3(EthereumTesterProvider())
        self.account = self.w3.eth.accounts[0]
        self.precompile = self.deploy_artifact("Sm3Precompile")
        library = self.deploy_artifact("AnchorRegistry", self.account, ZERO_ADDRESS)
        by_precompile = self.deploy_artifact("AnchorRegistry", self.account, self.precompile.address)
        self.registries = {"sha256": library, "sm3-solidity": library, "sm3-precompile": by_precompile}
        for registry in (library, by_precompile):
            self.transact(registry.functions.addMember(self.account, "bench"))
        self._log_counter = 0

    def deploy(self, abi: list[dict[str, Any]], bytecode: bytes | str, *args: Any) -> Contract:
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        tx = factory.constructor(*args).transact({"from": self.account, "gas": TX_GAS})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        if receipt["status"] != 1:
            raise RuntimeError("deployment reverted")
        return cast(Contract, self.w3.eth.contract(address=receipt["contractAddress"], abi=abi))

    def deploy_artifact(self, name: str, *args: Any) -> Contract:
        artifact = load_artifact(name)
        return self.deploy(artifact.abi, artifact.bytecode, *args)

    def transact(self, call: Any) -> int:
        tx = call.transact({"from": self.account, "gas": TX_GAS})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        if receipt["status"] != 1:
            raise RuntimeError("transaction reverted")
        return int(receipt["gasUsed"])

    def fork_name(self) -> str:
        provider: Any = self.w3.provider
        try:
            vm = provider.ethereum_tester.backend.chain.get_vm()
            return str(vm.fork)
        except AttributeError:
            return "unknown"

    def new_log(self) -> bytes:
        self._log_counter += 1
        return self._log_counter.to_bytes(32, "big")

    def anchor_pair(self, config: str, tree: UniformTree, old: int, new: int) -> tuple[AnchorGas, AnchorGas]:
        """Anchor a new log at ``old`` (no proof), then at ``new`` (with the consistency proof)."""
        registry = self.registries[config]
        log_id = self.new_log()
        anchor = registry.functions.anchor
        first = self.transact(anchor(log_id, ALG_ID[config], old, tree.root(old), b"\x01" * 32, []))
        proof = tree.consistency(old, new)
        following = self.transact(anchor(log_id, ALG_ID[config], new, tree.root(new), b"\x02" * 32, proof))
        return (
            AnchorGas(config, None, old, 0, 0, first),
            AnchorGas(config, old, new, len(proof), node_hash_count(old, new, len(proof)), following),
        )


def probe_gas(bench: Bench) -> dict[str, int]:
    """gasleft() differences of the hashing primitives, from a probe compiled on the fly."""
    sources = {**compiler.read_sources(), PROBE_UNIT: PROBE_SOURCE}
    artifact = compiler.compile_artifacts(sources=sources, contracts={"GasProbe": PROBE_UNIT})["GasProbe"]
    probe = bench.deploy(artifact["abi"], artifact["bytecode"])
    left, right = b"\x5a" * 32, b"\xa5" * 32
    message = b"\x01" + left + right
    figures = {}
    _, figures["sm3_65_bytes_solidity"] = probe.functions.sm3(message).call()
    _, figures["sm3_55_bytes_solidity_one_block"] = probe.functions.sm3(message[:55]).call()
    for name, alg, precompile in (
        ("node_hash_sha256", 1, ZERO_ADDRESS),
        ("node_hash_sm3_solidity", 2, ZERO_ADDRESS),
        ("node_hash_sm3_precompile_contract", 2, bench.precompile.address),
    ):
        _, figures[name] = probe.functions.node(alg, precompile, left, right).call()
    return figures


def pairs() -> list[tuple[int, int]]:
    """(previous size, new size) of the measured anchors."""
    result = []
    for n in SIZES:
        result.append((n - 1000 if n > 1000 else n // 2, n))
        result.append((n // 2 + 1, n))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    log("deploying the registries on the embedded EVM")
    bench = Bench()
    print(f"trustledger bench_gas — {code_version()}; Python {platform.python_version()}")
    solc = load_artifact("AnchorRegistry").solc_version
    print(f"EVM: eth-tester / py-evm, fork {bench.fork_name()}; contracts: solc {solc}")

    log("probing the hashing primitives")
    probe = probe_gas(bench)
    print_table(
        "Hashing primitives (gasleft() inside the EVM)",
        ["operation", "gas"],
        [[name.replace("_", " "), f"{value:,}"] for name, value in probe.items()],
    )

    trees: dict[str, UniformTree] = {
        "sha256": UniformTree(tree_hasher(HashAlgorithm.SHA256)),
        "sm3-solidity": UniformTree(tree_hasher(HashAlgorithm.SM3)),
        "sm3-precompile": UniformTree(tree_hasher(HashAlgorithm.SM3)),
    }
    results: list[AnchorGas] = []
    firsts: dict[str, int] = {}
    for old, new in pairs():
        for config in CONFIGS:
            log(f"anchoring {config}: {old:,} -> {new:,}")
            first, following = bench.anchor_pair(config, trees[config], old, new)
            firsts.setdefault(config, first.gas)
            results.append(following)

    def cell(old: int, new: int, config: str, pick: Callable[[AnchorGas], int]) -> str:
        match = [r for r in results if r.previous_size == old and r.tree_size == new and r.config == config]
        return f"{pick(match[0]):,}"

    print_table(
        "First anchor of a log (no proof), gas per transaction",
        ["", *CONFIGS],
        [["first anchor", *(f"{firsts[c]:,}" for c in CONFIGS)]],
    )
    rows = []
    for old, new in pairs():
        rows.append(
            [
                f"{old:,} -> {new:,}",
                cell(old, new, "sha256", lambda r: r.proof_length),
                cell(old, new, "sha256", lambda r: r.node_hashes),
                *(cell(old, new, c, lambda r: r.gas) for c in CONFIGS),
            ]
        )
    print_table(
        "Following anchor with an on-chain consistency proof, gas per transaction",
        ["previous -> new size", "proof", "node hashes", *CONFIGS],
        rows,
    )
    if args.json:
        document = {"probe": probe, "first_anchor": firsts, "anchors": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
