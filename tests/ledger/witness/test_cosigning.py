"""The log collects its witnesses' cosignatures; receipts carry them (every storage backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.cosignature import Cosignature, cosign
from ledger.core.crypto import Sm2PrivateKey
from ledger.core.leaf import RecordKind
from ledger.core.policy import TrustPolicy
from ledger.core.receipt import verify_receipt
from ledger.cosigning import (
    Cosigner,
    WitnessFailure,
    WitnessReply,
    cosigning_status,
    schedule_cosigning,
)
from ledger.errors import InvalidReceipt
from ledger.log import Ledger, Submission
from ledger.witness.protocol import add_checkpoint_body
from tests.ledger.witness.support import ORIGIN, InProcessPost, Node, RefLog, policy_for, start_node

W1, W2 = "court.example/w", "audit.example/w"
URL1, URL2 = "http://w1.test", "http://w2.test"
W1_KEY, W2_KEY = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()


@pytest.fixture
def policy(log_key: Sm2PrivateKey) -> TrustPolicy:
    return policy_for(log_key, [(W1, W1_KEY, URL1), (W2, W2_KEY, URL2)], quorum=2)


@pytest.fixture
def nodes(tmp_path: Path, policy: TrustPolicy) -> Iterator[dict[str, Node]]:
    made = {
        URL1: start_node(tmp_path / "w1", W1, W1_KEY, policy),
        URL2: start_node(tmp_path / "w2", W2, W2_KEY, policy),
    }
    yield made
    for node in made.values():
        node.close()


def _grow(ledger: Ledger, count: int) -> list[str]:
    start = ledger.current_size()
    accepted = ledger.submit(
        "s", [Submission(RecordKind.EVIDENCE, (start + i).to_bytes(32, "big")) for i in range(count)]
    )
    ledger.sequence_all()
    assert ledger.issue_checkpoint() is not None
    return [a.id for a in accepted]


def _check_cosigned(note_text: str, policy: TrustPolicy, log_key: Sm2PrivateKey) -> SignedCheckpoint:
    """The note has the log's line first, then one valid cosignature per policy witness."""
    note = SignedCheckpoint.from_text(note_text)
    assert note.signatures[0] == note.verify(log_key.public_key(), ORIGIN)  # other lines ignored
    assert [s.key_name for s in note.signatures[1:]] == sorted(w.name for w in policy.witnesses)
    for witness in policy.witnesses:
        line = next(s for s in note.signatures if s.key_name == witness.name)
        Cosignature.from_signature_line(line).verify(note.checkpoint, witness.key())
    return note


def test_receipts_carry_both_cosignatures_and_verify(
    ledger: Ledger, policy: TrustPolicy, nodes: dict[str, Node], log_key: Sm2PrivateKey
) -> None:
    ids = _grow(ledger, 5)
    post = InProcessPost(nodes)
    cosigner = Cosigner(ledger, policy, post=post)
    assert {o.name: o.cosigned for o in cosigner.collect()} == {W1: (5,), W2: (5,)}
    receipt = ledger.receipt(ids[2])
    _check_cosigned(receipt.checkpoint, policy, log_key)
    assert verify_receipt(receipt, trusted_key=log_key.public_key()).tree_size == 5
    assert verify_receipt(receipt, policy=policy).tree_size == 5  # the policy's quorum of 2 is met
    note = SignedCheckpoint.from_text(receipt.checkpoint)
    one_short = receipt.model_copy(update={"checkpoint": note.only(*note.signatures[:2]).to_text()})
    with pytest.raises(InvalidReceipt) as refused:
        verify_receipt(one_short, policy=policy)
    assert (refused.value.step, refused.value.reason) == ("witness", "witness-quorum")
    # What is stored (and anchored) is the log's note alone.
    stored = ledger.store.latest_checkpoint()
    assert stored is not None and len(SignedCheckpoint.from_text(stored.note).signatures) == 1

    ids += _grow(ledger, 7)
    assert {o.name: o.cosigned for o in cosigner.collect()} == {W1: (12,), W2: (12,)}
    assert sorted(post.sent) == [(URL1, 0), (URL1, 5), (URL2, 0), (URL2, 5)]  # each from its last size
    note = _check_cosigned(ledger.receipt(ids[0]).checkpoint, policy, log_key)
    assert note.checkpoint.size == 12
    _check_cosigned(ledger.latest_checkpoint().to_text(), policy, log_key)  # GET /v1/log/checkpoint
    status = cosigning_status(ledger, policy)
    assert (status.checkpoint_size, status.cosignatures, status.quorum) == (12, 2, 2)
    assert {(w.name, w.acknowledged_size, w.cosigned_size, w.last_error) for w in status.witnesses} == {
        (W1, 12, 12, None),
        (W2, 12, 12, None),
    }
    assert cosigner.collect()[0].cosigned == ()  # nothing new: nothing sent
    assert len(post.sent) == 4


