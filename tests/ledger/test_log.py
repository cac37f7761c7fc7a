"""The log service on every storage backend: intake, sequencing, checkpoints, receipts, proofs."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.core.leaf import RecordKind, canonical_metadata, seal_message
from ledger.core.merkle import MemoryTree, verify_consistency, verify_inclusion
from ledger.core.receipt import verify_receipt
from ledger.errors import Conflict, InvalidRequest, InvalidSignature, LogOverloaded, NotFound, NotYetAvailable
from ledger.log import Ledger, RecordStatus, Submission
from tests.conftest import LedgerFactory


def submission(i: int = 0, **kwargs: object) -> Submission:
    """A record whose content hash is derived from ``i``."""
    options: dict[str, object] = {"kind": RecordKind.CERTIFICATE, "content_hash": i.to_bytes(32, "big")}
    options.update(kwargs)
    return Submission(**options)  # type: ignore[arg-type]


def test_submit_sequence_checkpoint_receipt(ledger: Ledger) -> None:
    accepted = ledger.submit("approvals", [submission(i, metadata={"n": i}) for i in range(300)])
    assert len({a.id for a in accepted}) == 300
    assert all(len(bytes.fromhex(a.id)) == 23 for a in accepted)  # 7 bytes of time, 16 random
    assert len({a.id[14:] for a in accepted}) == 300
    assert ledger.record(accepted[0].id).status is RecordStatus.PENDING
    with pytest.raises(NotYetAvailable):
        ledger.receipt(accepted[0].id)

    assert ledger.sequence_all(max_records=128) == 300
    assert ledger.record(accepted[5].id).status is RecordStatus.SEQUENCED
    checkpoint = ledger.issue_checkpoint()
    assert checkpoint is not None and checkpoint.tree_size == 300
    assert ledger.issue_checkpoint() == ledger.store.latest_checkpoint()  # no growth, no new checkpoint

    for record in (accepted[0], accepted[137], accepted[299]):
        receipt = ledger.receipt(record.id)
        result = verify_receipt(receipt, trusted_key=ledger.public_key)
        assert result.tree_size == 300
        assert receipt.record.metadata == {"n": accepted.index(record)}
    indices = sorted(ledger.record(a.id).log_index or 0 for a in accepted)
    assert indices == list(range(300))


def test_tree_matches_reference_and_proofs_verify(ledger: Ledger) -> None:
    reference = MemoryTree(ledger.hasher)
    for start in (0, 257, 600, 700):
        batch = [submission(i) for i in range(start, start + 57 + start % 91)]
        accepted = ledger.submit("s", batch)
        ledger.sequence_all(max_records=100)
        for a in accepted:
            reference.append_hash(a.leaf_hash)
    size = ledger.current_size()
    assert ledger.store.state().root_hash == reference.root(size)
    for old in (1, 57, 256, 257, size - 1):
        proof = ledger.consistency_proof(old, size)
        verify_consistency(ledger.hasher, old, size, reference.root(old), reference.root(size), proof)
    for index in (0, 1, 255, 256, size - 1):
        proof = ledger.inclusion_proof(index, size)
        verify_inclusion(
            ledger.hasher, reference.leaf_hashes[index], index, size, proof, reference.root(size)
        )
        small = ledger.inclusion_proof(index, index + 1)
        verify_inclusion(
            ledger.hasher, reference.leaf_hashes[index], index, index + 1, small, reference.root(index + 1)
        )
    with pytest.raises(InvalidRequest):
        ledger.inclusion_proof(size, size + 1)
    with pytest.raises(InvalidRequest):
        ledger.consistency_proof(3, 2)


def test_idempotency(ledger: Ledger) -> None:
    first = ledger.submit("a", [submission(1, idempotency_key="k1")])[0]
    again = ledger.submit("a", [submission(1, idempotency_key="k1")])[0]
    assert again.id == first.id and again.duplicate
    other_system = ledger.submit("b", [submission(1, idempotency_key="k1")])[0]
    assert other_system.id != first.id  # keys are per calling system
    with pytest.raises(Conflict) as error:
        ledger.submit("a", [submission(2, idempotency_key="k1")])
    assert error.value.reason == "idempotency-conflict"
    with pytest.raises(Conflict):
        ledger.submit("a", [submission(3, idempotency_key="k9"), submission(4, idempotency_key="k9")])
    in_batch = ledger.submit("a", [submission(5, idempotency_key="k5"), submission(5, idempotency_key="k5")])
    assert in_batch[0].id == in_batch[1].id and in_batch[1].duplicate
    assert ledger.store.pending_count() == 3


def test_bulk_is_all_or_nothing(ledger: Ledger) -> None:
    good = [submission(i) for i in range(10)]
    bad = submission(99, seal_key_id="unknown", seal_signature=b"\x30\x00")
    with pytest.raises(InvalidSignature) as error:
        ledger.submit("a", [*good, bad])
    assert "record 10" in error.value.message
    assert ledger.store.pending_count() == 0
    with pytest.raises(InvalidRequest):
        ledger.submit("a", [*good, submission(1, content_hash=b"short")])
    assert ledger.store.pending_count() == 0


def test_seal_accepted_and_bad_seal_refused(ledger: Ledger) -> None:
    system_key = Sm2PrivateKey.generate()
    public = system_key.public_key()
    ledger.store.add_seal_key(public.key_id(), "court", public.hex(), 0)
    metadata = {"case": "2026-津0116-执-1"}
    content = b"\x07" * 32
    message = seal_message(RecordKind.EVIDENCE, HashAlgorithm.SM3, content, canonical_metadata(metadata))
    sealed = submission(
        kind=RecordKind.EVIDENCE,
        content_hash=content,
        metadata=metadata,
        seal_key_id=public.key_id(),
        seal_signature=system_key.sign(message),
    )
    record = ledger.submit("court", [sealed])[0]
    ledger.sequence_all()
    ledger.issue_checkpoint()
    result = verify_receipt(ledger.receipt(record.id), trusted_key=ledger.public_key)
    assert result.sealed_by == public.key_id()
    assert "seal" in result.steps

    forged = submission(
        kind=RecordKind.EVIDENCE,
        content_hash=b"\x08" * 32,  # signature was made over another hash
        metadata=metadata,
        seal_key_id=public.key_id(),
        seal_signature=system_key.sign(message),
    )
    with pytest.raises(InvalidSignature) as error:
        ledger.submit("court", [forged])
    assert error.value.reason == "invalid-seal"
    with pytest.raises(InvalidSignature) as error:
        ledger.submit("someone-else", [sealed])  # key registered for another system
    assert error.value.reason == "unknown-seal-key"


def test_subject_reference_is_keyed_and_raw_id_never_stored(ledger: Ledger) -> None:
    raw = "11010519491231002X"
    ref = ledger.subject_ref(raw)
    assert len(ref) == 32 and ref == ledger.subject_ref(raw.lower())
    record = ledger.submit("a", [submission(1, subject_ref=ref)])[0]
    stored = ledger.store.get_record(record.id)
    assert stored is not None
    assert raw.encode() not in stored.leaf and ref in stored.leaf


def test_back_pressure(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_pending=5)
    ledger.submit("a", [submission(i) for i in range(5)])
    with pytest.raises(LogOverloaded) as error:
        ledger.submit("a", [submission(9)])
    assert error.value.retry_after > 0
    ledger.sequence_all()
    ledger._pending_checked_at = 0.0  # the pending count is re-read at most once a second
    ledger.submit("a", [submission(10)])


def test_unknown_record(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        ledger.record("00" * 16)


def test_checkpoint_text_is_signed_by_log_key(ledger: Ledger) -> None:
    ledger.submit("a", [submission(1)])
    ledger.sequence_all()
    ledger.issue_checkpoint()
    signed = ledger.latest_checkpoint()
    signed.verify(ledger.public_key, ledger.origin)
    assert SignedCheckpoint.from_text(signed.to_text()) == signed
    assert signed.checkpoint.origin == ledger.origin


def test_concurrent_sequencers_never_double_sequence(make_ledger: LedgerFactory) -> None:
    """Several service processes (here: ledgers with their own engines) sequence the same database."""
    writers = [make_ledger() for _ in range(3)]
    accepted: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(ledger: Ledger, offset: int) -> None:
        try:
            for round_ in range(5):
                batch = [submission(offset * 10_000 + round_ * 100 + i) for i in range(100)]
                ids = [a.id for a in ledger.submit(f"w{offset}", batch)]
                with lock:
                    accepted.extend(ids)
                ledger.sequence_all(max_records=70)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w, n)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    writers[0].sequence_all()
    assert writers[0].current_size() == len(accepted) == 1500
    with writers[0].store.engine.connect() as conn:
        indices = [r[0] for r in conn.execute(text("SELECT log_index FROM record ORDER BY log_index"))]
    assert indices == list(range(1500))
    from ledger.audit import audit_log

    assert audit_log(writers[0]).ok


def test_sha256_log_matches_pymerkle(make_ledger: LedgerFactory) -> None:
    """A log can be configured for SHA-256; its root equals the independent pymerkle tree's."""
    from pymerkle import InmemoryTree

    ledger = make_ledger(hash_alg=HashAlgorithm.SHA256)
    ledger.submit("a", [submission(i) for i in range(77)])
    ledger.sequence_all(max_records=30)
    oracle = InmemoryTree(algorithm="sha256")
    for index in range(77):
        stored = ledger.store.record_at(index)
        assert stored is not None
        oracle.append_entry(stored.leaf)
    assert ledger.store.state().root_hash == oracle.get_root()


