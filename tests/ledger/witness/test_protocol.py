"""The witness's pure part: parsing add-checkpoint, trusting the log's key, the state transition."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.checkpoint import Checkpoint, NoteSignature, SignedCheckpoint, sign_checkpoint
from ledger.core.cosignature import cosign
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.errors import InvalidRequest, PayloadTooLarge
from ledger.witness.errors import InconsistentCheckpoint, OldSizeMismatch, UntrustedCheckpoint, http_status
from ledger.witness.protocol import (
    MAX_BODY_BYTES,
    AddCheckpoint,
    TreeHead,
    add_checkpoint_body,
    advance,
    check_log_signature,
    parse_add_checkpoint,
)
from tests.ledger.witness.support import HASHER, ORIGIN, RefLog, policy_for

LOG_KEY = Sm2PrivateKey.generate()
OTHER_KEY = Sm2PrivateKey.generate()


def _request(log: RefLog, old: int, size: int | None = None) -> AddCheckpoint:
    """A request without signatures (``advance`` never looks at them)."""
    size = log.tree.size if size is None else size
    checkpoint = Checkpoint(ORIGIN, size, log.tree.root(size), HashAlgorithm.SM3, 1)
    return AddCheckpoint(old, tuple(log.proof(old, size)), SignedCheckpoint(checkpoint, ()))


# --- parsing -----------------------------------------------------------------------------------


def test_body_round_trips() -> None:
    log = RefLog(LOG_KEY)
    log.grow(13)
    note = log.note()
    parsed = parse_add_checkpoint(add_checkpoint_body(5, log.proof(5, 13), note.to_text()))
    assert parsed.old_size == 5
    assert list(parsed.proof) == log.proof(5, 13)
    assert parsed.note == note
    assert parse_add_checkpoint(log.body(0)).proof == ()


def _with_head(head: str, note: str) -> bytes:
    return (head + "\n\n" + note).encode()


@pytest.mark.parametrize(
    "head",
    [
        "old 01",
        "old -1",
        "old 1e3",
        "old  3",
        "old 99999999999999999999",  # beyond 2^63 - 1
        "old ９",  # a non-ASCII digit
        "new 3",
        "old 3\n" + "A" * 43,  # not base64 (no padding)
        "old 3\n" + base64.b64encode(b"x" * 31).decode(),  # not a 32-byte hash
        "old 3\n" + "\n".join([base64.b64encode(b"x" * 32).decode()] * 64),  # 64 proof lines
    ],
)
def test_malformed_heads_are_refused_with_400(head: str) -> None:
    log = RefLog(LOG_KEY)
    log.grow(3)
    with pytest.raises(InvalidRequest) as raised:
        parse_add_checkpoint(_with_head(head, log.note().to_text()))
    assert http_status(raised.value) == 400


def test_malformed_bodies_are_refused() -> None:
    log = RefLog(LOG_KEY)
    log.grow(3)
    note = log.note().to_text()
    for body in (
        b"old 0\n" + note.encode(),  # no empty line before the note
        b"old 0\n\n" + note.encode()[:-1],  # the note does not end with a newline
        b"old 0\n\n\xff\xfe",  # not UTF-8
        b"old 0\n\n" + note.replace("\n3\n", "\n03\n").encode(),  # not canonical
    ):
        with pytest.raises(InvalidRequest) as raised:
            parse_add_checkpoint(body)
        assert http_status(raised.value) == 400
    with pytest.raises(PayloadTooLarge) as too_large:
        parse_add_checkpoint(b"old 0\n\n" + b"x" * MAX_BODY_BYTES)
    assert http_status(too_large.value) == 413


# --- the log's signature -------------------------------------------------------------------------


def test_log_signature_by_the_policy_key_is_accepted_and_unknown_lines_ignored() -> None:
    log = RefLog(LOG_KEY)
    log.grow(4)
    policy = policy_for(LOG_KEY, [], 0)
    signed = log.note()
    someone = cosign(signed.checkpoint, "court.example/w", OTHER_KEY, 7).to_signature_line()
    stranger = sign_checkpoint(signed.checkpoint, "stranger.example", OTHER_KEY).signatures[0]
    noisy = SignedCheckpoint(signed.checkpoint, (someone, stranger, *signed.signatures))
    assert check_log_signature(noisy, policy) == signed.signatures


def test_log_signature_refusals_are_403() -> None:
    log = RefLog(LOG_KEY)
    log.grow(4)
    policy = policy_for(LOG_KEY, [], 0)
    signed = log.note()
    by_other = sign_checkpoint(signed.checkpoint, ORIGIN, OTHER_KEY)  # same name, another key
    line = signed.signatures[0]
    broken = SignedCheckpoint(signed.checkpoint, (NoteSignature(line.key_name, line.key_hash, b"\x30" * 70),))
    for note, reason in (
        (by_other, "untrusted-checkpoint"),
        (broken, "invalid-checkpoint-signature"),
        (SignedCheckpoint(signed.checkpoint, (by_other.signatures[0],)), "untrusted-checkpoint"),
    ):
        with pytest.raises(UntrustedCheckpoint) as raised:
            check_log_signature(note, policy)
        assert raised.value.reason == reason and http_status(raised.value) == 403
    sha = sign_checkpoint(
        Checkpoint(ORIGIN, 4, signed.checkpoint.root_hash, HashAlgorithm.SHA256, 1), ORIGIN, LOG_KEY
    )
    with pytest.raises(UntrustedCheckpoint, match="sha256"):
        check_log_signature(sha, policy)


def test_log_keys_count_only_for_their_tree_sizes() -> None:
    """After a rotation at size 6 the old key signs up to 6, the new one from 6 on; revoked: never."""
    new_key = Sm2PrivateKey.generate()
    rotated = policy_for(LOG_KEY, [], 0).with_rotated_log_key(new_key.public_key(), at_size=6)
    old_log, new_log = RefLog(LOG_KEY), RefLog(new_key)
    for log in (old_log, new_log):
        log.grow(9)
    check_log_signature(old_log.note(6), rotated)
    check_log_signature(new_log.note(6), rotated)
    check_log_signature(new_log.note(9), rotated)
    with pytest.raises(UntrustedCheckpoint):
        check_log_signature(old_log.note(7), rotated)
    with pytest.raises(UntrustedCheckpoint):
        check_log_signature(new_log.note(5), rotated)
    document = rotated.model_dump(mode="json")
    document["log"]["keys"][1]["revoked"] = True
    revoked = type(rotated).model_validate(document)
    with pytest.raises(UntrustedCheckpoint):
        check_log_signature(new_log.note(9), revoked)


# --- the state transition ------------------------------------------------------------------------


def test_first_checkpoint_and_growth_are_accepted() -> None:
    log = RefLog(LOG_KEY)
    log.grow(10)
    head = advance(None, _request(log, 0, 4), HASHER)
    assert head == TreeHead(4, log.tree.root(4))
    head = advance(head, _request(log, 4, 10), HASHER)
    assert head == TreeHead(10, log.tree.root(10))
    assert advance(head, _request(log, 10, 10), HASHER) == head  # the same checkpoint again


def test_refusals_have_the_tlog_witness_status() -> None:
    log = RefLog(LOG_KEY)
    log.grow(10)
    head = TreeHead(6, log.tree.root(6))
    fork = log.fork(3)
    fork.grow(5, tag=b"forged")  # size 8, different leaves from 3 on
    cases: list[tuple[AddCheckpoint, type[Exception], int]] = [
        (_request(log, 6, 5), InvalidRequest, 400),  # a smaller tree, from the right old size
        (_request(log, 5, 5), OldSizeMismatch, 409),  # a smaller tree, from its own size
        (_request(log, 4, 10), OldSizeMismatch, 409),  # a stale old size
        (_request(fork, 6, 6), InconsistentCheckpoint, 422),  # same size, another root
        (_request(fork, 6, 8), InconsistentCheckpoint, 422),  # a forked, larger tree
    ]
    bad_proof = _request(log, 6, 10)
    cases.append((AddCheckpoint(6, bad_proof.proof[::-1], bad_proof.note), InconsistentCheckpoint, 422))
    with_proof = _request(log, 6, 10)
    cases.append((AddCheckpoint(0, with_proof.proof, with_proof.note), InconsistentCheckpoint, 422))
    for request, error, status in cases:
        start = None if isinstance(request, AddCheckpoint) and request.old_size == 0 else head
        with pytest.raises(error) as raised:
            advance(start, request, HASHER)
        assert http_status(raised.value) == status  # type: ignore[arg-type]
    with pytest.raises(OldSizeMismatch) as mismatch:
        advance(head, _request(log, 0, 10), HASHER)
    assert mismatch.value.latest_size == 6


def test_empty_tree_must_have_the_empty_root() -> None:
    empty = Checkpoint(ORIGIN, 0, HASHER.empty_root(), HashAlgorithm.SM3, 1)
    assert advance(None, AddCheckpoint(0, (), SignedCheckpoint(empty, ())), HASHER).size == 0
    wrong = Checkpoint(ORIGIN, 0, b"\x01" * 32, HashAlgorithm.SM3, 1)
    with pytest.raises(InconsistentCheckpoint):
        advance(None, AddCheckpoint(0, (), SignedCheckpoint(wrong, ())), HASHER)


@settings(deadline=None, max_examples=60)
@given(steps=st.lists(st.integers(0, 12), min_size=1, max_size=8))
def test_an_honest_log_is_always_cosigned(steps: list[int]) -> None:
    log = RefLog(LOG_KEY)
    log.grow(sum(steps))
    head: TreeHead | None = None
    size = 0
    for step in steps:
        new = size + step
        head = advance(head, _request(log, size, new), HASHER)
        assert head == TreeHead(new, log.tree.root(new))
        size = new


@settings(deadline=None, max_examples=60)
@given(
    seen=st.integers(1, 40),
    fork_at=st.integers(0, 39),
    extra=st.integers(0, 20),
    old_back=st.integers(0, 40),
)
def test_a_fork_of_what_the_witness_saw_is_never_cosigned(
    seen: int, fork_at: int, extra: int, old_back: int
) -> None:
    """Whatever ``old`` the forger claims and whatever proof its own tree gives, the witness never
    moves to a root that differs from the honest one at the same size, nor to a smaller size."""
    fork_at = min(fork_at, seen - 1)
    honest = RefLog(LOG_KEY)
    honest.grow(seen + extra)
    head = TreeHead(seen, honest.tree.root(seen))
    fork = honest.fork(fork_at)
    fork.grow(seen + extra - fork_at, tag=b"forged")
    target = max(0, seen + extra - old_back)
    for old in (seen, min(old_back, target)):
        try:
            new = advance(head, _request(fork, old, target), HASHER)
        except (InvalidRequest, OldSizeMismatch, InconsistentCheckpoint):
            continue
        assert new.size >= head.size
        assert new.root_hash == honest.tree.root(new.size)  # only possible if nothing was forged
        raise AssertionError(f"a fork at {fork_at} was cosigned at size {new.size}")
