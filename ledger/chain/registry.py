"""The AnchorRegistry client over web3.py: writes with failover, reads from every member endpoint.

Endpoints are tried in order (the last one that answered first); a connection error or timeout
moves on to the next, a contract revert does not (every honest node would revert alike) and
becomes :class:`~ledger.errors.ChainRejected` naming the Solidity custom error. Transactions are
signed here with the local anchoring key (nonce from the node's pending count, fees for EIP-1559
chains or legacy gas price otherwise) and broadcast separately, so the caller can persist the
signed transaction before it leaves the process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

import requests
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.logs import DISCARD
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc import HTTPProvider

from contracts import load_artifact
from ledger.core.anchor import AnchorEvent, AnchorObservation, OnchainAnchor, ReceiptAnchor, TxObservation
from ledger.errors import ChainDisagreement, ChainError, ChainRejected, ChainUnavailable, ConfigurationError

_logger = logging.getLogger(__name__)
T = TypeVar("T")

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
    OSError,
)
_UNREACHABLE: tuple[type[BaseException], ...] = (*_CONNECTION_ERRORS, TimeExhausted)
_ABSENT = ("NoSuchAnchor", "UnknownLog")


@dataclass(frozen=True)
class Endpoint:
    """One member node's JSON-RPC endpoint (or the embedded chain)."""

    name: str
    w3: Web3

    @classmethod
    def http(cls, url: str, timeout_s: float) -> Endpoint:
        """An endpoint over HTTP with a per-request timeout and no silent retries (we fail over).

        QBFT/IBFT chains (Besu, GoQuorum) put more than 32 bytes of ``extraData`` in block headers,
        which web3 refuses unless the proof-of-authority middleware is installed; it is harmless
        elsewhere.
        """
        provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
        )
        w3 = Web3(provider)
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return cls(url, w3)


class TxState(StrEnum):
    """What a node knows of a transaction."""

    UNKNOWN = "unknown"  # neither mined nor in the node's pool: dropped, or never arrived
    PENDING = "pending"
    MINED = "mined"
    REVERTED = "reverted"


@dataclass(frozen=True)
class TxStatus:
    """A transaction's state; block fields and the anchor sequence once mined."""

    state: TxState
    block_number: int | None = None
    block_hash: str | None = None
    sequence: int | None = None
    gas_used: int | None = None


@dataclass(frozen=True)
class SignedTx:
    """A signed, not yet broadcast transaction."""

    tx_hash: str
    nonce: int
    raw: bytes


@dataclass(frozen=True)
class AnchorReading:
    """One endpoint's answer to "what is anchored at this size?" (``error`` if it did not answer)."""

    endpoint: str
    anchor: OnchainAnchor | None
    error: str | None = None


