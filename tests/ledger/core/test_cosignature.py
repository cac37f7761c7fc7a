"""Witness cosignatures (C2SP tlog-cosignature with SM2)."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.core.checkpoint import Checkpoint, SignedCheckpoint, note_key_hash, sign_checkpoint
from ledger.core.cosignature import Cosignature, cosign, cosignature_key_hash, cosigned_message
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.errors import InvalidSignature

CHECKPOINT = Checkpoint("city.example/log", 7, b"\x02" * 32, HashAlgorithm.SM3, 1_795_000_000_000_000)


def test_message_is_the_c2sp_layout() -> None:
    assert cosigned_message(CHECKPOINT, 1700000000) == (
        b"cosignature/v1\ntime 1700000000\n" + CHECKPOINT.body()
    )


def test_cosignature_travels_as_a_note_line_and_verifies() -> None:
    log_key, witness = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    signed = sign_checkpoint(CHECKPOINT, "city.example/log", log_key)
    cosig = cosign(CHECKPOINT, "court.example/w", witness, 1_795_000_001)
    note = signed.with_signatures([cosig.to_signature_line()]).to_text()
    parsed = SignedCheckpoint.from_text(note)
    parsed.verify(log_key.public_key(), "city.example/log")
    again = Cosignature.from_signature_line(parsed.signatures[1])
    assert again == cosig
    again.verify(parsed.checkpoint, witness.public_key())


def test_cosignature_is_not_a_log_signature_and_binds_everything() -> None:
    witness, other = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    cosig = cosign(CHECKPOINT, "w", witness, 5)
    assert cosig.key_hash == cosignature_key_hash("w", witness.public_key())
    assert cosig.key_hash != note_key_hash("w", witness.public_key())
    with pytest.raises(InvalidSignature):
        cosig.verify(CHECKPOINT, other.public_key())
    with pytest.raises(InvalidSignature):
        Cosignature(cosig.name, cosig.key_hash, 6, cosig.signature).verify(CHECKPOINT, witness.public_key())
    bigger = dataclasses.replace(CHECKPOINT, size=8)
    with pytest.raises(InvalidSignature):
        cosig.verify(bigger, witness.public_key())
