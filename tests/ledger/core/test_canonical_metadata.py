"""``canonical_metadata`` is RFC 8785 and keeps every check, on its fast path and off it.

Differential properties against the reference library (``rfc8785.dumps``) over JSON values with
non-ASCII and astral keys, lone surrogates, big integers and floats: the fast path's bytes are the
library's, and the encoder as a whole refuses exactly what metadata must not hold.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.leaf import MAX_METADATA_BYTES, _encode_plain, _plain, canonical_metadata
from ledger.errors import InvalidRequest

SAFE = 2**53 - 1

# Characters where encoders disagree if they are careless: escapes, DEL, line separators, the
# end of the BMP (where code-point and UTF-16 order part), astral characters and lone surrogates.
TRICKY = '\x00\x1f\x7f\u2028"\\/\n\t\b\f\ré中\ue000\uffff😀\U0010ffff\ud800\udfff'
any_char = st.characters(exclude_categories=())  # every code point, surrogates included
text = st.text(st.sampled_from(TRICKY) | st.characters(codec="ascii") | any_char, max_size=8)
keys = st.text(st.sampled_from(TRICKY) | st.characters(codec="ascii"), max_size=4)
integers = st.integers(-SAFE, SAFE) | st.sampled_from([SAFE, -SAFE, SAFE + 1, -SAFE - 1]) | st.integers()
scalars = st.none() | st.booleans() | integers | text | st.floats()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=16,
)


class Route(StrEnum):
    """A StrEnum as credit documents carry them (members' text with escapes and non-ASCII too)."""

    REPAIR = "repair"
    ODD = 'a"\\\n中😀'


# Values the fast path accepts most of the time: no floats, mostly safe integers.
plain_scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | text | st.sampled_from(Route)
plain_values = st.recursive(
    plain_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)


def _numbers_allowed(value: Any) -> bool:
    """Metadata's own rule: integers within ±(2^53−1), no other numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -SAFE <= value <= SAFE
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_numbers_allowed(v) for v in value.values())
    return all(_numbers_allowed(v) for v in value)


def _reference(value: dict[str, Any]) -> bytes | None:
    """What canonical_metadata must return (None: it must refuse)."""
    if not _numbers_allowed(value):
        return None
    try:
        encoded = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        return None
    return encoded if len(encoded) <= MAX_METADATA_BYTES else None


@given(plain_values)
def test_fast_path_is_byte_identical_to_rfc8785(value: Any) -> None:
    """Whenever the fast path takes a value, its bytes are the library's (or both refuse)."""
    if not _plain(value):
        return
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):  # a lone surrogate: not UTF-8 or UTF-16
        with pytest.raises(InvalidRequest):
            _encode_plain(value)
        return
    assert _encode_plain(value) == expected


@given(st.dictionaries(keys, values, max_size=5) | st.dictionaries(keys, plain_values, max_size=5))
def test_canonical_metadata_is_rfc8785_with_every_check(value: dict[str, Any]) -> None:
    expected = _reference(value)
    if expected is None:
        with pytest.raises(InvalidRequest):
            canonical_metadata(value)
    else:
        assert canonical_metadata(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**53},
        {"n": -(2**53)},
        {"n": 10**400},
        {"x": 1.0},
        {"x": float("nan")},
        {"s": "\ud800"},
        {"\udfff": 1},
        {"nested": [{"deep": [0.5]}]},
        {1: "not a string key"},
    ],
)
def test_refusals(value: dict[Any, Any]) -> None:
    with pytest.raises(InvalidRequest):
        canonical_metadata(value)


def test_fast_path_covers_typical_records_and_orders_bmp_keys_like_utf16() -> None:
    document = {"v": 1, "中文": "贷款逾期", "\ue000": True, "a": [None, -SAFE, SAFE, "é"]}
    assert _plain(document)
    assert canonical_metadata(document) == rfc8785.dumps(document)
    astral = {"😀": 1, "\uffff": 2}  # UTF-16 puts the surrogate pair first, code points do not
    assert not _plain(astral)
    assert canonical_metadata(astral) == rfc8785.dumps(astral) == '{"😀":1,"\uffff":2}'.encode()


def test_too_deep_is_refused_not_crashed() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(100_000):
        inner["d"] = {}
        inner = inner["d"]
    with pytest.raises(InvalidRequest) as error:
        canonical_metadata(deep)
    assert error.value.reason == "invalid-metadata"