def test_a_forked_checkpoint_is_refused_by_both_witnesses(
    ledger: Ledger, policy: TrustPolicy, nodes: dict[str, Node], log_key: Sm2PrivateKey
) -> None:
    """The operator holds the log key and signs a fork: both witnesses refuse it, and stay put."""
    _grow(ledger, 4)
    _grow(ledger, 5)
    outcomes = Cosigner(ledger, policy, post=InProcessPost(nodes)).collect()
    assert {o.name: o.cosigned for o in outcomes} == {W1: (4, 9), W2: (4, 9)}
    earlier, latest = ledger.store.checkpoints()
    for node in nodes.values():
        forged = RefLog(log_key)
        forged.grow(9, tag=b"forged")  # same size, another root, signed with the log key
        same_size = node.client.post("/add-checkpoint", content=forged.body(9, 9))
        assert same_size.status_code == 422 and same_size.json()["reason"] == "inconsistent-checkpoint"
        forged.grow(4, tag=b"forged")  # larger, with a proof that is valid for the forged tree
        larger = node.client.post("/add-checkpoint", content=forged.body(9))
        assert larger.status_code == 422 and larger.json()["reason"] == "inconsistent-checkpoint"
        back = node.client.post("/add-checkpoint", content=add_checkpoint_body(9, [], earlier.note))
        assert back.status_code == 400 and back.json()["reason"] == "old-size-too-large"
        stale = node.client.post("/add-checkpoint", content=add_checkpoint_body(4, [], earlier.note))
        assert stale.status_code == 409 and stale.content == b"9\n"
        stored = node.store.latest(ORIGIN)
        assert stored is not None and (stored.head.size, stored.head.root_hash) == (9, latest.root_hash)
        assert node.store.evidence_count(ORIGIN) == 2
        again = node.client.post("/add-checkpoint", content=add_checkpoint_body(9, [], latest.note))
        assert again.status_code == 200  # the honest checkpoint is still cosigned


def test_the_collector_retries_after_a_409(
    ledger: Ledger, policy: TrustPolicy, nodes: dict[str, Node], log_key: Sm2PrivateKey
) -> None:
    _grow(ledger, 5)
    note = ledger.store.latest_checkpoint().note  # type: ignore[union-attr]
    # Someone else (a monitor, another log process) brought witness 1 to size 5 already.
    assert (
        nodes[URL1].client.post("/add-checkpoint", content=add_checkpoint_body(0, [], note)).status_code
        == 200
    )
    _grow(ledger, 6)
    post = InProcessPost(nodes)
    outcomes = {o.name: o for o in Cosigner(ledger, policy, post=post).collect()}
    assert outcomes[W1].cosigned == (5, 11) and outcomes[W1].error is None
    assert [old for url, old in post.sent if url == URL1] == [0, 5, 5]  # 409 said 5: retried from 5
    assert outcomes[W2].cosigned == (5, 11)
    ids = ledger.submit("s", [Submission(RecordKind.EVIDENCE, b"\x07" * 32)])
    ledger.sequence_all()
    ledger.issue_checkpoint()
    Cosigner(ledger, policy, post=post).collect()
    _check_cosigned(ledger.receipt(ids[0].id).checkpoint, policy, log_key)


def test_witness_failures_are_recorded_and_never_fatal(
    ledger: Ledger, policy: TrustPolicy, nodes: dict[str, Node], log_key: Sm2PrivateKey
) -> None:
    ids = _grow(ledger, 3)
    working = InProcessPost(nodes)

    def flaky(url: str, body: bytes, timeout_s: float) -> WitnessReply:
        if url.startswith(URL1):
            raise WitnessFailure("connection refused", reason="unreachable")
        return working(url, body, timeout_s)

    outcomes = {o.name: o for o in Cosigner(ledger, policy, post=flaky).collect()}
    assert outcomes[W1].error == "connection refused" and outcomes[W1].cosigned == ()
    assert outcomes[W2].cosigned == (3,)
    status = {w.name: w for w in cosigning_status(ledger, policy).witnesses}
    assert status[W1].last_error == "unreachable: connection refused"
    assert cosigning_status(ledger, policy).cosignatures == 1  # below the quorum of 2, and visible
    note = SignedCheckpoint.from_text(ledger.receipt(ids[0]).checkpoint)
    assert [s.key_name for s in note.signatures] == [ORIGIN, W2]

    def impostor(url: str, body: bytes, timeout_s: float) -> WitnessReply:
        checkpoint = SignedCheckpoint.from_text(body.decode().split("\n\n", 1)[1]).checkpoint
        line = cosign(checkpoint, W1, Sm2PrivateKey.generate(), 5).to_signature_line().to_line()
        return WitnessReply(200, "text/plain", line.encode())

    outcome = Cosigner(ledger, policy, post=impostor).collect_from(policy.witnesses[0], impostor)
    assert outcome.error is not None and "no cosignature by the policy's key" in outcome.error
    assert ledger.store.cosigning_witnesses(3) == [W2]  # nothing stored from the impostor

    def refusing(url: str, body: bytes, timeout_s: float) -> WitnessReply:
        return WitnessReply(422, "application/problem+json", b'{"reason": "inconsistent-checkpoint"}')

    outcome = Cosigner(ledger, policy, post=refusing).collect_from(policy.witnesses[0], refusing)
    assert outcome.error is not None and "HTTP 422 inconsistent-checkpoint" in outcome.error
    _grow(ledger, 1)  # checkpoints go on regardless
    assert ledger.store.latest_checkpoint().tree_size == 4  # type: ignore[union-attr]


