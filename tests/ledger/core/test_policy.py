"""The trust policy document: validation, key ranges, rotation."""

from __future__ import annotations

import json

import pytest

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.core.policy import PolicyChain, PolicyWitness, TrustPolicy, new_policy
from ledger.errors import ConfigurationError

REGISTRY = "0x" + "ab" * 20


def _policy() -> tuple[TrustPolicy, Sm2PrivateKey]:
    key = Sm2PrivateKey.generate()
    witness = Sm2PrivateKey.generate().public_key()
    policy = new_policy(
        origin="city.example/log",
        hash_alg=HashAlgorithm.SM3,
        log_key=key.public_key(),
        chain=PolicyChain(chain_id=31337, registries=(REGISTRY,), rpc_urls=("http://127.0.0.1:8545",)),
        witnesses=(PolicyWitness(name="court.example/w", public_key=witness.hex()),),
        witness_quorum=1,
    )
    return policy, key


def test_round_trip_and_fingerprint() -> None:
    policy, _ = _policy()
    again = TrustPolicy.from_json(policy.to_json())
    assert again == policy
    assert again.fingerprint() == policy.fingerprint()
    assert policy.chain is not None and policy.chain.has_registry(REGISTRY.upper().replace("0X", "0x"))


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("format",), "other", "format"),
        (("version",), 2, "version"),
        (("witness_quorum",), 2, "top"),
        (("log", "keys", 0, "key_id"), "00" * 16, "log.keys.0"),
        (("chain", "registries"), ["0x12"], "chain.registries"),
        (("chain", "rpc_urls"), ["ftp://x"], "chain.rpc_urls"),
        (("log", "origin"), "two\nlines", "log.origin"),
    ],
)
def test_invalid_documents_name_the_field(path: tuple[object, ...], value: object, where: str) -> None:
    policy, _ = _policy()
    document = json.loads(policy.to_json())
    target = document
    for step in path[:-1]:
        target = target[step]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    with pytest.raises(ConfigurationError, match=f"at {where}"):
        TrustPolicy.from_json(json.dumps(document))


def test_missing_format_is_refused() -> None:
    policy, _ = _policy()
    document = json.loads(policy.to_json())
    del document["format"]
    with pytest.raises(ConfigurationError):
        TrustPolicy.from_json(json.dumps(document))


def test_rotation_keeps_old_keys_for_old_sizes() -> None:
    policy, old = _policy()
    new = Sm2PrivateKey.generate().public_key()
    rotated = policy.with_rotated_log_key(new, at_size=500)
    assert rotated.serial == policy.serial + 1
    assert [k.key_id for k in rotated.log_keys_for(499)] == [old.public_key().key_id()]
    assert {k.key_id for k in rotated.log_keys_for(500)} == {old.public_key().key_id(), new.key_id()}
    assert [k.key_id for k in rotated.log_keys_for(501)] == [new.key_id()]
    with pytest.raises(ConfigurationError):
        rotated.with_rotated_log_key(new, at_size=600)


def test_revoked_keys_cover_nothing() -> None:
    policy, key = _policy()
    document = json.loads(policy.to_json())
    document["log"]["keys"][0]["revoked"] = True
    revoked = TrustPolicy.from_json(json.dumps(document))
    assert revoked.log_keys_for(0) == []
    entry = revoked.log_key_entry(key.public_key())
    assert entry is not None and entry.revoked
