"""The witness over HTTP (in process): tlog-witness statuses, bounds, atomic state, monitoring."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.core.checkpoint import NoteSignature, SignedCheckpoint
from ledger.core.cosignature import Cosignature
from ledger.core.crypto import Sm2PrivateKey
from ledger.errors import LedgerError
from ledger.witness.errors import OldSizeMismatch
from ledger.witness.protocol import MAX_BODY_BYTES, add_checkpoint_body
from ledger.witness.service import origin_hash
from tests.ledger.witness.support import ORIGIN, Node, RefLog, policy_for, start_node

LOG_KEY = Sm2PrivateKey.generate()
WITNESS_KEY = Sm2PrivateKey.generate()
NAME = "court.example/witness"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = start_node(tmp_path, NAME, WITNESS_KEY, policy_for(LOG_KEY, [(NAME, WITNESS_KEY, None)], 1))
    yield made
    made.close()


def _problem(response: object, status: int, reason: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert response.json()["reason"] == reason  # type: ignore[attr-defined]


def _cosignature(text: str) -> Cosignature:
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 2
    return Cosignature.from_signature_line(NoteSignature.from_line(lines[0]))


def test_cosigns_a_growing_log_and_serves_the_cosigned_checkpoint(node: Node) -> None:
    log = RefLog(LOG_KEY)
    log.grow(5)
    first = node.client.post("/add-checkpoint", content=log.body(0))
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    _cosignature(first.text).verify(log.note().checkpoint, WITNESS_KEY.public_key())
    log.grow(20)
    second = node.client.post("/add-checkpoint", content=log.body(5))
    assert second.status_code == 200
    cosig = _cosignature(second.text)
    cosig.verify(log.note().checkpoint, WITNESS_KEY.public_key())
    assert cosig.timestamp > 0

    served = node.client.get(f"/{origin_hash(ORIGIN)}/checkpoint")
    assert served.status_code == 200
    note = SignedCheckpoint.from_text(served.text)
    assert note.checkpoint.size == 25
    note.verify(LOG_KEY.public_key(), ORIGIN)
    Cosignature.from_signature_line(note.signatures[1]).verify(note.checkpoint, WITNESS_KEY.public_key())
    _problem(node.client.get(f"/{'0' * 64}/checkpoint"), 404, "unknown-log")
    _problem(node.client.get("/not-a-hash/checkpoint"), 404, "unknown-log")


def test_stale_old_size_is_409_with_the_latest_size(node: Node) -> None:
    log = RefLog(LOG_KEY)
    log.grow(7)
    assert node.client.post("/add-checkpoint", content=log.body(0)).status_code == 200
    log.grow(3)
    for stale in (0, 3):
        response = node.client.post("/add-checkpoint", content=log.body(stale))
        assert response.status_code == 409
        assert response.headers["content-type"] == "text/x.tlog.size"
        assert response.content == b"7\n"
    assert node.client.post("/add-checkpoint", content=log.body(7)).status_code == 200


def test_forks_and_smaller_trees_are_refused_and_kept_as_evidence(node: Node) -> None:
    log = RefLog(LOG_KEY)
    log.grow(12)
    assert node.client.post("/add-checkpoint", content=log.body(0)).status_code == 200
    fork = log.fork(9)
    fork.grow(3, tag=b"forged")  # same size 12, another root
    _problem(node.client.post("/add-checkpoint", content=fork.body(12)), 422, "inconsistent-checkpoint")
    fork.grow(4, tag=b"forged")  # a larger fork, with its own (valid for it) proof
    _problem(node.client.post("/add-checkpoint", content=fork.body(12)), 422, "inconsistent-checkpoint")
    smaller = add_checkpoint_body(12, [], log.note(10).to_text())
    _problem(node.client.post("/add-checkpoint", content=smaller), 400, "old-size-too-large")
    assert node.client.post("/add-checkpoint", content=log.body(10, 10)).status_code == 409
    stored = node.store.latest(ORIGIN)
    assert stored is not None and stored.head.size == 12 and stored.head.root_hash == log.tree.root(12)
    assert node.store.evidence_count(ORIGIN) == 2


def test_unknown_logs_untrusted_keys_and_garbage(node: Node) -> None:
    log = RefLog(LOG_KEY)
    log.grow(3)
    other_origin = RefLog(LOG_KEY, origin="other.example/log")
    other_origin.grow(3)
    _problem(node.client.post("/add-checkpoint", content=other_origin.body(0)), 404, "unknown-log")
    impostor = RefLog(Sm2PrivateKey.generate())
    impostor.grow(3)
    _problem(node.client.post("/add-checkpoint", content=impostor.body(0)), 403, "untrusted-checkpoint")
    for garbage, reason in (
        (b"", "invalid-request"),
        (b"\x00" * 100, "invalid-request"),
        (b"hello\n\n", "invalid-request"),
        (b"old 0\n\n", "invalid-checkpoint"),
        (b"old 0\n\n" + b"[" * 10_000, "invalid-checkpoint"),
        (
            b"old 0\n\n" + log.note().to_text().split("\n\n")[0].encode() + "\n\n— n ☃☃☃☃\n".encode(),
            "invalid-checkpoint",
        ),
    ):
        _problem(node.client.post("/add-checkpoint", content=garbage), 400, reason)
    _problem(node.client.get("/add-checkpoint"), 405, "method-not-allowed")
    _problem(node.client.get("/nowhere"), 404, "not-found")
    assert node.store.latest(ORIGIN) is None  # nothing was written by any of these


def test_bodies_are_bounded_declared_or_chunked(node: Node) -> None:
    big = b"old 0\n\n" + b"x" * MAX_BODY_BYTES
    _problem(node.client.post("/add-checkpoint", content=big), 413, "body-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(1000):
            yield b"x" * 1024

    _problem(node.client.post("/add-checkpoint", content=chunks()), 413, "body-too-large")
    headers = {"content-length": "9" * 40}
    response = node.client.post("/add-checkpoint", content=b"old 0\n\n", headers=headers)
    assert response.status_code in (400, 413)  # h11 may refuse the header itself; never a 500


def test_check_and_update_are_atomic(node: Node) -> None:
    """Concurrent submissions from the same old size: exactly one is cosigned (tlog-witness race)."""
    log = RefLog(LOG_KEY)
    log.grow(40)
    bodies = [log.body(0, size) for size in range(10, 40, 3)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(body: bytes) -> None:
        try:
            node.witness.add_checkpoint(body)
            result = "cosigned"
        except OldSizeMismatch:
            result = "409"
        except LedgerError as e:
            result = e.reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=submit, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409"] * (len(bodies) - 1) + ["cosigned"]
    stored = node.store.latest(ORIGIN)
    assert stored is not None and stored.head.root_hash == log.tree.root(stored.head.size)


def test_healthz_names_the_witness(node: Node) -> None:
    body = node.client.get("/healthz").json()
    assert body == {
        "status": "ok",
        "name": NAME,
        "public_key": WITNESS_KEY.public_key().hex(),
        "logs": [ORIGIN],
    }
    assert json.loads(json.dumps(body)) == body
