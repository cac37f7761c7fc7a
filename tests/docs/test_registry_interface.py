"""docs/formats.md's registry interface is the committed ABI: selectors, parameters, the Anchor
tuple and the CheckpointAnchored event layout a third-party verifier codes against."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

ROOT = Path(__file__).parents[2]
ABI: list[dict[str, Any]] = json.loads((ROOT / "contracts" / "build" / "AnchorRegistry.json").read_text())[
    "abi"
]


def _section() -> str:
    text = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    start = text.index("### Registry interface")
    return text[start : text.index("\n## ", start)]


def _abi_type(entry: dict[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry["components"]) + ")" + str(entry["type"])[5:]
    return str(entry["type"])


def _by_name(kind: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in ABI if e["type"] == kind}


def _params(declared: str) -> list[tuple[str, ...]]:
    """``bytes32 logId, uint64 treeSize`` → [(type, name), ...]."""
    return [tuple(p.split()) for p in declared.split(",") if p.strip()]


def test_documented_functions_match_the_abi() -> None:
    functions = _by_name("function")
    rows = re.findall(r"^\| `([0-9a-f]{8})` \| `(\w+)\(([^)]*)\)` \|", _section(), re.M)
    assert len(rows) >= 8
    for selector, name, declared in rows:
        params = _params(declared)
        signature = f"{name}({','.join(t for t, _ in params)})"
        assert keccak(text=signature)[:4].hex() == selector, signature
        abi = functions[name]
        assert [(_abi_type(i), i["name"]) for i in abi["inputs"]] == params, name
        assert abi["stateMutability"] == "view", name


def test_documented_anchor_tuple_and_writer_match_the_abi() -> None:
    section = " ".join(_section().split())
    tuple_text = re.search(r"`Anchor` is the static tuple `\(([^)]*)\)`", section)
    assert tuple_text is not None
    (output,) = _by_name("function")["latestAnchor"]["outputs"]
    assert [(_abi_type(c), c["name"]) for c in output["components"]] == _params(tuple_text[1])
    assert all(c["type"] in {"uint64", "bytes32", "address"} for c in output["components"])  # static: inline
    writer = re.search(r"`anchor\(([^)]*)\) returns \(uint64 sequence\)` \(`([0-9a-f]{8})`\)", section)
    assert writer is not None
    anchor = _by_name("function")["anchor"]
    assert [(_abi_type(i), i["name"]) for i in anchor["inputs"]] == _params(writer[1])
    signature = f"anchor({','.join(_abi_type(i) for i in anchor['inputs'])})"
    assert keccak(text=signature)[:4].hex() == writer[2]


def test_documented_event_layout_matches_the_abi() -> None:
    section = _section()
    declared = re.search(r"event CheckpointAnchored\(([^)]*)\)", section, re.S)
    assert declared is not None
    params = [p.split() for p in " ".join(declared[1].split()).split(",")]
    event = _by_name("event")["CheckpointAnchored"]
    assert [(i["type"], i["indexed"], i["name"]) for i in event["inputs"]] == [
        (p[0], p[1] == "indexed", p[-1]) for p in params
    ]
    signature = f"CheckpointAnchored({','.join(i['type'] for i in event['inputs'])})"
    assert f'keccak256("{signature}")' in section
    assert "0x" + keccak(text=signature).hex() in section
    indexed = [i["name"] for i in event["inputs"] if i["indexed"]]
    data = [i["name"] for i in event["inputs"] if not i["indexed"]]
    topics = re.search(r"topics\[1\] = (\w+).*topics\[2\] = (\w+).*topics\[3\] = (\w+)", section)
    assert topics is not None and topics.groups() == tuple(indexed)
    words = re.search(r"data += (\w+) \(word\) \|\| (\w+) \(32 bytes\) \|\| (\w+) \(32 bytes\)", section)
    assert words is not None and words.groups() == tuple(data)