def test_duplicate_insert_is_atomic_and_named(ledger: Ledger) -> None:
    """A unique-key clash inside a bulk insert stores nothing and raises DuplicateRecord (both drivers)."""
    from ledger.store import DuplicateRecord

    rows = [(f"{i:032x}", "generic", "a", f"k{i % 3}", b"h", 1, b"l", b"\x00" * 32) for i in range(4)]
    with pytest.raises(DuplicateRecord):
        ledger.store.insert_records(rows)
    assert ledger.store.pending_count() == 0


def test_concurrent_same_idempotency_key(make_ledger: LedgerFactory) -> None:
    """Two processes racing with one idempotency key end with one record, both told its id."""
    a, b = make_ledger(), make_ledger()
    results: list[str] = []
    barrier = threading.Barrier(2)

    def submit(ledger: Ledger) -> None:
        barrier.wait()
        results.append(ledger.submit("x", [submission(1, idempotency_key="same")])[0].id)

    threads = [threading.Thread(target=submit, args=(lg,)) for lg in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and results[0] == results[1]
    assert a.store.pending_count() == 1


def test_pending_upper_bound_never_undercounts(ledger: Ledger) -> None:
    ledger.submit("a", [submission(i) for i in range(40)])
    with pytest.raises(InvalidRequest):  # a rolled-back batch may leave a gap in queue positions
        ledger.submit("a", [submission(100), submission(101, content_hash=b"short")])
    assert ledger.store.pending_upper_bound() >= ledger.store.pending_count() == 40
    ledger.sequence(max_records=25)
    assert ledger.store.pending_upper_bound() >= ledger.store.pending_count() == 15
    ledger.sequence_all()
    assert ledger.store.pending_count() == 0


def test_a_document_record_is_encoded_once_by_the_core(ledger: Ledger) -> None:
    """``Submission.of_document``: the content hash is the SM3 of the leaf's own metadata bytes."""
    from ledger.core.crypto import digest_function

    document = {"v": 1, "事件": "合同违约", "n": -(2**53 - 1), "items": [True, None]}
    sub = Submission.of_document(RecordKind.CREDIT_EVENT, document, idempotency_key="doc-1")
    assert sub.metadata_json == canonical_metadata(document)
    assert sub.content_hash == digest_function(HashAlgorithm.SM3)(canonical_metadata(document))
    (accepted,) = ledger.submit("credit", [sub])
    leaf = ledger.record(accepted.id).leaf
    assert leaf.metadata == document and leaf.metadata_json == sub.metadata_json
    with pytest.raises(InvalidRequest):
        Submission.of_document(RecordKind.CREDIT_EVENT, {"score": 1.5})