class RegistryClient:
    """Talks to one AnchorRegistry deployment through one or more endpoints of the same chain."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        registry_address: str,
        chain_id: int,
        account: LocalAccount | None = None,
        priority_fee_wei: int | None = None,
    ) -> None:
        if not endpoints:
            raise ConfigurationError("the registry client needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.address = to_checksum_address(registry_address)
        self.chain_id = chain_id
        self.account = account
        self.priority_fee_wei = priority_fee_wei
        self._abi = load_artifact("AnchorRegistry").abi
        self._errors = _error_selectors(self._abi)
        self._preferred = 0
        self._checked_chain: set[str] = set()

    # --- plumbing -----------------------------------------------------------------------------

    def _contract(self, endpoint: Endpoint) -> Contract:
        return endpoint.w3.eth.contract(address=self.address, abi=self._abi)

    def _check_chain_id(self, endpoint: Endpoint) -> None:
        if endpoint.name in self._checked_chain:
            return
        actual = endpoint.w3.eth.chain_id
        if actual != self.chain_id:
            raise ChainError(
                f"{endpoint.name} serves chain {actual}, not the configured chain {self.chain_id}"
            )
        self._checked_chain.add(endpoint.name)

    def _on(
        self, endpoint: Endpoint, what: str, call: Callable[[Endpoint], T], *, check_chain: bool = True
    ) -> T:
        """Run ``call`` on one endpoint, converting web3 and transport errors to ChainError.

        ``check_chain=False`` leaves a wrong chain id to ``call`` (a verifier reports it).
        """
        try:
            if check_chain:
                self._check_chain_id(endpoint)
            return call(endpoint)
        except (ContractCustomError, ContractPanicError, ContractLogicError) as e:
            raise self._rejected(what, e) from e
        except _UNREACHABLE as e:
            raise ChainUnavailable(f"{endpoint.name}: {what}: {type(e).__name__}: {e}") from e
        except (Web3RPCError, Web3Exception, ValueError) as e:
            raise ChainError(f"{endpoint.name}: {what}: {type(e).__name__}: {e}") from e

    def _failover(self, what: str, call: Callable[[Endpoint], T]) -> T:
        """Run ``call`` on the preferred endpoint, moving on while endpoints are unreachable."""
        failures: list[str] = []
        order = self.endpoints[self._preferred :] + self.endpoints[: self._preferred]
        for endpoint in order:
            try:
                result = self._on(endpoint, what, call)
            except ChainUnavailable as e:
                failures.append(e.message)
                continue
            self._preferred = self.endpoints.index(endpoint)
            return result
        raise ChainUnavailable(f"no chain endpoint answered ({what}): " + "; ".join(failures))

    def _rejected(self, what: str, error: ContractLogicError) -> ChainRejected:
        data = error.data if isinstance(error.data, str) else None
        if data and data.startswith("0x") and len(data) >= 10:
            found = self._errors.get(data[2:10])
            if found is not None:
                name, types = found
                args = tuple(abi_decode(types, bytes.fromhex(data[10:]))) if types else ()
                return ChainRejected(f"{what}: the registry refused: {name}{args}", error=name, args=args)
        return ChainRejected(f"{what}: the registry refused: {error.message or error}", error="unknown")

    # --- reads --------------------------------------------------------------------------------

    def head(self) -> int:
        """The newest block number."""
        return self._failover("block number", lambda e: int(e.w3.eth.block_number))

    def block_hash(self, number: int) -> str | None:
        """The canonical hash of block ``number`` (None if the chain is not that long)."""

        def read(e: Endpoint) -> str | None:
            if number > e.w3.eth.block_number:
                return None
            return "0x" + bytes(e.w3.eth.get_block(number)["hash"]).hex()

        return self._failover(f"block {number}", read)

    def anchor_by_size(
        self, log_id: bytes, tree_size: int, endpoint: Endpoint | None = None
    ) -> OnchainAnchor | None:
        """The anchor of ``log_id`` at ``tree_size`` (None if there is none)."""
        what = f"anchor at size {tree_size}"

        def read(e: Endpoint) -> OnchainAnchor | None:
            try:
                raw = self._contract(e).functions.anchorBySize(log_id, tree_size).call()
            except (ContractCustomError, ContractLogicError) as error:
                if self._rejected(what, error).error in _ABSENT:
                    return None
                raise
            return _onchain(raw, sequence=-1)

        if endpoint is not None:
            return self._on(endpoint, what, read)
        return self._failover(what, read)

    def latest_anchor(self, log_id: bytes) -> OnchainAnchor | None:
        """The newest anchor of ``log_id`` with its sequence (None if the log was never anchored)."""

        def read(e: Endpoint) -> OnchainAnchor | None:
            registry = self._contract(e)
            count = int(registry.functions.anchorCount(log_id).call())
            if count == 0:
                return None
            return _onchain(registry.functions.anchorAt(log_id, count - 1).call(), sequence=count - 1)

        return self._failover("latest anchor", read)

    def read_everywhere(self, log_id: bytes, tree_size: int) -> list[AnchorReading]:
        """Ask every endpoint what is anchored at ``tree_size``; raise ChainDisagreement if answers differ.

        An endpoint that does not answer, or has no anchor there yet (lagging), is reported in its
        reading; two endpoints returning different anchors for the same size is a lying or forked
        node, and never resolved by trusting the first answer.
        """
        readings: list[AnchorReading] = []
        for endpoint in self.endpoints:
            try:
                readings.append(
                    AnchorReading(endpoint.name, self.anchor_by_size(log_id, tree_size, endpoint))
                )
            except ChainError as e:
                readings.append(AnchorReading(endpoint.name, None, error=e.message))
        seen = {
            (r.anchor.root_hash, r.anchor.checkpoint_hash, r.anchor.block_number): r.endpoint
            for r in readings
            if r.anchor is not None
        }
        if len(seen) > 1:
            detail = "; ".join(
                f"{r.endpoint}: root {r.anchor.root_hash.hex()} block {r.anchor.block_number}"
                for r in readings
                if r.anchor is not None
            )
            raise ChainDisagreement(f"endpoints disagree on the anchor at size {tree_size}: {detail}")
        return readings

    def tx_status(self, tx_hash: str) -> TxStatus:
        """What the chain knows of ``tx_hash`` (mined, reverted, pending in the pool, or unknown)."""

        def read(e: Endpoint) -> TxStatus:
            try:
                receipt = e.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                try:
                    e.w3.eth.get_transaction(HexBytes(tx_hash))
                except TransactionNotFound:
                    return TxStatus(TxState.UNKNOWN)
                return TxStatus(TxState.PENDING)
            if receipt["blockNumber"] is None:
                return TxStatus(TxState.PENDING)
            block = int(receipt["blockNumber"])
            block_hash = "0x" + bytes(receipt["blockHash"]).hex()
            if receipt["status"] != 1:
                return TxStatus(TxState.REVERTED, block, block_hash, gas_used=int(receipt["gasUsed"]))
            events = self._contract(e).events.CheckpointAnchored().process_receipt(receipt, errors=DISCARD)
            sequence = int(events[0]["args"]["sequence"]) if events else None
            return TxStatus(TxState.MINED, block, block_hash, sequence, int(receipt["gasUsed"]))

        return self._failover(f"transaction {tx_hash}", read)

    def anchor_tx(
        self, log_id: bytes, tree_size: int, block_number: int, endpoint: Endpoint | None = None
    ) -> tuple[str, int] | None:
        """(tx hash, sequence) of the CheckpointAnchored event for ``tree_size`` in ``block_number``."""

        def read(e: Endpoint) -> tuple[str, int] | None:
            event = self._contract(e).events.CheckpointAnchored()
            logs = event.get_logs(
                from_block=block_number, to_block=block_number, argument_filters={"logId": log_id}
            )
            for log in logs:
                if int(log["args"]["treeSize"]) == tree_size:
                    return "0x" + bytes(log["transactionHash"]).hex(), int(log["args"]["sequence"])
            return None

        if endpoint is not None:
            return self._on(endpoint, f"anchor event in block {block_number}", read)
        return self._failover(f"anchor event in block {block_number}", read)

    def observe(
        self, endpoint: Endpoint, anchor: ReceiptAnchor, *, leaf: bytes, index: int, proof: Sequence[bytes]
    ) -> AnchorObservation:
        """What ``endpoint`` says about a receipt's anchor, for :func:`ledger.core.receipt.verify_receipt`.

        Reads this client's registry (the pinned one, not necessarily the receipt's), the anchor's
        block and the receipt's ``tx_hash``; the comparison is :func:`ledger.core.anchor.check_anchor`'s.
        """
        log = bytes.fromhex(anchor.log_id[2:])

        def read(e: Endpoint) -> AnchorObservation:
            chain_id = int(e.w3.eth.chain_id)
            onchain = self.anchor_by_size(log, anchor.tree_size, e) if chain_id == anchor.chain_id else None
            if onchain is not None:
                found = self.anchor_tx(log, anchor.tree_size, onchain.block_number, e)
                onchain = replace(onchain, sequence=found[1] if found else -1)
            head = int(e.w3.eth.block_number)
            block_hash = None
            if head >= anchor.block_number:
                block_hash = bytes(e.w3.eth.get_block(anchor.block_number)["hash"])
            inclusion = None
            if onchain is not None:
                inclusion = bool(
                    self._contract(e)
                    .functions.verifyInclusion(log, anchor.tree_size, index, leaf, list(proof))
                    .call()
                )
            return AnchorObservation(
                endpoint=e.name,
                chain_id=chain_id,
                registry=self.address,
                anchor=onchain,
                block_hash=block_hash,
                tx=self._observe_tx(e, anchor.tx_hash),
                head_block=head,
                onchain_inclusion=inclusion,
            )

        return self._on(endpoint, "receipt anchor", read, check_chain=False)

    def _observe_tx(self, e: Endpoint, tx_hash: str) -> TxObservation | None:
        """Transaction ``tx_hash`` as ``e`` reports it, with its CheckpointAnchored logs (None: unknown)."""
        try:
            tx = e.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        to = tx.get("to")
        if tx.get("blockNumber") is None:
            return TxObservation(None, None, None, str(to) if to else None)
        try:
            receipt = e.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return TxObservation(None, None, None, str(to) if to else None)
        event = self._contract(e).events.CheckpointAnchored()
        topic = HexBytes(keccak(text="CheckpointAnchored(bytes32,uint64,uint64,bytes32,bytes32,address)"))
        events = []
        for log in receipt["logs"]:
            if not log["topics"] or HexBytes(log["topics"][0]) != topic:
                continue
            try:
                args = event.process_log(log)["args"]
            except (Web3Exception, ValueError):  # a same-named event with another layout
                continue
            events.append(
                AnchorEvent(
                    emitter=str(log["address"]),
                    log_id=bytes(args["logId"]),
                    sequence=int(args["sequence"]),
                    tree_size=int(args["treeSize"]),
                    root_hash=bytes(args["rootHash"]),
                    checkpoint_hash=bytes(args["checkpointHash"]),
                )
            )
        return TxObservation(
            block_number=int(receipt["blockNumber"]),
            block_hash=bytes(receipt["blockHash"]),
            status=int(receipt["status"]),
            to=str(receipt["to"]) if receipt.get("to") else None,
            events=tuple(events),
        )

    # --- writes -------------------------------------------------------------------------------

    def sign_anchor(
        self,
        *,
        log_id: bytes,
        hash_alg_id: int,
        tree_size: int,
        root_hash: bytes,
        checkpoint_hash: bytes,
        proof: Sequence[bytes],
        nonce: int | None = None,
        fee_bump_percent: int = 0,
    ) -> SignedTx:
        """Build and sign an ``anchor`` transaction; a revert is detected now, by gas estimation."""
        account = self._require_account()

        def build(e: Endpoint) -> SignedTx:
            call = self._contract(e).functions.anchor(
                log_id, hash_alg_id, tree_size, root_hash, checkpoint_hash, list(proof)
            )
            return sign_call(
                e.w3,
                call,
                account,
                chain_id=self.chain_id,
                nonce=nonce,
                priority_fee_wei=self.priority_fee_wei,
                bump_percent=fee_bump_percent,
            )

        return self._failover(f"sign anchor at size {tree_size}", build)

    def broadcast(self, signed: SignedTx) -> None:
        """Send a signed transaction; a node that already has it is not an error."""

        def send(e: Endpoint) -> None:
            try:
                e.w3.eth.send_raw_transaction(signed.raw)
            except Web3RPCError as error:
                text = str(error).lower()
                if "already known" in text or "already imported" in text or "known transaction" in text:
                    return
                if "nonce too low" in text or "nonce is too low" in text:
                    raise ChainRejected(
                        f"transaction {signed.tx_hash}: nonce {signed.nonce} is already used",
                        error="NonceUsed",
                    ) from error
                raise

        self._failover(f"broadcast {signed.tx_hash}", send)

    def transact(self, method: str, *args: Any, timeout_s: float = 60.0) -> TxStatus:
        """Sign, send and wait for an administrative call (deploy-time setup, membership)."""
        account = self._require_account()

        def run(e: Endpoint) -> TxStatus:
            call = getattr(self._contract(e).functions, method)(*args)
            signed = sign_call(
                e.w3, call, account, chain_id=self.chain_id, priority_fee_wei=self.priority_fee_wei
            )
            tx_hash = e.w3.eth.send_raw_transaction(signed.raw)
            receipt = e.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.1)
            if receipt["status"] != 1:
                raise ChainRejected(f"{method} reverted in block {receipt['blockNumber']}", error="reverted")
            return TxStatus(
                TxState.MINED, int(receipt["blockNumber"]), "0x" + bytes(receipt["blockHash"]).hex()
            )

        return self._failover(method, run)

    def _require_account(self) -> LocalAccount:
        if self.account is None:
            raise ConfigurationError("no anchoring key is configured (keystore_path in chain.json)")
        return self.account


def sign_call(
    w3: Web3,
    call: Any,
    account: LocalAccount,
    *,
    chain_id: int,
    nonce: int | None = None,
    priority_fee_wei: int | None = None,
    bump_percent: int = 0,
    extra_gas: int = 10_000,
) -> SignedTx:
    """Sign a contract call or deployment: estimated gas +20 % (+ ``extra_gas``), fees, nonce.

    The gas estimate runs the call first, so a revert is raised here, before anything is sent.
    ``nonce`` None takes the sender's pending count from the node.
    """
    if nonce is None:
        nonce = w3.eth.get_transaction_count(account.address, "pending")
    gas = call.estimate_gas({"from": account.address})
    tx: Any = call.build_transaction(
        {
            "from": account.address,
            "nonce": nonce,
            "gas": gas + gas // 5 + extra_gas,
            "chainId": chain_id,
            **fee_fields(w3, priority_fee_wei, bump_percent),
        }
    )
    signed = account.sign_transaction(tx)
    return SignedTx("0x" + bytes(signed.hash).hex(), nonce, bytes(signed.raw_transaction))


def fee_fields(w3: Web3, priority_fee_wei: int | None, bump_percent: int) -> dict[str, int]:
    """EIP-1559 fee fields when the chain has a base fee, else a legacy gas price (Besu free gas: 0).

    ``bump_percent`` raises both for a replacement transaction (nodes want at least +10 %).
    """
    base = w3.eth.get_block("latest").get("baseFeePerGas")
    if base is None:
        return {"gasPrice": int(w3.eth.gas_price) * (100 + bump_percent) // 100}
    tip = priority_fee_wei
    if tip is None:
        try:
            tip = int(w3.eth.max_priority_fee)
        except (Web3RPCError, Web3Exception, ValueError):
            tip = 10**9
    tip = tip * (100 + bump_percent) // 100
    return {"maxFeePerGas": 2 * int(base) * (100 + bump_percent) // 100 + tip, "maxPriorityFeePerGas": tip}


def deploy_registry(
    endpoint: Endpoint,
    account: LocalAccount,
    *,
    chain_id: int,
    sm3_precompile: str | None = None,
    timeout_s: float = 60.0,
) -> str:
    """Deploy an AnchorRegistry with ``account`` as admin; returns its address."""
    artifact = load_artifact("AnchorRegistry")
    w3 = endpoint.w3
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    precompile = to_checksum_address(sm3_precompile or "0x" + "00" * 20)
    try:
        call = factory.constructor(account.address, precompile)
        signed = sign_call(w3, call, account, chain_id=chain_id, extra_gas=0)
        tx_hash = w3.eth.send_raw_transaction(signed.raw)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.1)
    except TimeExhausted as e:
        raise ChainUnavailable(f"registry deployment not mined within {timeout_s} s") from e
    except _CONNECTION_ERRORS as e:
        raise ChainUnavailable(f"{endpoint.name}: cannot deploy: {e}") from e
    except (Web3RPCError, Web3Exception, ValueError) as e:
        raise ChainError(f"{endpoint.name}: deployment failed: {type(e).__name__}: {e}") from e
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ChainError(f"registry deployment reverted (tx {tx_hash.hex()})")
    return str(to_checksum_address(receipt["contractAddress"]))


def _onchain(raw: Sequence[Any], *, sequence: int) -> OnchainAnchor:
    tree_size, root, checkpoint, member, block_time, block_number = raw[:6]
    return OnchainAnchor(
        sequence=sequence,
        tree_size=int(tree_size),
        root_hash=bytes(root),
        checkpoint_hash=bytes(checkpoint),
        member=str(member),
        block_time=int(block_time),
        block_number=int(block_number),
    )


def _error_selectors(abi: Sequence[dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """4-byte selector (hex) → (custom error name, argument types) from the ABI."""
    found: dict[str, tuple[str, list[str]]] = {}
    for item in abi:
        if item.get("type") == "error":
            types = [str(i["type"]) for i in item.get("inputs", [])]
            signature = f"{item['name']}({','.join(types)})"
            found[keccak(text=signature)[:4].hex()] = (str(item["name"]), types)
    return found
