"""docs/receipt.schema.json and the verifier agree on what a receipt is.

The schema is generated from the model (test_formats keeps the file current); here a JSON Schema
validator (jsonschema-rs, as a third party would use) and ``Receipt.from_json`` must give the same
verdict for the golden receipt with any one field removed or added, and for a receipt whose note
carries witness cosignature lines.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.cosignature import cosign
from ledger.core.crypto import Sm2PrivateKey
from ledger.core.receipt import Receipt
from ledger.errors import InvalidReceipt

ROOT = Path(__file__).parents[3]
SCHEMA = json.loads((ROOT / "docs" / "receipt.schema.json").read_text())
GOLDEN = json.loads((ROOT / "tests" / "vectors" / "receipt_v1.json").read_text())
VALIDATOR = jsonschema_rs.validator_for(SCHEMA)


def _verifier_accepts(document: object) -> bool:
    try:
        Receipt.from_json(json.dumps(document))
    except InvalidReceipt:
        return False
    return True


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            if key != "metadata":  # metadata is free-form by design
                yield from _paths(child, (*prefix, key))


def _without(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def test_golden_receipt_is_valid_for_both() -> None:
    assert VALIDATOR.is_valid(GOLDEN) and _verifier_accepts(GOLDEN)


@pytest.mark.parametrize("path", list(_paths(GOLDEN)), ids=".".join)
def test_schema_and_verifier_agree_on_each_missing_field(path: tuple[str, ...]) -> None:
    document = _without(GOLDEN, path)
    assert VALIDATOR.is_valid(document) == _verifier_accepts(document)


def test_format_and_version_are_required_by_both() -> None:
    assert {"format", "version", "record", "log", "inclusion", "checkpoint"} <= set(SCHEMA["required"])
    for field in ("format", "version"):
        assert "default" not in SCHEMA["properties"][field]
        document = _without(GOLDEN, (field,))
        assert not VALIDATOR.is_valid(document) and not _verifier_accepts(document)


def test_both_refuse_unknown_fields_and_wrong_constants() -> None:
    for change in ({"extra": 1}, {"format": "other"}, {"version": 2}):
        document = {**GOLDEN, **change}
        assert not VALIDATOR.is_valid(document) and not _verifier_accepts(document), change
    document = copy.deepcopy(GOLDEN)
    document["log"]["key_id"] = "not hex"
    assert not VALIDATOR.is_valid(document) and not _verifier_accepts(document)


def test_a_cosigned_note_is_valid_for_both() -> None:
    signed = SignedCheckpoint.from_text(GOLDEN["checkpoint"])
    cosignatures = [
        cosign(signed.checkpoint, f"w{i}.example/witness", Sm2PrivateKey.generate(), 1_800_000_000 + i)
        for i in range(2)
    ]
    document = {
        **GOLDEN,
        "checkpoint": signed.with_signatures([c.to_signature_line() for c in cosignatures]).to_text(),
    }
    assert VALIDATOR.is_valid(document) and _verifier_accepts(document)
    assert "witness cosignature" in SCHEMA["properties"]["checkpoint"]["description"]