def test_garbage_409_answers_are_failures(ledger: Ledger, policy: TrustPolicy) -> None:
    _grow(ledger, 2)
    for reply in (
        WitnessReply(409, "text/plain", b"5\n"),
        WitnessReply(409, "text/x.tlog.size", b"05\n"),
        WitnessReply(409, "text/x.tlog.size", b"9" * 40 + b"\n"),
        WitnessReply(409, "text/x.tlog.size", b"5"),
        WitnessReply(200, "text/plain", b"\xff\n"),
        WitnessReply(200, "text/plain", b"\xe2\x80\x94 x y\n" * 200),
    ):
        outcome = Cosigner(ledger, policy).collect_from(policy.witnesses[0], lambda *_a, r=reply: r)
        assert outcome.error is not None and outcome.cosigned == ()
    with ledger.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM witness_cosignature")).scalar() == 0


def test_scheduling_follows_the_policy_file(ledger: Ledger, log_key: Sm2PrivateKey, tmp_path: Path) -> None:
    class Scheduler:
        def __init__(self) -> None:
            self.jobs: list[dict[str, Any]] = []

        def add_job(self, func: Any, trigger: str, **kwargs: Any) -> None:
            self.jobs.append({"func": func, "trigger": trigger, **kwargs})

    scheduler = Scheduler()
    _grow(ledger, 2)
    closed = "http://127.0.0.1:1"  # nothing listens there: connection refused at once
    policy = policy_for(log_key, [(W1, W1_KEY, closed), (W2, W2_KEY, None)], quorum=1)
    path = tmp_path / "policy.json"
    assert schedule_cosigning(scheduler, ledger, path, 1.0) is None  # no policy: no job
    path.write_text("{not json")
    assert schedule_cosigning(scheduler, ledger, path, 1.0) is None  # a bad policy is logged, not fatal
    path.write_text(policy.to_json())
    cosigner = schedule_cosigning(scheduler, ledger, path, 1.0)
    assert cosigner is not None and [j["id"] for j in scheduler.jobs] == ["cosign"]
    assert [w.name for w in cosigner.witnesses] == [W1]  # a witness without a url is not asked
    assert scheduler.jobs[0]["max_instances"] == 1
    scheduler.jobs[0]["func"]()  # a round against unreachable witnesses: logged, recorded, no raise
    status = {w.name: w for w in cosigning_status(ledger, policy).witnesses}
    error = status[W1].last_error
    assert error is not None and error.startswith("unreachable")
    assert status[W2].last_error is None and status[W2].acknowledged_size is None


def test_a_witness_ahead_of_the_log_is_reported(
    ledger: Ledger, policy: TrustPolicy, nodes: dict[str, Node], log_key: Sm2PrivateKey
) -> None:
    """A witness that cosigned a larger tree than the log has (a fork shown to it, or the log's
    database restored from an old backup) is a loud error, not a silent skip."""
    _grow(ledger, 3)
    elsewhere = RefLog(log_key)
    elsewhere.grow(20, tag=b"forged")
    assert nodes[URL1].client.post("/add-checkpoint", content=elsewhere.body(0)).status_code == 200
    outcome = Cosigner(ledger, policy, post=InProcessPost(nodes)).collect()[0]
    assert outcome.cosigned == () and outcome.error is not None
    assert "has cosigned size 20; this log has 3 leaves" in outcome.error
    status = {w.name: w for w in cosigning_status(ledger, policy).witnesses}
    assert (status[W1].last_error or "").startswith("witness-ahead")
