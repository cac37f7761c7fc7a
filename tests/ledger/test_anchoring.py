"""The anchoring pipeline on the embedded chain, over both storage backends.

State machine, crash-resume without duplicates, a forked log refused, an unreachable chain,
persistence of the embedded chain across restarts, and receipts with a verified anchor section.
The same pipeline against the devnet node (reorgs, node restarts, lying endpoints, kill -9) is in
``test_anchoring_devnet.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.anchoring import AnchorState, anchoring_status
from ledger.chain.connect import ChainConnection
from ledger.chain.embedded import EmbeddedChain, open_embedded_chain
from ledger.chain.registry import Endpoint
from ledger.core.anchor import log_id
from ledger.core.receipt import verify_receipt
from ledger.errors import ChainUnavailable, InvalidReceipt
from tests.conftest import LedgerFactory
from tests.ledger.chain_fixtures import Deployed, embedded_deployment, notarize, observe


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[EmbeddedChain, Deployed]]:
    """A fresh embedded chain with a registry."""
    opened, deployed = embedded_deployment(tmp_path / "chain.db")
    yield opened, deployed
    opened.close()


def _onchain_count(deployed: Deployed, origin: str) -> int:
    registry = deployed.endpoint.w3.eth.contract(address=deployed.address, abi=deployed.client()._abi)
    return int(registry.functions.anchorCount(log_id(origin)).call())


def test_anchor_then_receipt_verifies_against_chain(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    ledger = make_ledger()
    _, deployed = chain
    ids = notarize(ledger, 5)
    before = ledger.receipt(ids[0])
    assert before.anchor is None

    anchorer = deployed.anchorer(ledger)
    row = anchorer.anchor_now(timeout_s=30)
    assert row is not None and row.state == AnchorState.FINAL and row.sequence == 0 and row.tree_size == 5

    receipt = ledger.receipt(ids[3])
    assert receipt.anchor is not None
    assert receipt.anchor.tx_hash == row.tx_hash and receipt.anchor.block_number == row.block_number
    result = verify_receipt(receipt, anchor_observations=observe(deployed.client(), receipt))
    assert result.steps[-1] == "anchor" and result.anchored_on == ["embedded"]

    # More records: the next anchor proves consistency from size 5 on chain.
    notarize(ledger, 7, tag="s")
    second = anchorer.anchor_now(timeout_s=30)
    assert second is not None and second.sequence == 1 and second.tree_size == 12
    assert _onchain_count(deployed, ledger.origin) == 2
    status = anchoring_status(ledger)
    assert status.anchored_size == 12 and status.entries_behind == 0


def test_receipt_anchor_tampering_is_detected(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    ledger = make_ledger()
    _, deployed = chain
    ids = notarize(ledger, 3)
    deployed.anchorer(ledger).anchor_now(timeout_s=30)
    receipt = ledger.receipt(ids[0])
    assert receipt.anchor is not None
    cases = {
        "block-not-canonical": {"block_hash": "0x" + "ab" * 32},
        "anchor-moved": {"block_number": receipt.anchor.block_number + 1},
        "anchor-other-checkpoint": {"tree_size": 2},
        "wrong-chain": {"chain_id": 1},
    }
    for reason, change in cases.items():
        forged = receipt.model_copy(update={"anchor": receipt.anchor.model_copy(update=change)})
        with pytest.raises(InvalidReceipt) as failure:
            verify_receipt(forged, anchor_observations=observe(deployed.client(), forged))
        assert failure.value.step == "anchor" and failure.value.reason == reason, reason


def test_crash_before_broadcast_resumes_with_one_anchor(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    """The signed tx is stored before it is sent; a restart re-sends exactly that tx."""
    ledger = make_ledger()
    _, deployed = chain
    notarize(ledger, 4)
    crashing = deployed.anchorer(ledger)
    crashing.client.broadcast = lambda signed: None  # type: ignore[method-assign]  # "crash" before sending
    crashing.run_once()
    row = ledger.store.anchor_by_size(4)
    assert row is not None and row.state == AnchorState.SUBMITTED and row.raw_tx is not None
    assert _onchain_count(deployed, ledger.origin) == 0

    restarted = deployed.anchorer(ledger)
    for _ in range(3):
        restarted.run_once()
    final = ledger.store.anchor_by_size(4)
    assert final is not None and final.state == AnchorState.FINAL
    assert final.tx_hash == row.tx_hash  # the very transaction stored before the crash
    assert _onchain_count(deployed, ledger.origin) == 1


def test_anchor_already_on_chain_is_adopted_not_resent(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    """A crash after the tx was mined but before the row moved on: the chain is asked first."""
    ledger = make_ledger()
    _, deployed = chain
    notarize(ledger, 6)
    anchorer = deployed.anchorer(ledger)
    anchorer.run_once()
    row = ledger.store.anchor_by_size(6)
    assert row is not None and row.state == AnchorState.FINAL
    # Rewind the row as if the process died right after signing, losing its tx hash.
    assert ledger.store.update_anchor(
        row.seq, expect_state="final", state="pending", tx_hash=None, raw_tx=None
    )
    deployed.anchorer(ledger).run_once()
    again = ledger.store.anchor_by_size(6)
    assert again is not None and again.state == AnchorState.FINAL and again.tx_hash == row.tx_hash
    assert _onchain_count(deployed, ledger.origin) == 1


def test_forked_log_is_refused(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed], tmp_path: Path
) -> None:
    """Another history under the same origin cannot extend what is anchored."""
    honest = make_ledger()
    _, deployed = chain
    notarize(honest, 4)
    deployed.anchorer(honest).anchor_now(timeout_s=30)

    from ledger.log import Ledger
    from ledger.store import LogStore, make_engine

    fork = Ledger(
        LogStore(make_engine(f"sqlite:///{tmp_path / 'fork.db'}")),
        origin=honest.origin,
        hash_alg=honest.hash_alg,
        signing_key=honest._signing_key,
        subject_secret=b"s" * 32,
    )
    fork.create_schema()
    notarize(fork, 9, tag="forged")
    run = deployed.anchorer(fork).run_once()
    row = fork.store.anchor_by_size(9)
    assert row is not None and row.state == AnchorState.FAILED
    assert "not a prefix" in (row.last_error or "")
    assert run.error is None or "prefix" in run.error
    assert _onchain_count(deployed, honest.origin) == 1


def test_chain_down_keeps_intake_and_catches_up(
    make_ledger: LedgerFactory, chain: tuple[EmbeddedChain, Deployed]
) -> None:
    ledger = make_ledger()
    _, deployed = chain
    notarize(ledger, 3)
    up = {"value": False}
    client = deployed.client()

    def connect() -> ChainConnection:
        if not up["value"]:
            raise ChainUnavailable("node down (test)")
        return ChainConnection(client, lambda: None)

    from ledger.anchoring import Anchorer, AnchorPolicy

    anchorer = Anchorer(ledger, connect, AnchorPolicy(interval_s=0, min_entries=1))
    run = anchorer.run_once()
    assert run.error and "node down" in run.error
    ids = notarize(ledger, 10, tag="during-outage")  # intake and sequencing go on
    status = anchoring_status(ledger, last_error=anchorer.last_error)
    assert status.entries_behind == 13 and status.anchored_size == 0 and status.last_error
    assert status.oldest_unanchored_age_s is not None

    up["value"] = True
    anchorer.run_once()
    status = anchoring_status(ledger)
    assert status.anchored_size == 13 and status.entries_behind == 0
    assert ledger.receipt(ids[-1]).anchor is not None


def test_embedded_chain_survives_restart(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    opened, deployed = embedded_deployment(path)
    ledger = make_ledger()
    ids = notarize(ledger, 2)
    deployed.anchorer(ledger).anchor_now(timeout_s=30)
    opened.close()

    with pytest.raises(ChainUnavailable):  # one owner at a time
        reopened = open_embedded_chain(path)
        open_embedded_chain(path)
    reopened.close()

    reopened = open_embedded_chain(path)
    try:
        again = Deployed(
            Endpoint("embedded", reopened.w3), deployed.address, deployed.chain_id, deployed.account
        )
        receipt = ledger.receipt(ids[0])
        verify_receipt(receipt, anchor_observations=observe(again.client(), receipt))
        notarize(ledger, 3, tag="after-restart")
        row = again.anchorer(ledger).anchor_now(timeout_s=30)
        assert row is not None and row.sequence == 1
    finally:
        reopened.close()
