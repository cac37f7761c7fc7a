"""The log's tree hasher for a configured hash algorithm (SM3 by default, SHA-256 selectable)."""

from __future__ import annotations

from functools import cache

from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.merkle import TreeHasher


@cache
def tree_hasher(alg: HashAlgorithm) -> TreeHasher:
    """The RFC 9162 tree hasher (0x00 leaf / 0x01 node prefixes) over ``alg``."""
    return TreeHasher(name=alg.value, digest=digest_function(alg))
