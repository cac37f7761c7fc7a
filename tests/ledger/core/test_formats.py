"""The frozen formats: leaf encoding, checkpoint text, receipts — golden files and round trips.

The golden files in tests/vectors were produced once; if any of these tests fails after a change,
the change breaks receipts already issued and needs a new format version instead.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.checkpoint import Checkpoint, SignedCheckpoint, note_key_hash, sign_checkpoint
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, Sm2PublicKey, digest_function
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import (
    MAX_TIME_US,
    LeafData,
    RecordKind,
    canonical_json,
    canonical_metadata,
    decode_leaf,
    encode_leaf,
    format_time,
    parse_time,
)
from ledger.core.receipt import Receipt, verify_receipt
from ledger.errors import InvalidReceipt, InvalidRequest, InvalidSignature

VECTORS = Path(__file__).parents[2] / "vectors"

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
leaves = st.builds(
    LeafData,
    kind=st.sampled_from(RecordKind),
    hash_alg=st.sampled_from(HashAlgorithm),
    content_hash=st.binary(min_size=32, max_size=32),
    metadata_json=st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(canonical_metadata),
    submitter=st.text(min_size=1, max_size=30),
    received_at_us=st.integers(0, MAX_TIME_US - 1),
    subject_ref=st.none() | st.binary(min_size=32, max_size=32),
)


@given(leaves)
def test_leaf_round_trip(data: LeafData) -> None:
    encoded = encode_leaf(data)
    assert decode_leaf(encoded) == data


@given(leaves, st.binary(min_size=1, max_size=3))
def test_leaf_with_trailing_bytes_is_refused(data: LeafData, tail: bytes) -> None:
    with pytest.raises(InvalidRequest):
        decode_leaf(encode_leaf(data) + tail)


@given(leaves, leaves)
def test_different_leaves_encode_differently(a: LeafData, b: LeafData) -> None:
    assert (encode_leaf(a) == encode_leaf(b)) == (a == b)


def test_leaf_golden_vectors() -> None:
    cases = json.loads((VECTORS / "leaf_v1.json").read_text())["cases"]
    hasher = tree_hasher(HashAlgorithm.SM3)
    for case in cases:
        leaf = bytes.fromhex(case["leaf"])
        assert hasher.leaf_hash(leaf).hex() == case["sm3_leaf_hash"]
        assert encode_leaf(decode_leaf(leaf)) == leaf


def test_metadata_is_canonical_json() -> None:
    assert canonical_metadata({"b": 1, "a": [1, "é"], "中": -(2**53 - 1)}) == (
        '{"a":[1,"é"],"b":1,"中":-9007199254740991}'.encode()
    )
    assert canonical_metadata(None) == b"{}"
    with pytest.raises(InvalidRequest):
        canonical_metadata({"x": float("nan")})
    with pytest.raises(InvalidRequest):  # beyond RFC 8785's exact integer range
        canonical_metadata({"x": 2**53})


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"x": 0.1}', "metadata.x"),
        ('{"x": 1e21}', "metadata.x"),
        ('{"x": 1.0}', "metadata.x"),  # RFC 8785 would write 1: a second spelling of one leaf
        ('{"x": 1E2}', "metadata.x"),
        ('{"a": {"b": [1, 2.5]}}', "metadata.a.b[1]"),
        ('{"é": [9007199254740992]}', "metadata.é[0]"),  # 2^53: JavaScript cannot hold it exactly
        ('{"x": -9007199254740992}', "metadata.x"),
        ('{"x": 100000000000000000000000}', "metadata.x"),
    ],
)
def test_metadata_numbers_are_safe_integers_only(text: str, where: str) -> None:
    """The documented rule (integers within ±(2^53−1)) is enforced, not only written down."""
    with pytest.raises(InvalidRequest) as caught:
        canonical_metadata(json.loads(text))
    assert caught.value.reason == "invalid-metadata"
    assert where in str(caught.value)


def test_receipt_with_a_float_spelling_of_an_integer_is_refused() -> None:
    """``"items": 3.0`` canonicalises to the golden leaf's ``3``; a verifier must not take it."""
    doc = json.loads((VECTORS / "receipt_v1.json").read_text())
    doc["record"]["metadata"]["items"] = 3.0
    receipt = Receipt.from_json(json.dumps(doc))
    key = Sm2PublicKey.from_pem((VECTORS / "log_key_v1.pub").read_text())
    with pytest.raises(InvalidReceipt) as caught:
        verify_receipt(receipt, trusted_key=key)
    assert caught.value.step == "leaf" and "metadata.items" in str(caught.value)


