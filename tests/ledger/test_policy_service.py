"""The deployment's policy drives its own anchoring: init writes it, the anchorer refuses any other chain.

``trustledger init`` writes policy.json from the log key, origin, hash and chain.json; a chain.json
whose registry or chain id the policy does not name (or a policy for another log or key) stops the
anchorer with a ConfigurationError before anything is sent; ``chain-deploy`` records a newly
deployed registry as the policy's next revision.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ledger.chain.config import ChainBackend, ChainConfig
from ledger.core.crypto import Sm2PrivateKey
from ledger.core.policy import TrustPolicy
from ledger.errors import ConfigurationError
from ledger.policy_file import read_policy, write_policy
from ledger.service import (
    init_deployment,
    open_anchorer,
    open_ledger,
    record_chain_in_policy,
)
from ledger.settings import Settings


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One deployment with the embedded chain (init is slow: it deploys the registry)."""
    data_dir = tmp_path_factory.mktemp("deployment")
    result = init_deployment(Settings(data_dir=data_dir))
    assert result.created_policy and result.created_chain
    return data_dir


def _copy(source: Path, target: Path) -> Settings:
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    # The development KEK lives beside the data dir, so a copy of the directory needs it named.
    return Settings(data_dir=target, kek_file=source.with_name(source.name + ".kek"))


def test_init_writes_the_policy_from_the_deployment(initialised: Path) -> None:
    settings = Settings(data_dir=initialised)
    policy = read_policy(settings.policy_path)
    config = settings.chain_config()
    assert config is not None and policy.chain is not None
    ledger = open_ledger(settings)
    assert policy.log.origin == settings.log_origin and policy.log.hash_alg == settings.hash_alg
    assert [k.public_key for k in policy.log.keys] == [ledger.public_key.hex()]
    assert policy.chain.chain_id == config.chain_id and policy.chain.registries == (config.registry_address,)
    assert policy.chain.rpc_urls == ()  # the embedded chain has no URL
    assert stat.S_IMODE(settings.policy_path.stat().st_mode) == 0o644  # a public document
    anchorer = open_anchorer(ledger, settings)
    assert anchorer is not None
    anchorer.close()
    ledger.store.engine.dispose()


def _refused(settings: Settings, match: str) -> None:
    ledger = open_ledger(settings)
    try:
        with pytest.raises(ConfigurationError, match=match):
            open_anchorer(ledger, settings)
    finally:
        ledger.store.engine.dispose()


def test_anchorer_refuses_a_chain_the_policy_does_not_name(initialised: Path, tmp_path: Path) -> None:
    settings = _copy(initialised, tmp_path)
    config = settings.chain_config()
    assert config is not None
    other_registry = config.model_copy(update={"registry_address": "0x" + "cd" * 20})
    other_registry.save(settings.chain_config_path)
    _refused(settings, "does not name")
    config.model_copy(update={"chain_id": 7}).save(settings.chain_config_path)
    _refused(settings, "pins chain")
    config.save(settings.chain_config_path)
    settings.policy_path.unlink()
    _refused(settings, "no trust policy")


def test_anchorer_refuses_a_policy_for_another_log_or_key(initialised: Path, tmp_path: Path) -> None:
    settings = _copy(initialised, tmp_path)
    policy = read_policy(settings.policy_path)
    log = policy.log.model_copy(update={"origin": "other.example/log"})
    write_policy(settings.policy_path, policy.model_copy(update={"log": log}))
    _refused(settings, "is for log")
    stranger = Sm2PrivateKey.generate().public_key()
    rotated = policy.with_rotated_log_key(stranger, at_size=0)  # the key in use retires at size 1
    ledger = open_ledger(settings)
    from tests.ledger.chain_fixtures import notarize

    notarize(ledger, 2)
    ledger.store.engine.dispose()
    write_policy(settings.policy_path, rotated)
    _refused(settings, "not valid at size 2")
    revoked = policy.log.keys[0].model_copy(update={"revoked": True})
    revoked_log = policy.log.model_copy(update={"keys": (revoked,)})
    write_policy(
        settings.policy_path,
        TrustPolicy.from_json(policy.model_copy(update={"log": revoked_log}).model_dump_json()),
    )
    _refused(settings, "revoked")


def test_a_deployed_registry_becomes_the_next_policy_revision(initialised: Path, tmp_path: Path) -> None:
    settings = _copy(initialised, tmp_path)
    before = read_policy(settings.policy_path)
    assert before.chain is not None
    same_chain = ChainConfig(
        backend=ChainBackend.RPC,
        chain_id=before.chain.chain_id,
        registry_address="0x" + "ef" * 20,
        rpc_urls=("http://127.0.0.1:8545",),
    )
    revised = record_chain_in_policy(settings, same_chain)
    assert revised is not None and revised.serial == before.serial + 1
    assert revised.chain is not None
    assert revised.chain.registries == (*before.chain.registries, same_chain.registry_address)
    assert revised.chain.rpc_urls == ("http://127.0.0.1:8545",)
    assert read_policy(settings.policy_path) == revised
    assert record_chain_in_policy(settings, same_chain) == revised  # nothing new: not rewritten
    other_chain = same_chain.model_copy(update={"chain_id": 31337})
    moved = record_chain_in_policy(settings, other_chain)
    assert moved is not None and moved.chain is not None and moved.chain.chain_id == 31337
    assert moved.chain.registries == (other_chain.registry_address,) and moved.serial == before.serial + 2
    assert json.loads(settings.policy_path.read_text())["serial"] == moved.serial
    assert record_chain_in_policy(Settings(data_dir=tmp_path / "none"), other_chain) is None
