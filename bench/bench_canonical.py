"""Canonical metadata: what ``ledger.core.leaf.canonical_metadata`` costs per record.

For a few documents of the shapes the ledger stores (a credit event, a credit score change with
reasons, a records-API metadata object, an object with Chinese keys), microseconds per call of:

- ``canonical_metadata`` (every check, RFC 8785 bytes): the one encoder of leaf metadata;
- ``json.dumps`` with sorted keys, compact separators and UTF-8 (no check at all): the floor, and
  the shortcut the credit engine used to take;
- ``rfc8785.dumps``, the reference library (checks what JCS needs, not metadata's number rule).

Best of ``--repeat`` runs of ``--number`` calls each; the machine's load shows in the figures, so
compare columns of one run.

    .venv/bin/python bench/bench_canonical.py
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import timeit
from collections.abc import Callable
from typing import Any

import rfc8785

from ledger.core.leaf import canonical_metadata

REASON = {"code": "loan_arrears", "points": -10, "source": "城市商业银行", "occurred_on": "2025-06-01"}
DOCUMENTS: dict[str, dict[str, Any]] = {
    "credit event": {
        "v": 1,
        "id": "e" * 32,
        "type": "contract_default",
        "subject_kind": "person",
        "occurred_on": "2026-03-02",
        "ended_on": None,
        "quantity": 1,
        "source": "city-court",
        "source_ref": "(2026)闽0102民初1号",
        "refers_to": None,
        "evidence": None,
    },
    "credit change": {
        "v": 1,
        "subject_kind": "person",
        "as_of": "2026-03-02",
        "before": 700,
        "after": 680,
        "cause": {"kind": "event", "event": "e" * 32},
        "rulebook": "2026.1",
        "rulebook_hash": "ab" * 32,
        "breakdown": {"commercial": -20, "public": 0},
        "reasons": [{**REASON, "expires_on": f"2027-0{i + 1}-01"} for i in range(3)],
    },
    "record metadata": {"dept": "approvals", "doc": "2026-津0116-许-000123"},
    "chinese keys": {
        "部门": "行政审批局",
        "文号": "津滨审批〔2026〕12号",
        "页数": 3,
        "附件": ["营业执照", "章程"],
    },
}


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _best_us(call: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best counts")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    print(f"commit {commit.strip() or '?'}, Python {platform.python_version()}, best of {args.repeat}")
    header = f"{'document':<16} {'bytes':>5}  {'canonical_metadata':>18}  {'json.dumps':>10}  {'rfc8785':>8}"
    print(f"{header}  ratio")
    for name, document in DOCUMENTS.items():
        encoded = canonical_metadata(document)
        if encoded != rfc8785.dumps(document) or encoded != _dumps(document):
            raise AssertionError(f"{name}: the encoders disagree")
        ours = _best_us(lambda d=document: canonical_metadata(d), args.number, args.repeat)  # type: ignore[misc]
        floor = _best_us(lambda d=document: _dumps(d), args.number, args.repeat)  # type: ignore[misc]
        library = _best_us(lambda d=document: rfc8785.dumps(d), args.number, args.repeat)  # type: ignore[misc]
        print(
            f"{name:<16} {len(encoded):>5}  {ours:>15.2f} µs  {floor:>7.2f} µs  {library:>5.1f} µs"
            f"  {ours / floor:.2f}× json.dumps"
        )


if __name__ == "__main__":
    main()
