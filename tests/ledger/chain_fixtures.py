"""Shared set-up for anchoring tests: a registry on a chain, and anchorers over a ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.anchoring import Anchorer, AnchorPolicy
from ledger.chain.connect import ChainConnection
from ledger.chain.embedded import EMBEDDED_CHAIN_ID, EmbeddedChain, open_embedded_chain
from ledger.chain.registry import Endpoint, RegistryClient, deploy_registry
from ledger.core.anchor import AnchorObservation
from ledger.core.crypto import HashAlgorithm
from ledger.core.leaf import RecordKind, encode_leaf
from ledger.core.receipt import Receipt
from ledger.log import Ledger, Submission


@dataclass
class Deployed:
    """A registry deployment: its address, chain id, the anchoring account and an endpoint."""

    endpoint: Endpoint
    address: str
    chain_id: int
    account: LocalAccount

    def client(self, endpoints: list[Endpoint] | None = None) -> RegistryClient:
        """A registry client with the anchoring key."""
        return RegistryClient(
            endpoints or [self.endpoint],
            registry_address=self.address,
            chain_id=self.chain_id,
            account=self.account,
        )

    def anchorer(
        self, ledger: Ledger, *, clock: Callable[[], float] | None = None, **policy: object
    ) -> Anchorer:
        """An anchorer for ``ledger`` here (anchors on every run unless ``policy`` says otherwise)."""
        options: dict[str, object] = {"interval_s": 0, "min_entries": 1, "tx_timeout_s": 5.0}
        options.update(policy)
        client = self.client()
        kwargs = {"clock": clock} if clock else {}
        return Anchorer(
            ledger, lambda: ChainConnection(client, lambda: None), AnchorPolicy(**options), **kwargs
        )  # type: ignore[arg-type]


def deploy(endpoint: Endpoint, account: LocalAccount, chain_id: int) -> Deployed:
    """Deploy a registry with ``account`` as admin and member."""
    address = deploy_registry(endpoint, account, chain_id=chain_id)
    deployed = Deployed(endpoint, address, chain_id, account)
    deployed.client().transact("addMember", account.address, "test member")
    return deployed


def embedded_deployment(path: Path) -> tuple[EmbeddedChain, Deployed]:
    """A fresh embedded chain at ``path`` with a registry."""
    account: LocalAccount = Account.create()
    chain = open_embedded_chain(path, fund=[account.address])
    return chain, deploy(Endpoint("embedded", chain.w3), account, EMBEDDED_CHAIN_ID)


def notarize(ledger: Ledger, count: int, tag: str = "r") -> list[str]:
    """Submit ``count`` records, sequence them and issue a checkpoint; returns their ids."""
    subs = [
        Submission(
            kind=RecordKind.GENERIC,
            content_hash=bytes([i % 256]) * 32,
            hash_alg=HashAlgorithm.SM3,
            metadata={"tag": f"{tag}{i}"},
        )
        for i in range(count)
    ]
    accepted = ledger.submit("tests", subs)
    ledger.sequence_all()
    ledger.issue_checkpoint()
    return [a.id for a in accepted]


def observe(client: RegistryClient, receipt: Receipt) -> list[AnchorObservation]:
    """What each of ``client``'s endpoints says about the receipt's anchor."""
    assert receipt.anchor is not None
    proof = [bytes.fromhex(h) for h in receipt.inclusion.hashes]
    leaf = encode_leaf(receipt.leaf_data())
    return [
        client.observe(e, receipt.anchor, leaf=leaf, index=receipt.inclusion.index, proof=proof)
        for e in client.endpoints
    ]
