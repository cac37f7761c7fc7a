"""Helpers of the contract tests: a chain handle, deployment, transactions and revert decoding."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from contracts import load_artifact
from ledger.core.crypto import HashAlgorithm
from ledger.core.hashing import tree_hasher
from ledger.core.merkle import MemoryTree, consistency_proof, inclusion_proof

ZERO_ADDRESS = "0x" + "00" * 20
TX_GAS = 12_000_000
"""Explicit gas for every test transaction: no estimation round trip, and a refused transaction is
mined with status 0 (on both chains) instead of failing in estimation."""
RECEIPT_TIMEOUT_S = 30

HASH_SHA256 = 1
HASH_SM3 = 2
ALG_IDS = {HashAlgorithm.SHA256: HASH_SHA256, HashAlgorithm.SM3: HASH_SM3}


@dataclass(frozen=True)
class Chain:
    """A chain under test: ``embedded`` (eth-tester on py-evm) or ``devnet`` (anvil).

    ``accounts`` are funded and unlocked on the node (transactions are sent with ``transact``).
    """

    name: str
    w3: Web3
    accounts: list[str]

    def deploy(self, name: str, *args: Any, sender: str | None = None) -> Contract:
        """Deploy the committed artifact ``name`` and return the contract."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).transact({"from": sender or self.accounts[0], "gas": TX_GAS})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=RECEIPT_TIMEOUT_S)
        if receipt["status"] != 1:
            raise AssertionError(f"deploying {name} reverted")
        return cast(Contract, self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi))

    def send(self, call: ContractFunction, sender: str) -> TxReceipt:
        """Send a transaction and return its receipt, whatever its status."""
        tx = call.transact({"from": sender, "gas": TX_GAS})
        return self.w3.eth.wait_for_transaction_receipt(tx, timeout=RECEIPT_TIMEOUT_S)

    def ok(self, call: ContractFunction, sender: str) -> TxReceipt:
        """Send a transaction that must succeed; fail with the decoded reason otherwise."""
        receipt = self.send(call, sender)
        if receipt["status"] != 1:
            raise AssertionError(f"transaction reverted: {revert_of(call, sender)}")
        return receipt


def revert_data(error: BaseException) -> bytes | None:
    """The revert data carried by a web3 (anvil) or eth-tester (embedded) exception."""
    data = getattr(error, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    seen: BaseException | None = error
    while seen is not None:
        if seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        seen = seen.__context__
    message = str(error.args[0]) if error.args else ""
    prefix = "execution reverted: "
    if message.startswith(prefix) and message[len(prefix) :].startswith("b"):
        value = ast.literal_eval(message[len(prefix) :])
        if isinstance(value, bytes):
            return value
    return None


def decode_error(abi: Sequence[Any], data: bytes) -> tuple[str, tuple[Any, ...]]:
    """(custom error name, arguments) of revert data, by the error selectors of ``abi``."""
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [arg["type"] for arg in item["inputs"]]
        if function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})") == data[:4]:
            values = abi_decode(types, data[4:])
            return item["name"], tuple(
                Web3.to_checksum_address(v) if t == "address" else v
                for t, v in zip(types, values, strict=True)
            )
    raise AssertionError(f"revert data {data.hex()} matches no custom error of the ABI")


def revert_of(call: ContractFunction, sender: str | None = None) -> tuple[str, tuple[Any, ...]]:
    """Simulate ``call`` (eth_call) and return the custom error it reverts with."""
    try:
        call.call({"from": sender} if sender else {})
    except Exception as e:  # noqa: BLE001 - web3 and eth-tester raise different classes
        data = revert_data(e)
        if data is None:
            raise AssertionError(f"reverted without data: {e!r}") from e
        return decode_error(call.contract_abi, data)
    raise AssertionError("the call did not revert")


def refused(chain: Chain, call: ContractFunction, sender: str) -> tuple[str, tuple[Any, ...]]:
    """Send ``call`` as a transaction that must be mined and reverted; return the custom error.

    The error is read by simulating the same call first (a mined transaction does not carry it).
    """
    error = revert_of(call, sender)
    receipt = chain.send(call, sender)
    if receipt["status"] != 0:
        raise AssertionError(f"transaction was accepted, expected {error[0]}")
    return error


def make_tree(alg: HashAlgorithm, size: int, tag: str = "") -> MemoryTree:
    """A MemoryTree of ``size`` leaves ``b"<tag>leaf <i>"``."""
    tree = MemoryTree(tree_hasher(alg))
    for i in range(size):
        tree.append(f"{tag}leaf {i}".encode())
    return tree


def leaf_bytes(index: int, tag: str = "") -> bytes:
    """The leaf data of :func:`make_tree`."""
    return f"{tag}leaf {index}".encode()


def consistency(tree: MemoryTree, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of ``tree``."""
    return consistency_proof(tree.hasher, old_size, new_size, tree.read_node)


def inclusion(tree: MemoryTree, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of ``tree``."""
    return inclusion_proof(tree.hasher, index, size, tree.read_node)


def anchor_call(
    registry: Contract,
    log_id: bytes,
    alg: HashAlgorithm,
    tree: MemoryTree,
    size: int,
    previous: int | None,
    checkpoint_hash: bytes | None = None,
) -> ContractFunction:
    """The ``anchor`` call for ``tree`` at ``size``, with the proof from ``previous`` (None: first)."""
    proof = [] if previous is None else consistency(tree, previous, size)
    cp = checkpoint_hash if checkpoint_hash is not None else size.to_bytes(32, "big")
    return registry.functions.anchor(log_id, ALG_IDS[alg], size, tree.root(size), cp, proof)
