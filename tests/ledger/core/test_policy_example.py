"""docs/policy.example.json is a valid policy, in the canonical form ``policy export`` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from ledger.core.policy import TrustPolicy

EXAMPLE = Path(__file__).parents[3] / "docs" / "policy.example.json"


def test_example_policy_is_valid_and_canonical() -> None:
    text = EXAMPLE.read_text()
    policy = TrustPolicy.from_json(text)
    assert policy.to_json() == text
    # The documented rotation: the first key signs up to 1,250,000, the second from there on.
    first, second = policy.log.keys
    assert [k.key_id for k in policy.log_keys_for(1_250_000)] == [first.key_id, second.key_id]
    assert [k.key_id for k in policy.log_keys_for(1_250_001)] == [second.key_id]
    assert [k.key_id for k in policy.log_keys_for(0)] == [first.key_id]
    assert policy.chain is not None and len(policy.chain.rpc_urls) == 2
    assert policy.witness_quorum == 2 and len(policy.witnesses) == 3


def test_example_policy_shows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "--file", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert TrustPolicy.from_json(EXAMPLE.read_text()).fingerprint() in out
    assert "quorum 2 of 3" in out and "0 .. < 1250001" in out
