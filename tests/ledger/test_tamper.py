"""Tamper tests: one byte changed directly in the database is caught by audit and by verify."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from ledger.audit import audit_log
from ledger.core.receipt import Receipt, verify_receipt
from ledger.errors import InvalidReceipt, InvalidRequest
from ledger.log import Ledger
from tests.ledger.test_log import submission

SIZE = 600  # more than two full level-0 tiles


@pytest.fixture
def filled(ledger: Ledger) -> tuple[Ledger, list[str]]:
    """A log of SIZE records with two checkpoints (at 300 and at SIZE)."""
    first = ledger.submit("a", [submission(i, metadata={"i": i}) for i in range(300)])
    ledger.sequence_all()
    ledger.issue_checkpoint()
    second = ledger.submit("a", [submission(i, metadata={"i": i}) for i in range(300, SIZE)])
    ledger.sequence_all()
    ledger.issue_checkpoint()
    assert audit_log(ledger).ok
    return ledger, [a.id for a in first + second]


def flip_byte(blob: bytes, position: int) -> bytes:
    """``blob`` with one byte changed."""
    changed = bytearray(blob)
    changed[position] ^= 0x01
    return bytes(changed)


def edit(ledger: Ledger, sql: str, **params: object) -> None:
    """Run an UPDATE directly against the database, as an intruder would."""
    with ledger.store.engine.begin() as conn:
        conn.execute(text(sql), params)


def receipt_fails(ledger: Ledger, record_id: str) -> InvalidReceipt:
    """The receipt issued now does not verify; return the error."""
    receipt = Receipt.from_json(ledger.receipt(record_id).to_json())
    with pytest.raises(InvalidReceipt) as error:
        verify_receipt(receipt, trusted_key=ledger.public_key)
    return error.value


def leaf_of(ledger: Ledger, index: int) -> bytes:
    stored = ledger.store.record_at(index)
    assert stored is not None
    return stored.leaf


@pytest.mark.parametrize("position", [-1, 12, 30, 70])  # reserved tail, kind, content hash, metadata
def test_changed_leaf_byte(filled: tuple[Ledger, list[str]], position: int) -> None:
    ledger, ids = filled
    index = 417
    leaf = leaf_of(ledger, index)
    edit(
        ledger, "UPDATE record SET leaf = :leaf WHERE log_index = :i", leaf=flip_byte(leaf, position), i=index
    )
    report = audit_log(ledger)
    assert not report.ok
    assert {f.log_index for f in report.findings if f.log_index is not None} == {index}
    if position in (30, 70):  # a still-decodable leaf yields a receipt whose proof misses the root
        assert receipt_fails(ledger, ids[index]).step == "inclusion"
    else:  # an undecodable leaf cannot even be served as a receipt
        with pytest.raises(InvalidRequest):
            ledger.receipt(ids[index])


def test_changed_leaf_hash_column(filled: tuple[Ledger, list[str]]) -> None:
    ledger, _ = filled
    stored = ledger.store.record_at(3)
    assert stored is not None
    edit(ledger, "UPDATE record SET leaf_hash = :h WHERE log_index = 3", h=flip_byte(stored.leaf_hash, 0))
    findings = audit_log(ledger).findings
    assert {f.log_index for f in findings} == {3}
    assert "stored leaf hash" in findings[0].problem


def test_changed_tree_node(filled: tuple[Ledger, list[str]]) -> None:
    ledger, ids = filled
    with ledger.store.engine.connect() as conn:
        blob = conn.execute(text("SELECT hashes FROM tile WHERE level = 0 AND idx = 1")).scalar_one()
    node = 10  # node 266 of level 0: the leaf hash of index 266
    edit(
        ledger, "UPDATE tile SET hashes = :b WHERE level = 0 AND idx = 1", b=flip_byte(bytes(blob), node * 32)
    )
    report = audit_log(ledger)
    assert any(f.log_index == 266 and "tile 0/1" in f.where for f in report.findings)
    fresh = Ledger(
        ledger.store,
        origin=ledger.origin,
        hash_alg=ledger.hash_alg,
        signing_key=ledger._signing_key,
        subject_secret=b"s" * 32,
    )  # a new process: no tile cache
    assert receipt_fails(fresh, ids[267]).step == "inclusion"  # leaf 266's hash is its first sibling
    assert receipt_fails(fresh, ids[300]).step == "inclusion"  # node 256..271 is on its path
    # Leaf 266's own proof does not contain its own hash, which is recomputed from the leaf.
    verify_receipt(fresh.receipt(ids[266]), trusted_key=fresh.public_key)


def test_changed_checkpoint(filled: tuple[Ledger, list[str]]) -> None:
    ledger, ids = filled
    latest = ledger.store.latest_checkpoint()
    assert latest is not None
    forged = latest.note.replace(f"\n{SIZE}\n", f"\n{SIZE - 1}\n")
    edit(ledger, "UPDATE checkpoint SET note = :n WHERE tree_size = :s", n=forged, s=SIZE)
    report = audit_log(ledger)
    assert any(f"size {SIZE}" in f.where and "signature" in f.problem for f in report.findings)
    assert receipt_fails(ledger, ids[5]).step in {"inclusion", "signature"}


def test_checkpoint_signature_byte(filled: tuple[Ledger, list[str]]) -> None:
    ledger, ids = filled
    latest = ledger.store.latest_checkpoint()
    assert latest is not None
    body, _, sig_line = latest.note.rpartition("\n\n")
    prefix, _, blob = sig_line.rstrip("\n").rpartition(" ")
    forged_blob = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    forged = f"{body}\n\n{prefix} {forged_blob}\n"
    edit(ledger, "UPDATE checkpoint SET note = :n WHERE tree_size = :s", n=forged, s=SIZE)
    assert not audit_log(ledger).ok
    assert receipt_fails(ledger, ids[0]).step == "signature"


def test_rewritten_history_is_not_consistent(filled: tuple[Ledger, list[str]]) -> None:
    """An operator who rewrites a leaf *and* re-signs everything is still caught by the old checkpoint."""
    ledger, _ = filled
    leaf = flip_byte(leaf_of(ledger, 10), 30)
    new_hash = ledger.hasher.leaf_hash(leaf)
    edit(ledger, "UPDATE record SET leaf = :l, leaf_hash = :h WHERE log_index = 10", l=leaf, h=new_hash)
    report = audit_log(ledger)
    assert any("tile 0/0" in f.where for f in report.findings)  # stored nodes no longer match the leaves
    assert any("signed root differs" in f.problem for f in report.findings)


def test_deleted_record_is_reported(filled: tuple[Ledger, list[str]]) -> None:
    ledger, _ = filled
    edit(ledger, "DELETE FROM record WHERE log_index = 599")
    report = audit_log(ledger)
    assert any("size 600" in f.problem or "599" in f.problem for f in report.findings)


def test_tampered_receipt_fields(filled: tuple[Ledger, list[str]]) -> None:
    """Edits to the receipt document itself fail at the step that covers the edited field."""
    ledger, ids = filled
    good = ledger.receipt(ids[42]).model_dump(mode="json")
    cases: list[tuple[Callable[[dict[str, object]], None], str]] = [
        (lambda r: r["record"].__setitem__("metadata", {"i": 43}), "leaf"),  # type: ignore[attr-defined]
        (lambda r: r["record"].__setitem__("submitter", "b"), "leaf"),  # type: ignore[attr-defined]
        (lambda r: r["inclusion"].__setitem__("index", 43), "inclusion"),  # type: ignore[attr-defined]
        (lambda r: r["inclusion"]["hashes"].reverse(), "inclusion"),  # type: ignore[index]
    ]
    for mutate, step in cases:
        doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good.items()}
        doc["inclusion"] = {**good["inclusion"], "hashes": list(good["inclusion"]["hashes"])}
        mutate(doc)
        with pytest.raises(InvalidReceipt) as error:
            verify_receipt(Receipt.model_validate(doc), trusted_key=ledger.public_key)
        assert error.value.step == step
