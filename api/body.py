"""Bounds on JSON text checked before any JSON parser sees it: nesting depth and encoding.

Why before parsing: the embedded EVM's libraries (``py_ecc``, ``eth``) raise the interpreter's
recursion limit to 100,000 at import, so ``json.loads`` (recursive C), pydantic and RFC 8785
canonicalisation no longer stop at a ``RecursionError``: ~65,000 nested ``[`` overflow the C stack
and kill the process. A depth bound checked on the bytes keeps every parser far from that.

The scan is linear and runs at C speed (``bytes.translate``, ``replace``, ``split``,
``itertools.accumulate``); for valid JSON it returns the exact nesting depth, for anything else an
upper bound of how deep a parser could recurse before it fails (it never under-counts).
"""

from __future__ import annotations

from array import array
from itertools import accumulate

from ledger.errors import InvalidRequest

# Everything but brackets and quotes is deleted; opening brackets become +1, closing -1.
_STRUCTURAL = b'[]{}"'
_DELETE = bytes(c for c in range(256) if c not in _STRUCTURAL)
_SIGNED = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def json_depth(text: bytes) -> int:
    """The deepest nesting of arrays and objects in ``text`` (an upper bound if it is not JSON).

    Strings are skipped: escapes are resolved first (``\\\\`` and ``\\"``, left to right as a
    parser reads them), then every ``"``…``"`` span is dropped, so brackets inside strings do not
    count. Only valid for UTF-8 (or ASCII) text; see :func:`check_json_text`.
    """
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    reduced = text.translate(None, _DELETE)
    if b'"' in reduced:
        # An adjacent pair of quotes encloses no bracket: dropping it keeps every other quote's
        # parity, and it removes nearly all strings before the (slower) split below.
        reduced = reduced.replace(b'""', b"")
        if b'"' in reduced:
            reduced = b"".join(reduced.split(b'"')[0::2])
    if not reduced:
        return 0
    return max(0, max(accumulate(array("b", reduced.translate(_SIGNED)))))


def check_json_text(text: bytes, max_depth: int, *, what: str = "the JSON body") -> None:
    """Refuse ``text`` (:class:`InvalidRequest`) if it nests deeper than ``max_depth`` or is not
    UTF-8-shaped JSON.

    A NUL byte never occurs in UTF-8 JSON (control characters must be escaped), but always in
    UTF-16 and UTF-32, which ``json.loads`` would otherwise detect and decode; the depth scan reads
    bytes as ASCII, so those encodings are refused here (RFC 8259 §8.1: JSON on the wire is UTF-8).
    """
    # Fast path for small bodies: fewer opening brackets than the limit cannot nest deeper.
    if text.count(b"[") + text.count(b"{") <= max_depth and b"\x00" not in text:
        return
    if b"\x00" in text:
        raise InvalidRequest(f"{what} is not UTF-8 (RFC 8259 §8.1)", reason="json-not-utf8")
    depth = json_depth(text)
    if depth > max_depth:
        raise InvalidRequest(
            f"{what} nests {depth} levels deep; the limit is {max_depth}", reason="json-too-deep"
        )
