"""Fixtures of the contract tests: every test runs on the embedded EVM and on the devnet node.

``chain`` is parametrized: ``embedded`` is eth-tester on py-evm in this process; ``devnet`` is
the session's anvil node (``tests/anvil.py``; marked ``devnet``, skipped without anvil, failed
in CI). Accounts: 0 is the registry admin, 1 and 2 are members ("alpha", "beta"), 3 and 4 are
outsiders.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.providers.eth_tester import EthereumTesterProvider

from tests.anvil import AnvilNode
from tests.contracts.support import ZERO_ADDRESS, Chain

HTTP_TIMEOUT_S = 30


@pytest.fixture(scope="session", params=["embedded", pytest.param("devnet", marks=pytest.mark.devnet)])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A Web3 connection with funded, unlocked accounts, on each kind of chain."""
    if request.param == "embedded":
        w3 = Web3(EthereumTesterProvider())
    else:
        node: AnvilNode = request.getfixturevalue("anvil_node")
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": HTTP_TIMEOUT_S}))
    yield Chain(name=request.param, w3=w3, accounts=[str(a) for a in w3.eth.accounts])


@pytest.fixture
def admin(chain: Chain) -> str:
    return chain.accounts[0]


@pytest.fixture
def alpha(chain: Chain) -> str:
    return chain.accounts[1]


@pytest.fixture
def beta(chain: Chain) -> str:
    return chain.accounts[2]


@pytest.fixture
def outsider(chain: Chain) -> str:
    return chain.accounts[3]


def deploy_registry(chain: Chain, sm3_precompile: str = ZERO_ADDRESS) -> Contract:
    """A fresh AnchorRegistry (admin: account 0) with members alpha and beta."""
    registry = chain.deploy("AnchorRegistry", chain.accounts[0], sm3_precompile)
    for account, name in ((chain.accounts[1], "alpha"), (chain.accounts[2], "beta")):
        chain.ok(registry.functions.addMember(account, name), chain.accounts[0])
    return registry


@pytest.fixture
def registry(chain: Chain) -> Contract:
    """A fresh registry computing SM3 in Solidity."""
    return deploy_registry(chain)


@pytest.fixture(scope="module")
def sm3_precompile(chain: Chain) -> Contract:
    """The stand-in for FISCO BCOS's SM3 precompile (one per module and chain)."""
    return chain.deploy("Sm3Precompile")


@pytest.fixture
def precompile_registry(chain: Chain, sm3_precompile: Contract) -> Contract:
    """A fresh registry that obtains SM3 from the precompile stand-in."""
    return deploy_registry(chain, sm3_precompile.address)
