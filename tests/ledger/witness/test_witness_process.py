"""Two real ``trustledger witness serve`` processes, the log collecting over HTTP, a kill -9 restart.

The witnesses are set up with the CLI as an agency would (``witness init``, ``witness public-key``
into the policy's ``witnesses``); a witness killed mid-way and started again over the same data
directory keeps its state: it answers 409 with the size it had, and still refuses a fork.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.main import main
from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.cosignature import Cosignature
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.core.leaf import RecordKind
from ledger.core.policy import PolicyWitness, TrustPolicy, new_policy
from ledger.core.receipt import verify_receipt
from ledger.cosigning import Cosigner, cosigning_status
from ledger.log import Ledger, Submission
from ledger.store import LogStore, make_engine
from ledger.witness.protocol import add_checkpoint_body
from tests.ledger.witness.support import ORIGIN, RefLog
from tests.service import Service, free_port

pytestmark = pytest.mark.slow


class WitnessProcess(Service):
    """``trustledger witness serve`` on a loopback port."""

    def __init__(self, data_dir: Path, policy: Path, port: int) -> None:
        command = ("witness", "serve", "--data-dir", str(data_dir), "--policy", str(policy))
        super().__init__(dict(os.environ), port, command=command)

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/add-checkpoint", content=body, timeout=10)


def _witness_entry(data_dir: Path, name: str, url: str, capsys: pytest.CaptureFixture[str]) -> PolicyWitness:
    assert main(["witness", "init", "--data-dir", str(data_dir), "--name", name]) == 0
    capsys.readouterr()
    assert main(["witness", "public-key", "--data-dir", str(data_dir), "--url", url]) == 0
    return PolicyWitness.model_validate(json.loads(capsys.readouterr().out))


@pytest.fixture
def ledger(tmp_path: Path, log_key: Sm2PrivateKey) -> Iterator[Ledger]:
    made = Ledger(
        LogStore(make_engine(f"sqlite:///{tmp_path / 'log.db'}")),
        origin=ORIGIN,
        hash_alg=HashAlgorithm.SM3,
        signing_key=log_key,
        subject_secret=b"s" * 32,
    )
    made.create_schema()
    yield made
    made.store.engine.dispose()


def _grow(ledger: Ledger, count: int) -> str:
    start = ledger.current_size()
    accepted = ledger.submit(
        "s", [Submission(RecordKind.EVIDENCE, (start + i).to_bytes(32, "big")) for i in range(count)]
    )
    ledger.sequence_all()
    ledger.issue_checkpoint()
    return accepted[-1].id


def _cosigners(note_text: str, policy: TrustPolicy) -> list[str]:
    note = SignedCheckpoint.from_text(note_text)
    names = []
    for witness in policy.witnesses:
        line = next((s for s in note.signatures if s.key_name == witness.name), None)
        if line is not None:
            Cosignature.from_signature_line(line).verify(note.checkpoint, witness.key())
            names.append(witness.name)
    return names


def test_witness_processes_cosign_survive_kill_and_refuse_forks(
    tmp_path: Path, ledger: Ledger, log_key: Sm2PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = [free_port(), free_port()]
    dirs = [tmp_path / "court", tmp_path / "audit"]
    entries = [
        _witness_entry(dirs[0], "court.example/w", f"http://127.0.0.1:{ports[0]}", capsys),
        _witness_entry(dirs[1], "audit.example/w", f"http://127.0.0.1:{ports[1]}", capsys),
    ]
    policy = new_policy(
        origin=ORIGIN,
        hash_alg=HashAlgorithm.SM3,
        log_key=log_key.public_key(),
        witnesses=tuple(entries),
        witness_quorum=2,
    )
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(policy.to_json())
    witnesses = [WitnessProcess(d, policy_file, p) for d, p in zip(dirs, ports, strict=True)]
    try:
        cosigner = Cosigner(ledger, policy, timeout_s=5.0)
        first = _grow(ledger, 5)
        assert all(o.cosigned == (5,) for o in cosigner.collect())
        receipt = ledger.receipt(first)
        assert _cosigners(receipt.checkpoint, policy) == [e.name for e in entries]
        verify_receipt(receipt, trusted_key=log_key.public_key())

        witnesses[0].kill()  # mid-way: the log goes on, the other witness keeps cosigning
        latest = _grow(ledger, 4)
        outcomes = {o.name: o for o in cosigner.collect()}
        assert outcomes[entries[0].name].error is not None
        assert outcomes[entries[1].name].cosigned == (9,)
        assert _cosigners(ledger.receipt(latest).checkpoint, policy) == [entries[1].name]
        status = {w.name: w for w in cosigning_status(ledger, policy).witnesses}
        assert (status[entries[0].name].last_error or "").startswith("unreachable")

        witnesses[0] = WitnessProcess(dirs[0], policy_file, ports[0])  # same data dir
        checkpoint_5 = ledger.store.checkpoint_at(5)
        assert checkpoint_5 is not None
        stale = witnesses[0].post(add_checkpoint_body(0, [], checkpoint_5.note))
        assert stale.status_code == 409 and stale.text == "5\n"  # it kept its state over the kill
        assert stale.headers["content-type"] == "text/x.tlog.size"
        for witness, size in zip(witnesses, (5, 9), strict=True):
            forged = RefLog(log_key)
            forged.grow(size, tag=b"forged")  # the size the witness is at, another root
            fork = witness.post(forged.body(size, size))
            assert fork.status_code == 422 and fork.json()["reason"] == "inconsistent-checkpoint"
        smaller = witnesses[1].post(add_checkpoint_body(9, [], checkpoint_5.note))
        assert smaller.status_code == 400 and smaller.json()["reason"] == "old-size-too-large"

        assert {o.name: o.cosigned for o in cosigner.collect()}[entries[0].name] == (9,)
        assert _cosigners(ledger.receipt(latest).checkpoint, policy) == [e.name for e in entries]
        assert cosigning_status(ledger, policy).cosignatures == 2
    finally:
        for witness in witnesses:
            witness.kill()
