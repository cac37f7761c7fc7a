"""The CLI: init, add-client, checkpoint, receipt, verify (exit code per failed step), audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from api.cli import VERIFY_EXIT, main
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.core.leaf import RecordKind
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
    from api.cli import hash_file

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
    assert "OK record" in out and "warning" not in out


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
