"""A receipt's anchor against the chain: the operator-fork hole and the anchoring transaction.

On the embedded chain (no network): an operator who holds the log key forks the tree and anchors
the fork in a registry of its own on the same chain; a verifier that pins the policy refuses it
before reading the chain. And ``anchor.tx_hash``, once printed as verified without any check, must
be the successful registry transaction that anchored exactly this checkpoint in the stated block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.embedded import EmbeddedChain
from ledger.core.crypto import Sm2PrivateKey
from ledger.core.policy import PolicyChain, TrustPolicy, new_policy
from ledger.core.receipt import Receipt, verify_receipt
from ledger.errors import InvalidReceipt
from ledger.log import Ledger
from ledger.store import LogStore, make_engine
from tests.conftest import SUBJECT_SECRET, LedgerFactory
from tests.ledger.chain_fixtures import Deployed, deploy, embedded_deployment, notarize, observe


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[EmbeddedChain, Deployed]]:
    """A fresh embedded chain with the consortium's registry."""
    opened, deployed = embedded_deployment(tmp_path / "chain.db")
    yield opened, deployed
    opened.close()


def _policy(ledger: Ledger, deployed: Deployed, **chain: object) -> TrustPolicy:
    pinned = PolicyChain(chain_id=deployed.chain_id, registries=(deployed.address,), **chain)
    return new_policy(origin=ledger.origin, hash_alg=ledger.hash_alg, log_key=ledger.public_key, chain=pinned)


def _operator_registry(deployed: Deployed) -> Deployed:
    """A second AnchorRegistry on the same chain, deployed by the operator's own funded account."""
    operator: LocalAccount = Account.create()
    w3 = deployed.endpoint.w3
    tx = {
        "to": operator.address,
        "value": 10**20,
        "gas": 21_000,
        "gasPrice": 2 * int(w3.eth.gas_price),
        "nonce": w3.eth.get_transaction_count(deployed.account.address),
        "chainId": deployed.chain_id,
    }
    w3.eth.send_raw_transaction(deployed.account.sign_transaction(tx).raw_transaction)
    return deploy(deployed.endpoint, operator, deployed.chain_id)


def _forged_receipt(honest: Ledger, deployed: Deployed, tmp_path: Path) -> tuple[Receipt, Deployed]:
    """The operator's fork of ``honest`` (same origin and key, forged leaves) in its own registry."""
    fork = Ledger(
        LogStore(make_engine(f"sqlite:///{tmp_path / 'fork.db'}")),
        origin=honest.origin,
        hash_alg=honest.hash_alg,
        signing_key=honest._signing_key,
        subject_secret=SUBJECT_SECRET,
    )
    fork.create_schema()
    ids = notarize(fork, 4, tag="forged")
    rogue = _operator_registry(deployed)
    assert rogue.anchorer(fork).anchor_now(timeout_s=30) is not None
    receipt = fork.receipt(ids[0])
    fork.store.engine.dispose()
    return receipt, rogue


def test_operator_fork_in_its_own_registry_is_refused_by_the_policy(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed], tmp_path: Path
) -> None:
    honest = make_ledger()
    _, deployed = chain
    notarize(honest, 4)
    deployed.anchorer(honest).anchor_now(timeout_s=30)
    forged, rogue = _forged_receipt(honest, deployed, tmp_path)
    assert forged.anchor is not None and forged.anchor.registry == rogue.address

    # What a verifier that trusts the receipt's registry sees: everything checks out.
    result = verify_receipt(
        forged, trusted_key=honest.public_key, anchor_observations=observe(rogue.client(), forged)
    )
    assert result.steps[-1] == "anchor"
    assert any(rogue.address in fact for fact in result.unpinned)  # …and it says so

    # Pinning the consortium's policy: refused without a single chain read.
    policy = _policy(honest, deployed)
    with pytest.raises(InvalidReceipt) as failure:
        verify_receipt(forged, policy=policy)
    assert failure.value.step == "registry" and failure.value.reason == "untrusted-registry"
    # Even observations of the pinned registry cannot be matched to the fork's anchor.
    with pytest.raises(InvalidReceipt) as failure:
        pinned_forged = forged.model_copy(
            update={"anchor": forged.anchor.model_copy(update={"registry": deployed.address})}
        )
        verify_receipt(
            pinned_forged, policy=policy, anchor_observations=observe(deployed.client(), pinned_forged)
        )
    assert failure.value.step == "anchor" and failure.value.reason in ("anchor-mismatch", "not-anchored")


