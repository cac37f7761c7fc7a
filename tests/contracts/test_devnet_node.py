"""The devnet node support (tests/anvil.py): accounts, state persistence across restart and crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from ledger.core.crypto import HashAlgorithm
from tests.anvil import CHAIN_ID, AnvilNode
from tests.contracts.conftest import deploy_registry
from tests.contracts.support import Chain, anchor_call, make_tree

LOG = b"\x55" * 32

pytestmark = pytest.mark.devnet


def connect(node: AnvilNode) -> Chain:
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
    return Chain(name="devnet", w3=w3, accounts=[str(a) for a in w3.eth.accounts])


def test_accounts_and_chain_id(anvil_node: AnvilNode) -> None:
    chain = connect(anvil_node)
    assert chain.w3.eth.chain_id == CHAIN_ID == anvil_node.chain_id
    keys = anvil_node.private_keys
    assert len(keys) == 10
    derived = [Account.from_key(key).address for key in keys]
    assert derived == chain.accounts == [Web3.to_checksum_address(a) for a in anvil_node.addresses]
    assert chain.w3.eth.get_balance(Web3.to_checksum_address(chain.accounts[9])) > 0


def test_state_survives_restart_but_not_a_crash(tmp_path: Path) -> None:
    tree = make_tree(HashAlgorithm.SHA256, 10)
    node = AnvilNode(workdir=tmp_path, state_path=tmp_path / "state.json")
    node.start()
    try:
        chain = connect(node)
        registry = deploy_registry(chain)
        alpha = chain.accounts[1]
        chain.ok(anchor_call(registry, LOG, HashAlgorithm.SHA256, tree, 4, None), alpha)

        node.restart()  # clean stop: anvil dumps the state file
        assert node.running
        assert registry.functions.anchorCount(LOG).call() == 1
        chain.ok(anchor_call(registry, LOG, HashAlgorithm.SHA256, tree, 10, 4), alpha)
        assert registry.functions.anchorCount(LOG).call() == 2

        node.kill()  # a crash: the second anchor was never dumped
        assert not node.running
        node.start()
        assert registry.functions.anchorCount(LOG).call() == 1
        assert registry.functions.latestAnchor(LOG).call()[0] == 4
    finally:
        node.close()
