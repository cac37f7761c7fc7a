"""The CLI: init, add-client, checkpoint, receipt, verify (exit code per failed step), audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from cli.main import main
from cli.verify import VERIFY_EXIT
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.core.leaf import RecordKind
from ledger.core.policy import TrustPolicy
from ledger.log import Submission
from ledger.service import open_ledger
from ledger.settings import Settings


@pytest.fixture
def deployment(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An initialised deployment with one checkpointed evidence record and its document."""
    monkeypatch.setenv("TRUSTLEDGER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRUSTLEDGER_DATABASE_URL", database_url)
    assert main(["init"]) == 0
    settings = Settings()
    document = tmp_path / "photo.jpg"
    document.write_bytes(b"\xff\xd8 evidence photo " * 1000)
    from cli.verify import hash_file

    ledger = open_ledger(settings)
    submission = Submission(
        RecordKind.EVIDENCE, hash_file(document, HashAlgorithm.SM3), metadata={"case": "X"}
    )
    record = ledger.submit("officer-7", [submission])[0]
    ledger.store.engine.dispose()
    assert main(["checkpoint"]) == 0
    assert main(["receipt", record.id, "-o", str(tmp_path / "receipt.json")]) == 0
    assert main(["public-key"]) == 0
    return settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_verify_ok_with_file_and_pinned_key(
    deployment: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "log.pem"
    main(["public-key"])
    key_file.write_text(capsys.readouterr().out)
    code, out = run(
        capsys,
        "verify",
        str(tmp_path / "receipt.json"),
        "--file",
        str(tmp_path / "photo.jpg"),
        "--key",
        str(key_file),
    )
    assert code == 0, out
    assert out.startswith("OK") and "sealed" not in out
    # The key is pinned; what else was taken from the receipt itself is listed, never implied.
    unpinned = out.split("warning: not pinned")[1]
    assert "log origin 'trustledger.local/dev'" in unpinned and "witnesses" in unpinned
    assert "log key" not in unpinned
    assert "not bound by the proof" in out  # the record id


def test_verify_with_the_deployment_policy_pins_everything(
    deployment: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init wrote policy.json (log key, origin, hash, the embedded chain's registry); verify pins it."""
    policy = TrustPolicy.from_json(deployment.policy_path.read_text())
    config = deployment.chain_config()
    assert config is not None and policy.chain is not None
    assert policy.chain.registries == (config.registry_address,) and policy.chain.rpc_urls == ()
    receipt = tmp_path / "receipt.json"
    code, out = run(
        capsys,
        "verify",
        str(receipt),
        "--policy",
        str(deployment.policy_path),
        "--file",
        str(tmp_path / "photo.jpg"),
    )
    assert code == 0, out
    assert "warning" not in out and f"fingerprint {policy.fingerprint()}" in out
    assert "origin" in out.split("checks passed:")[1].splitlines()[0]
    with pytest.raises(SystemExit) as usage:  # one source of trust at a time
        main(["verify", str(receipt), "--policy", str(deployment.policy_path), "--key", "ab"])
    assert usage.value.code == 2 and "not allowed" in capsys.readouterr().err


def _write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_verify_policy_failures_have_their_own_exit_codes(
    deployment: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt_path = str(tmp_path / "receipt.json")
    good = json.loads(deployment.policy_path.read_text())
    policy_file = tmp_path / "policy-variant.json"

    def verify_with(change: object, receipt: str = receipt_path, *extra: str) -> tuple[int, str]:
        document = json.loads(json.dumps(good))
        change(document)  # type: ignore[operator]
        return run(capsys, "verify", receipt, "--policy", _write(policy_file, document), *extra)

    code, out = verify_with(lambda d: d.update(version=2))
    assert code == VERIFY_EXIT["policy"] == 19 and "step policy" in out
    code, out = verify_with(lambda d: d["log"].update(origin="other.example/log"))
    assert code == VERIFY_EXIT["origin"] == 20 and "step origin" in out
    stranger = Sm2PrivateKey.generate().public_key()
    code, out = verify_with(
        lambda d: d["log"].update(keys=[{"public_key": stranger.hex(), "key_id": stranger.key_id()}])
    )
    assert code == VERIFY_EXIT["key"] and "does not trust" in out
    code, out = verify_with(lambda d: d["log"]["keys"][0].update(revoked=True))
    assert code == VERIFY_EXIT["key"] and "revoked" in out
    witness = Sm2PrivateKey.generate().public_key()
    code, out = verify_with(
        lambda d: d.update(
            witnesses=[{"name": "court.example/w", "public_key": witness.hex()}], witness_quorum=1
        )
    )
    assert code == VERIFY_EXIT["witness"] == 23 and "requires 1" in out

    # A receipt that claims an anchor elsewhere: refused before any chain read (the --rpc URL
    # is not even listening; asking it would fail the anchor step instead).
    anchored = json.loads(Path(receipt_path).read_text())
    anchored["anchor"] = {
        "chain_id": good["chain"]["chain_id"],
        "registry": "0x" + "cd" * 20,
        "log_id": "0x" + "00" * 32,
        "sequence": 0,
        "tree_size": anchored["inclusion"]["tree_size"],
        "checkpoint_hash": "0x" + "00" * 32,
        "tx_hash": "0x" + "11" * 32,
        "block_number": 1,
        "block_hash": "0x" + "22" * 32,
    }
    elsewhere = _write(tmp_path / "elsewhere.json", anchored)
    dead = "http://127.0.0.1:9"
    code, out = verify_with(lambda d: None, elsewhere, "--rpc", dead)
    assert code == VERIFY_EXIT["registry"] == 22 and "step registry" in out and "0xcdcd" in out
    anchored["anchor"]["chain_id"] = 1
    code, out = verify_with(lambda d: None, _write(tmp_path / "other-chain.json", anchored), "--rpc", dead)
    assert code == VERIFY_EXIT["chain"] == 21 and "step chain" in out
    # Without a policy the same receipt is checked against what it names, and says so.
    code, out = run(capsys, "verify", elsewhere)
    assert code == 0 and "registry 0xcdcd" in out.split("warning: not pinned")[1]
    assert "NOT checked on chain" in out


def test_policy_show_and_export(
    deployment: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = TrustPolicy.from_json(deployment.policy_path.read_text())
    code, out = run(capsys, "policy", "show")
    assert code == 0 and policy.fingerprint() in out and policy.log.keys[0].key_id in out
    assert "trustledger.local/dev" in out and str(policy.chain.registries[0]) in out  # type: ignore[union-attr]
    code, out = run(capsys, "policy", "export", "-o", str(tmp_path / "published.json"))
    assert code == 0 and TrustPolicy.from_json((tmp_path / "published.json").read_text()) == policy
    code, out = run(capsys, "policy", "export")
    assert code == 0 and TrustPolicy.from_json(out) == policy
    code, out = run(capsys, "policy", "show", "--file", str(tmp_path / "missing.json"))
    assert code == 3 and "no trust policy" in out and "Traceback" not in out
    # init keeps an existing policy (a published revision is never overwritten).
    assert main(["init"]) == 0
    assert TrustPolicy.from_json(deployment.policy_path.read_text()) == policy


def test_verify_names_each_failed_step(
    deployment: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt_path = tmp_path / "receipt.json"
    good = json.loads(receipt_path.read_text())
    other = tmp_path / "other.jpg"
    other.write_bytes(b"a different photo")
    code, out = run(capsys, "verify", str(receipt_path), "--file", str(other))
    assert code == VERIFY_EXIT["document"] and "step document" in out

    def variant(mutate: object) -> str:
        doc = json.loads(json.dumps(good))
        mutate(doc)  # type: ignore[operator]
        path = tmp_path / "variant.json"
        path.write_text(json.dumps(doc))
        return str(path)

    code, out = run(capsys, "verify", variant(lambda d: d["record"].update(metadata={"case": "Y"})))
    assert code == VERIFY_EXIT["leaf"], out
    grown = variant(lambda d: d["inclusion"].update(tree_size=d["inclusion"]["tree_size"] + 1))
    code, out = run(capsys, "verify", grown)
    assert code == VERIFY_EXIT["inclusion"], out
    code, out = run(
        capsys,
        "verify",
        variant(lambda d: d.update(checkpoint=d["checkpoint"].replace("hash sm3", "hash sha256"))),
    )
    assert code in (VERIFY_EXIT["checkpoint"], VERIFY_EXIT["signature"]), out
    stranger = Sm2PrivateKey.generate().public_key().hex()
    code, out = run(capsys, "verify", str(receipt_path), "--key", stranger)
    assert code == VERIFY_EXIT["key"] and "step key" in out
    forged_sig = (
        good["checkpoint"][:-10] + ("A" if good["checkpoint"][-10] != "A" else "B") + good["checkpoint"][-9:]
    )
    code, out = run(capsys, "verify", variant(lambda d: d.update(checkpoint=forged_sig)))
    assert code in (VERIFY_EXIT["signature"], VERIFY_EXIT["checkpoint"]), out
    code, out = run(capsys, "verify", variant(lambda d: d.pop("record")))
    assert code == VERIFY_EXIT["parse"] and "record" in out
    code, out = run(capsys, "verify", str(tmp_path / "missing.json"))
    assert code == 3 and "cannot read receipt" in out


def test_audit_exit_codes(deployment: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "audit")
    assert code == 0 and "OK: 2 leaves" in out  # the record and init's rulebook activation
    ledger = open_ledger(deployment)
    with ledger.store.engine.begin() as conn:
        conn.execute(text("UPDATE record SET leaf_hash = :h WHERE log_index = 0"), {"h": b"\x00" * 32})
    ledger.store.engine.dispose()
    code, out = run(capsys, "audit")
    assert code == 1 and "FINDING" in out and "log index 0" in out


def test_clients_and_errors_without_traceback(
    deployment: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "add-client", "approvals", "--role", "notarizer")
    assert code == 0 and out.startswith("tlk_")
    code, out = run(capsys, "add-client", "approvals", "--role", "notarizer")
    assert code == 3 and "exists" in out and "Traceback" not in out
    code, out = run(capsys, "add-seal-key", "approvals", "04" + "00" * 64)
    assert code == 2 and "Traceback" not in out
    seal = Sm2PrivateKey.generate().public_key()
    code, out = run(capsys, "add-seal-key", "approvals", seal.hex())
    assert code == 0 and out.strip() == seal.key_id()
    code, out = run(capsys, "receipt", "f" * 32)
    assert code == 3 and "no record" in out
    code, out = run(capsys, "audit", "--data-dir", str(tmp_path / "empty"))
    assert code == 3 and "trustledger init" in out


def test_readme_documents_every_verify_exit_code() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = " ".join(readme.split("`verify` exit codes:")[1].split("`audit`")[0].split())
    for step, code in VERIFY_EXIT.items():
        assert f" {code} " in line, (step, code)