def test_honest_receipt_verifies_against_the_policy_on_chain(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    ledger = make_ledger()
    _, deployed = chain
    ids = notarize(ledger, 3)
    deployed.anchorer(ledger).anchor_now(timeout_s=30)
    receipt = ledger.receipt(ids[1])
    result = verify_receipt(
        receipt, policy=_policy(ledger, deployed), anchor_observations=observe(deployed.client(), receipt)
    )
    assert result.steps[-3:] == ["chain", "registry", "anchor"] and result.unpinned == ()
    with pytest.raises(InvalidReceipt) as failure:
        verify_receipt(
            receipt,
            policy=_policy(ledger, deployed, confirmations=50),
            anchor_observations=observe(deployed.client(), receipt),
        )
    assert failure.value.reason == "too-few-confirmations"


def _send_reverting_anchor(deployed: Deployed) -> str:
    """A transaction to the registry that is mined but fails (an empty tree is refused)."""
    w3 = deployed.endpoint.w3
    registry = w3.eth.contract(address=deployed.address, abi=deployed.client()._abi)
    tx = registry.functions.anchor(b"\x01" * 32, 2, 0, b"\x00" * 32, b"\x00" * 32, []).build_transaction(
        {
            "from": deployed.account.address,
            "gas": 300_000,
            "gasPrice": 2 * int(w3.eth.gas_price),
            "nonce": w3.eth.get_transaction_count(deployed.account.address),
            "chainId": deployed.chain_id,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(deployed.account.sign_transaction(tx).raw_transaction)
    assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 0
    return "0x" + bytes(tx_hash).hex()


def test_anchor_tx_hash_is_checked(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed], tmp_path: Path
) -> None:
    """Each wrong tx hash fails the anchor step with its own reason (all passed before)."""
    ledger = make_ledger()
    _, deployed = chain
    ids = notarize(ledger, 3)
    anchorer = deployed.anchorer(ledger)
    anchorer.anchor_now(timeout_s=30)
    receipt = ledger.receipt(ids[0])
    assert receipt.anchor is not None
    notarize(ledger, 2, tag="later")
    second = anchorer.anchor_now(timeout_s=30)
    assert second is not None and second.tx_hash is not None and second.tx_hash != receipt.anchor.tx_hash
    other_contract_tx = _forged_receipt(ledger, deployed, tmp_path)[0].anchor.tx_hash  # type: ignore[union-attr]
    membership_tx = deployed.client().transact("addMember", Account.create().address, "another member")
    block = deployed.endpoint.w3.eth.get_block(membership_tx.block_number or 0)
    no_event_tx = "0x" + bytes(block["transactions"][0]).hex()
    cases = {
        "tx-not-found": "0x" + os.urandom(32).hex(),
        "tx-null": "0x" + "00" * 32,
        "tx-other-anchor": second.tx_hash,
        "tx-failed": _send_reverting_anchor(deployed),
        "tx-other-contract": other_contract_tx,
        "tx-no-anchor-event": no_event_tx,
    }
    policy = _policy(ledger, deployed)
    verify_receipt(receipt, policy=policy, anchor_observations=observe(deployed.client(), receipt))
    for reason, tx_hash in cases.items():
        forged = receipt.model_copy(update={"anchor": receipt.anchor.model_copy(update={"tx_hash": tx_hash})})
        for kwargs in ({}, {"policy": policy}):
            with pytest.raises(InvalidReceipt) as failure:
                verify_receipt(forged, anchor_observations=observe(deployed.client(), forged), **kwargs)  # type: ignore[arg-type]
            assert (failure.value.step, failure.value.reason) == ("anchor", reason), failure.value.message


def test_cosigned_note_anchors_as_the_log_signed_note(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    """Witness lines added to a receipt's note after anchoring do not change what is checked on chain."""
    from ledger.core.checkpoint import SignedCheckpoint
    from ledger.core.cosignature import cosign
    from ledger.core.policy import PolicyWitness

    ledger = make_ledger()
    _, deployed = chain
    ids = notarize(ledger, 2)
    deployed.anchorer(ledger).anchor_now(timeout_s=30)
    receipt = ledger.receipt(ids[0])
    signed = SignedCheckpoint.from_text(receipt.checkpoint)
    witness = Sm2PrivateKey.generate()
    line = cosign(signed.checkpoint, "court.example/w", witness, 1_800_000_000).to_signature_line()
    cosigned = receipt.model_copy(update={"checkpoint": signed.with_signatures([line]).to_text()})
    policy = _policy(ledger, deployed).model_copy(
        update={
            "witnesses": (PolicyWitness(name="court.example/w", public_key=witness.public_key().hex()),),
            "witness_quorum": 1,
        }
    )
    result = verify_receipt(cosigned, policy=policy, anchor_observations=observe(deployed.client(), cosigned))
    assert result.cosigned_by == ("court.example/w",) and result.steps[-1] == "anchor"
