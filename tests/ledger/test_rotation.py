"""Log key rotation with the trust policy's key ranges: old receipts keep verifying, new checkpoints
use the new key, audit checks each checkpoint with the key valid for its size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.audit import audit_log
from ledger.core.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from ledger.core.crypto import Sm2PrivateKey, Sm2PublicKey
from ledger.core.policy import TrustPolicy
from ledger.core.receipt import Receipt, verify_receipt
from ledger.errors import ConfigurationError, InvalidReceipt
from ledger.keyfiles import KeyFiles, KeyPurpose
from ledger.keys import load_log_key
from ledger.log import Ledger
from ledger.policy_file import read_policy_if_present
from ledger.rotation import finish_pending_rotation, retired_key_path, rotate_log_key
from ledger.service import init_deployment, open_ledger
from ledger.settings import Settings
from tests.ledger.test_log import submission


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[Settings, Ledger]]:
    """An initialised deployment on each backend, opened as the running service would open it."""
    settings = Settings(data_dir=tmp_path / "var", database_url=database_url, chain_backend="none")  # type: ignore[arg-type]
    init_deployment(settings)
    ledger = open_ledger(settings)
    yield settings, ledger
    ledger.store.engine.dispose()


def add_and_checkpoint(ledger: Ledger, first: int, count: int) -> list[str]:
    accepted = ledger.submit("approvals", [submission(i) for i in range(first, first + count)])
    ledger.sequence_all()
    assert ledger.issue_checkpoint() is not None
    return [a.id for a in accepted]


def fresh(receipt: Receipt) -> Receipt:
    """The receipt as a verifier reads it from its file."""
    return Receipt.from_json(receipt.to_json())


def verify_with_policy(receipt: Receipt, policy: TrustPolicy) -> Sm2PublicKey:
    """Verify against the policy (its key for the receipt's size); the key that verified."""
    result = verify_receipt(receipt, policy=policy)
    return next(k.key() for k in policy.log.keys if k.key_id == result.log_key_id)


def test_rotation_keeps_old_receipts_valid_and_signs_new_checkpoints_with_the_new_key(
    deployment: tuple[Settings, Ledger],
) -> None:
    settings, ledger = deployment
    files = KeyFiles.for_settings(settings)
    before = add_and_checkpoint(ledger, 0, 5)
    r1 = fresh(ledger.receipt(before[0]))
    old_key = ledger.public_key
    old_private = load_log_key(settings.log_key_path, files)

    # No policy.json (init wrote one; an older deployment has none): rotation creates one from the
    # current key, then rotates.
    settings.policy_path.unlink()
    result = rotate_log_key(settings, files, ledger)
    at_size = result.at_size
    assert result.created_policy and at_size == ledger.current_size()
    new_key = result.new_key
    assert result.old_key == old_key != new_key
    # The running ledger (same object, as a service would be) now names the new key.
    assert ledger.public_key == new_key
    # The old key is kept, sealed as a retired key that cannot pass for the log key.
    retired = retired_key_path(settings, old_key)
    assert load_log_key(retired, files, KeyPurpose.RETIRED_LOG_KEY) == old_private
    with pytest.raises(ConfigurationError, match="not a 'log-key' one"):
        load_log_key(retired, files)
    # A receipt issued now for an old record, against the old checkpoint, names the old key.
    again = fresh(ledger.receipt(before[0]))
    assert again.log.key_id == old_key.key_id() and again.log.public_key == old_key.hex()

    after = add_and_checkpoint(ledger, 5, 5)
    r2 = fresh(ledger.receipt(after[0]))
    signed = SignedCheckpoint.from_text(r2.checkpoint)
    assert signed.signature_of(settings.log_origin, new_key) is not None
    assert signed.signature_of(settings.log_origin, old_key) is None
    assert r2.log.key_id == new_key.key_id()

    policy = read_policy_if_present(settings.policy_path)
    assert policy is not None and policy.serial == 2
    # Both keys may sign exactly the size at the rotation (R1's); only the new one any later size.
    assert r1.inclusion.tree_size == at_size
    assert old_key.key_id() in [k.key_id for k in policy.log_keys_for(r1.inclusion.tree_size)]
    assert new_key.key_id() in [k.key_id for k in policy.log_keys_for(r2.inclusion.tree_size)]
    assert old_key.key_id() not in [k.key_id for k in policy.log_keys_for(r2.inclusion.tree_size)]
    used = verify_with_policy(r1, policy)
    assert used == old_key
    used = verify_with_policy(again, policy)
    assert used == old_key
    used = verify_with_policy(r2, policy)
    assert used == new_key
    with pytest.raises(InvalidReceipt) as error:
        verify_receipt(r1, trusted_key=new_key)  # R1 does not verify against the new key alone
    assert error.value.step == "key"
    with pytest.raises(InvalidReceipt):
        verify_receipt(r2, trusted_key=old_key)

    report = audit_log(ledger, policy=policy)
    assert report.ok, report.findings
    assert report.checkpoints_checked == 2
    # Without the policy, the current key alone flags the checkpoint from before the rotation.
    assert not audit_log(ledger, new_key).ok

    # The old key signing a checkpoint at a size after the rotation is flagged.
    ledger.submit("approvals", [submission(99)])
    ledger.sequence_all()
    state = ledger.store.state()
    assert state.size > at_size + 1
    forged = sign_checkpoint(
        Checkpoint(settings.log_origin, state.size, bytes(state.root_hash), ledger.hash_alg, ledger.clock()),
        settings.log_origin,
        old_private,
    )
    with ledger.store.checkpoint_lock() as conn:
        assert conn is not None
        timestamp = forged.checkpoint.timestamp_us
        ledger.store.add_checkpoint(conn, state.size, bytes(state.root_hash), timestamp, forged.to_text())
    report = audit_log(ledger, policy=policy)
    assert [f.where for f in report.findings] == [f"checkpoint #3 (size {state.size})"], report.findings
    assert old_key.key_id() in report.findings[0].problem


def test_a_running_service_never_signs_a_size_the_policy_denies_its_key(
    deployment: tuple[Settings, Ledger],
) -> None:
    settings, ledger = deployment
    files = KeyFiles.for_settings(settings)
    add_and_checkpoint(ledger, 0, 3)
    original = settings.log_key_path.read_bytes()
    result = rotate_log_key(settings, files, ledger)
    # A crash between publishing the policy and installing the key: the old key is on disk again.
    pending = settings.log_key_path.with_name("log-key.json.next")
    pending.write_bytes(settings.log_key_path.read_bytes())
    settings.log_key_path.write_bytes(original)
    ledger.submit("approvals", [submission(50)])
    ledger.sequence_all()
    with pytest.raises(ConfigurationError, match="may not sign a checkpoint of size"):
        ledger.issue_checkpoint()
    # Running rotate (or init) again finishes the interrupted rotation.
    assert finish_pending_rotation(settings, files)
    issued = ledger.issue_checkpoint()
    assert issued is not None
    assert SignedCheckpoint.from_text(issued.note).signature_of(settings.log_origin, result.new_key)
    policy = read_policy_if_present(settings.policy_path)
    assert policy is not None and audit_log(ledger, policy=policy).ok


def test_rotation_resumes_from_an_existing_policy_and_refuses_a_foreign_one(
    deployment: tuple[Settings, Ledger],
) -> None:
    settings, ledger = deployment
    files = KeyFiles.for_settings(settings)
    add_and_checkpoint(ledger, 0, 2)
    first = rotate_log_key(settings, files, ledger)
    add_and_checkpoint(ledger, 2, 2)
    second = rotate_log_key(settings, files, ledger)
    assert not second.created_policy and second.policy.serial == 3
    assert second.old_key == first.new_key
    add_and_checkpoint(ledger, 4, 2)
    assert audit_log(ledger, policy=second.policy).ok
    assert [k.until_size for k in second.policy.log.keys] == [first.at_size + 1, second.at_size + 1, None]

    document = json.loads(settings.policy_path.read_text())
    document["log"]["origin"] = "someone.else/log"
    settings.policy_path.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="describes log someone.else/log"):
        rotate_log_key(settings, files, ledger)
    assert ledger.public_key == Sm2PrivateKey(load_log_key(settings.log_key_path, files).raw).public_key()
