"""verify_receipt against a trust policy, and the receipt fields nothing used to bind.

Pure: the golden receipt (tests/vectors) and policies built here; no database or chain. Each pinned
fact fails at its own step with its own reason; a verifier without a policy says what it took from
the receipt itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.cosignature import cosign
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, Sm2PublicKey
from ledger.core.policy import PolicyChain, PolicyWitness, TrustPolicy, new_policy
from ledger.core.receipt import STEPS, Receipt, verify_receipt
from ledger.errors import InvalidReceipt, InvalidRequest

VECTORS = Path(__file__).parents[2] / "vectors"
LOG_KEY = Sm2PublicKey.from_pem((VECTORS / "log_key_v1.pub").read_text())
ORIGIN = "golden.trustledger.local/log"
REGISTRY = "0x" + "ab" * 20
ANCHOR = {
    "chain_id": 31337,
    "registry": REGISTRY,
    "log_id": "0x" + "00" * 32,
    "sequence": 0,
    "tree_size": 6,
    "checkpoint_hash": "0x" + "00" * 32,
    "tx_hash": "0x" + "11" * 32,
    "block_number": 5,
    "block_hash": "0x" + "22" * 32,
}


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / "receipt_v1.json").read_text())
    return doc


def _receipt(change: Any = None) -> Receipt:
    doc = _doc()
    if change is not None:
        change(doc)
    return Receipt.from_json(json.dumps(doc))


def _policy(**changes: Any) -> TrustPolicy:
    policy = new_policy(
        origin=ORIGIN,
        hash_alg=HashAlgorithm.SM3,
        log_key=LOG_KEY,
        chain=PolicyChain(chain_id=31337, registries=(REGISTRY,)),
    )
    return TrustPolicy.from_json(policy.model_copy(update=changes).model_dump_json())


def _fails(receipt: Receipt, step: str, reason: str, **kwargs: Any) -> InvalidReceipt:
    with pytest.raises(InvalidReceipt) as failure:
        verify_receipt(receipt, **kwargs)
    assert (failure.value.step, failure.value.reason) == (step, reason), failure.value.message
    return failure.value


def test_policy_pins_every_fact_of_a_good_receipt() -> None:
    policy = _policy()
    result = verify_receipt(_receipt(), policy=policy)
    assert result.steps == ["leaf", "seal", "inclusion", "checkpoint", "origin", "key", "signature"]
    assert result.key_pinned and result.unpinned == () and result.policy_fingerprint == policy.fingerprint()
    assert result.log_key_id == LOG_KEY.key_id()


def test_without_a_policy_every_fact_taken_from_the_receipt_is_listed() -> None:
    result = verify_receipt(_receipt(lambda d: d.update(anchor=ANCHOR)))
    facts = " | ".join(result.unpinned)
    assert f"log key {LOG_KEY.key_id()}" in facts
    assert ORIGIN in facts and "sm3" in facts
    assert "chain id 31337" in facts and REGISTRY in facts
    assert "witnesses" in facts
    pinned_key = verify_receipt(_receipt(), trusted_key=LOG_KEY)
    assert not any("log key" in f for f in pinned_key.unpinned) and pinned_key.unpinned


def test_policy_and_key_together_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        verify_receipt(_receipt(), policy=_policy(), trusted_key=LOG_KEY)


def test_another_origin_or_hash_fails_the_origin_step() -> None:
    other = new_policy(origin="other.example/log", hash_alg=HashAlgorithm.SM3, log_key=LOG_KEY)
    _fails(_receipt(), "origin", "wrong-origin", policy=other)
    sha = new_policy(origin=ORIGIN, hash_alg=HashAlgorithm.SHA256, log_key=LOG_KEY)
    _fails(_receipt(), "origin", "wrong-hash-alg", policy=sha)


def test_log_keys_are_pinned_with_their_ranges() -> None:
    stranger = Sm2PrivateKey.generate().public_key()
    _fails(
        _receipt(),
        "key",
        "untrusted-key",
        policy=new_policy(origin=ORIGIN, hash_alg=HashAlgorithm.SM3, log_key=stranger),
    )
    policy = _policy()
    revoked = policy.log.keys[0].model_copy(update={"revoked": True})
    _fails(
        _receipt(),
        "key",
        "revoked-key",
        policy=_policy(log=policy.log.model_copy(update={"keys": (revoked,)})),
    )
    # Rotated at size 5: the old key signs up to size 5 only; the golden checkpoint is size 6.
    rotated = policy.with_rotated_log_key(stranger, at_size=5)
    _fails(_receipt(), "key", "key-out-of-range", policy=rotated)
    # Rotated at size 6: the old key still signs size 6 (both keys may sign the rotation head).
    assert verify_receipt(_receipt(), policy=policy.with_rotated_log_key(stranger, at_size=6)).tree_size == 6
    # A key that starts later does not cover older checkpoints either.
    late = policy.log.keys[0].model_copy(update={"from_size": 7})
    _fails(
        _receipt(),
        "key",
        "key-out-of-range",
        policy=_policy(log=policy.log.model_copy(update={"keys": (late,)})),
    )


def test_log_key_id_must_be_the_key_s_id() -> None:
    """A tampered log.key_id used to be printed as the signer; now it fails the key step."""
    forged = _receipt(lambda d: d["log"].update(key_id="00" * 16))
    for kwargs in ({}, {"trusted_key": LOG_KEY}, {"policy": _policy()}):
        _fails(forged, "key", "key-id-mismatch", **kwargs)


def test_seal_key_id_must_be_the_seal_key_s_id() -> None:
    forged = _receipt(lambda d: d["record"]["seal"].update(key_id="00" * 16))
    _fails(forged, "seal", "seal-key-id-mismatch")
    assert verify_receipt(_receipt()).sealed_by == _doc()["record"]["seal"]["key_id"]


@pytest.mark.parametrize("field", ["format", "version"])
def test_format_and_version_are_required(field: str) -> None:
    """A receipt without them used to be read with defaults."""
    with pytest.raises(InvalidReceipt) as failure:
        _receipt(lambda d: d.pop(field))
    assert failure.value.step == "parse" and field in failure.value.message


def _witnesses(count: int) -> list[tuple[str, Sm2PrivateKey]]:
    return [(f"witness{i}.example/w", Sm2PrivateKey.generate()) for i in range(count)]


def _cosigned(witnesses: list[tuple[str, Sm2PrivateKey]], extra: str = "") -> Receipt:
    doc = _doc()
    signed = SignedCheckpoint.from_text(doc["checkpoint"])
    lines = [
        cosign(signed.checkpoint, name, key, 1_800_000_000).to_signature_line() for name, key in witnesses
    ]
    doc["checkpoint"] = signed.with_signatures(lines).to_text() + extra
    return Receipt.from_json(json.dumps(doc))


def _witness_policy(witnesses: list[tuple[str, Sm2PrivateKey]], quorum: int) -> TrustPolicy:
    named = tuple(PolicyWitness(name=n, public_key=k.public_key().hex()) for n, k in witnesses)
    return _policy(witnesses=named, witness_quorum=quorum)


def test_witness_quorum_counts_valid_cosignatures_of_policy_witnesses() -> None:
    a, b, c = _witnesses(3)
    policy = _witness_policy([a, b, c], quorum=2)
    stranger = _witnesses(1)  # a cosigner the policy does not name: ignored, never counted
    result = verify_receipt(_cosigned([a, b, *stranger]), policy=policy)
    assert result.cosigned_by == (a[0], b[0]) and "witness" in result.steps and result.witness_quorum == 2
    failure = _fails(_cosigned([a, *stranger]), "witness", "witness-quorum", policy=policy)
    assert "1 of" in failure.message and "requires 2" in failure.message
    _fails(_receipt(), "witness", "witness-quorum", policy=policy)
    # Without a policy the same receipts verify (cosignatures are not required there) and the
    # log's own line is still the one that is checked.
    assert verify_receipt(_cosigned([a, *stranger]), trusted_key=LOG_KEY).steps[-1] == "signature"


def test_a_bad_cosignature_of_a_policy_witness_fails() -> None:
    a, b = _witnesses(2)
    receipt = _cosigned([a, b])
    signed = SignedCheckpoint.from_text(receipt.checkpoint)
    line = signed.signatures[2]
    flipped = line.blob[:-1] + bytes([line.blob[-1] ^ 1])
    bad = signed.only(
        signed.signatures[0], signed.signatures[1], type(line)(line.key_name, line.key_hash, flipped)
    )
    forged = receipt.model_copy(update={"checkpoint": bad.to_text()})
    _fails(forged, "witness", "invalid-cosignature", policy=_witness_policy([a, b], quorum=1))


def test_anchor_outside_the_policy_fails_before_any_chain_data() -> None:
    """No observations are given: the pins are checked offline, so nothing is read from a foreign chain."""
    on_other_chain = _receipt(lambda d: d.update(anchor={**ANCHOR, "chain_id": 1}))
    _fails(on_other_chain, "chain", "wrong-chain", policy=_policy())
    other_registry = _receipt(lambda d: d.update(anchor={**ANCHOR, "registry": "0x" + "cd" * 20}))
    failure = _fails(other_registry, "registry", "untrusted-registry", policy=_policy())
    assert REGISTRY in failure.message
    _fails(other_registry, "chain", "no-chain-pinned", policy=_policy(chain=None))
    # The pinned registry in another letter case is the same address.
    upper = _receipt(lambda d: d.update(anchor={**ANCHOR, "registry": "0x" + "AB" * 20}))
    assert verify_receipt(upper, policy=_policy()).steps[-2:] == ["chain", "registry"]


def test_steps_are_declared_in_order() -> None:
    for new in ("origin", "witness", "chain", "registry"):
        assert new in STEPS
    assert STEPS.index("registry") < STEPS.index("anchor")