@given(st.integers(0, MAX_TIME_US - 1))
def test_time_text_round_trip(us: int) -> None:
    text = format_time(us)
    assert text.endswith("Z") and parse_time(text) == us


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-18T19:06:40.000000+08:00",  # the same instant as the golden receipt's received_at
        "2026-11-18T11:06:40.000000+00:00",
        "2026-11-18T11:06:40.000000-00:00",
        "2026-11-18T11:06:40.000000z",
        "2026-11-18t11:06:40.000000Z",
        "2026-11-18 11:06:40.000000Z",
        "2026-11-18T11:06:40Z",
        "2026-11-18T11:06:40.000Z",
        "2026-11-18T11:06:40.0000000Z",
        "2026-11-18T11:06:40.000000",
        "20261118T110640.000000Z",
        "2026-11-18T11:06:60.000000Z",
        "2026-02-30T11:06:40.000000Z",
        "+2026-11-18T11:06:40.000000Z",
        "２０２６-11-18T11:06:40.000000Z",  # full-width digits match \d but are not RFC 3339
        " 2026-11-18T11:06:40.000000Z",
        "2026-11-18T11:06:40.000000Z\n",
        "1969-12-31T23:59:59.999999Z",
    ],
)
def test_only_the_canonical_time_form_is_accepted(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_time(text)
    assert caught.value.reason == "invalid-time"


def test_receipt_time_in_another_zone_is_refused() -> None:
    """Same instant, other spelling: the leaf would be identical, so only the text check refuses it."""
    doc = json.loads((VECTORS / "receipt_v1.json").read_text())
    assert doc["record"]["received_at"] == "2026-11-18T11:06:40.000000Z"
    key = Sm2PublicKey.from_pem((VECTORS / "log_key_v1.pub").read_text())
    for other in (
        "2026-11-18T19:06:40.000000+08:00",
        "2026-11-18T11:06:40Z",
        "2026-11-18T11:06:40.000000+00:00",
    ):
        doc["record"]["received_at"] = other
        with pytest.raises(InvalidReceipt) as caught:
            verify_receipt(Receipt.from_json(json.dumps(doc)), trusted_key=key)
        assert caught.value.step == "leaf" and "canonical time" in str(caught.value)


def test_checkpoint_time_in_another_zone_is_refused() -> None:
    checkpoint = Checkpoint("example.gov.cn/log", 1, bytes(32), HashAlgorithm.SM3, 1_795_000_000_123_456)
    body = checkpoint.body().decode()
    assert "time 2026-11-18T11:06:40.123456Z" in body
    for other in ("2026-11-18T19:06:40.123456+08:00", "2026-11-18T11:06:40.123456+00:00"):
        forged = body.replace("2026-11-18T11:06:40.123456Z", other).encode()
        with pytest.raises(InvalidRequest):
            Checkpoint.from_body(forged)
    assert Checkpoint.from_body(checkpoint.body()) == checkpoint


def test_checkpoint_text_round_trip_and_strictness() -> None:
    key = Sm2PrivateKey.generate()
    root = digest_function(HashAlgorithm.SM3)(b"root")
    checkpoint = Checkpoint("example.gov.cn/log", 12, root, HashAlgorithm.SM3, 1_795_000_000_123_456)
    assert checkpoint.body().decode() == (
        f"example.gov.cn/log\n12\n{base64.b64encode(root).decode()}\n"
        "hash sm3\ntime 2026-11-18T11:06:40.123456Z\n"
    )
    signed = sign_checkpoint(checkpoint, "example.gov.cn/log", key)
    parsed = SignedCheckpoint.from_text(signed.to_text())
    assert parsed == signed
    parsed.verify(key.public_key(), "example.gov.cn/log")
    assert signed.signatures[0].key_hash == note_key_hash("example.gov.cn/log", key.public_key())
    with pytest.raises(InvalidSignature):
        parsed.verify(Sm2PrivateKey.generate().public_key(), "example.gov.cn/log")
    with pytest.raises(InvalidSignature):
        parsed.verify(key.public_key(), "another-name")
    for bad in (
        signed.to_text().replace("\n12\n", "\n012\n"),
        signed.to_text().replace("hash sm3", "hash md5"),
        signed.to_text().rstrip("\n"),
        signed.to_text() + "— other AAAA\n",
        signed.to_text() + "— other AAAAé\n",  # non-ASCII base64
    ):
        with pytest.raises(InvalidRequest):
            SignedCheckpoint.from_text(bad)


def test_signature_lines_of_unknown_keys_are_ignored() -> None:
    """C2SP signed-note: a cosignature from a key the verifier does not know must not break the note."""
    log_key, stranger = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    checkpoint = Checkpoint("example.gov.cn/log", 3, b"\x01" * 32, HashAlgorithm.SM3, 1_795_000_000_000_000)
    signed = sign_checkpoint(checkpoint, "example.gov.cn/log", log_key)
    foreign = sign_checkpoint(checkpoint, "court.example/witness", stranger).signatures[0]
    for lines in ((foreign, signed.signatures[0]), (signed.signatures[0], foreign)):
        note = signed.only(*lines).to_text()
        parsed = SignedCheckpoint.from_text(note)
        assert parsed.verify(log_key.public_key(), "example.gov.cn/log") == signed.signatures[0]
    assert signed.with_signatures([foreign, foreign]).signatures == (signed.signatures[0], foreign)
    too_many = signed.to_text() + foreign.to_line() * 100
    with pytest.raises(InvalidRequest):
        SignedCheckpoint.from_text(too_many)


def test_golden_receipt_still_verifies() -> None:
    """A receipt issued by an earlier build verifies offline with the published key, forever."""
    receipt = Receipt.from_json((VECTORS / "receipt_v1.json").read_text())
    key = Sm2PublicKey.from_pem((VECTORS / "log_key_v1.pub").read_text())
    result = verify_receipt(receipt, document_hash=bytes(range(32)), trusted_key=key)
    assert result.steps == ["document", "leaf", "seal", "inclusion", "checkpoint", "key", "signature"]
    assert result.index == 5 and result.tree_size == 6
    assert receipt.record.metadata == {"case": "（2026）津0116执1号", "items": 3}


def test_receipt_parse_errors_name_the_field() -> None:
    doc = json.loads((VECTORS / "receipt_v1.json").read_text())
    doc["inclusion"]["leaf_hash"] = "zz"
    with pytest.raises(InvalidReceipt) as error:
        Receipt.from_json(json.dumps(doc))
    assert error.value.step == "parse" and "inclusion.leaf_hash" in error.value.message
    doc = json.loads((VECTORS / "receipt_v1.json").read_text())
    doc["version"] = 2
    with pytest.raises(InvalidReceipt):
        Receipt.from_json(json.dumps(doc))


def test_published_receipt_schema_is_current() -> None:
    """docs/receipt.schema.json is the schema of the Receipt model (regenerate it on purpose only)."""
    published = json.loads((Path(__file__).parents[3] / "docs" / "receipt.schema.json").read_text())
    assert published == Receipt.model_json_schema()


json_any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=15,
)


@given(st.dictionaries(st.text(max_size=6), json_any, max_size=5))
def test_canonical_json_fast_path_equals_rfc8785(value: dict[str, object]) -> None:
    """The json.dumps fast path must produce exactly the bytes of the reference RFC 8785 library."""
    import rfc8785

    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        with pytest.raises(InvalidRequest):
            canonical_metadata(value)
        return
    assert canonical_json(value) == expected


def test_canonical_json_escapes_like_rfc8785() -> None:
    import rfc8785

    tricky = {"k": '\u0000\u001f\u007f\u2028"\\/\n\t\b\f\r é 中 😀', "\u00e9": 1, "z": [True, None, -0]}
    assert canonical_json(tricky) == rfc8785.dumps(tricky)
