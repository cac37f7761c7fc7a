"""``trustledger witness init|public-key|serve`` and ``trustledger witnesses``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cli.main import main
from ledger.core.crypto import Sm2PrivateKey
from ledger.core.leaf import RecordKind
from ledger.core.policy import PolicyWitness
from ledger.cosigning import Cosigner
from ledger.keyfiles import KeyFiles
from ledger.keys import load_log_key
from ledger.log import Submission
from ledger.service import open_ledger
from ledger.settings import Settings
from ledger.witness.keyfile import KEY_FILE, load_witness_key
from ledger.witness.storage import WitnessStore
from tests.ledger.witness.support import InProcessPost, policy_for, start_node


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_public_key_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "w"
    code, out, _ = run(capsys, "witness", "init", "--data-dir", str(data), "--name", "court.example/w")
    assert code == 0 and "court.example/w" in out
    key_file = data / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"private_key" not in key_file.read_bytes()  # sealed under the KEK beside the data dir
    files = KeyFiles.for_settings(Settings(data_dir=data))
    assert files.is_sealed(key_file)
    name, key = load_witness_key(key_file, files)
    assert name == "court.example/w"
    code, _, err = run(capsys, "witness", "init", "--data-dir", str(data), "--name", "court.example/w")
    assert code == 3 and "refusing to replace" in err
    assert load_witness_key(key_file, files)[1] == key  # the key was not replaced
    code, _, err = run(capsys, "witness", "init", "--data-dir", str(tmp_path / "x"), "--name", "bad name")
    assert code == 2 and "witness name" in err

    code, out, _ = run(capsys, "witness", "public-key", "--data-dir", str(data), "--url", "https://w.example")
    entry = PolicyWitness.model_validate(json.loads(out))
    assert (entry.name, entry.public_key, entry.url) == (name, key.public_key().hex(), "https://w.example")

    code, _, err = run(capsys, "witness", "public-key", "--data-dir", str(tmp_path / "none"))
    assert code == 3 and "witness init" in err
    policy_file = tmp_path / "policy.json"
    policy_file.write_text("{}")
    code, _, err = run(
        capsys, "witness", "serve", "--data-dir", str(data), "--policy", str(policy_file), "--port", "1"
    )
    assert code == 3 and "invalid trust policy" in err
    code, _, err = run(capsys, "witness", "serve", "--data-dir", str(data), "--policy", str(tmp_path / "no"))
    assert code == 3 and "cannot read the trust policy" in err


def test_state_database_is_private(tmp_path: Path) -> None:
    store = WitnessStore(tmp_path / "witness.db")
    store.close()
    assert stat.S_IMODE((tmp_path / "witness.db").stat().st_mode) == 0o600


def test_witnesses_shows_the_logs_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRUSTLEDGER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRUSTLEDGER_CHAIN_BACKEND", "none")
    monkeypatch.setenv("TRUSTLEDGER_LOG_ORIGIN", "test.trustledger.local/log")
    assert main(["init"]) == 0
    settings = Settings()
    code, out, _ = run(capsys, "witnesses")
    assert code == 0 and "no checkpoint" in out and "lists no witnesses" in out
    settings.policy_path.unlink()  # init wrote one; without it the command says so
    code, out, _ = run(capsys, "witnesses")
    assert code == 0 and "no trust policy at" in out

    log_key = load_log_key(settings.log_key_path, KeyFiles.for_settings(settings))
    keys = [Sm2PrivateKey.generate(), Sm2PrivateKey.generate()]
    policy = policy_for(
        log_key, [("a.example/w", keys[0], "http://a"), ("b.example/w", keys[1], "http://b")], 2
    )
    settings.policy_path.write_text(policy.to_json())
    ledger = open_ledger(settings)
    ledger.submit("s", [Submission(RecordKind.EVIDENCE, b"\x01" * 32)])
    ledger.sequence_all()
    ledger.issue_checkpoint()
    node = start_node(tmp_path / "a", "a.example/w", keys[0], policy)
    try:
        Cosigner(ledger, policy, post=InProcessPost({"http://a": node})).collect_from(
            policy.witnesses[0], InProcessPost({"http://a": node})
        )
    finally:
        node.close()
        ledger.store.engine.dispose()
    code, out, _ = run(capsys, "witnesses")
    assert code == 0
    reopened = open_ledger(settings)
    size = reopened.current_size()  # init logged the rulebook too
    reopened.store.engine.dispose()
    assert f"newest checkpoint: size {size}, 1 of 2 required cosignatures" in out
    assert f"a.example/w  url http://a  acknowledged {size}  newest cosigned {size}" in out
    assert "b.example/w  url http://b  acknowledged -  newest cosigned -" in out
