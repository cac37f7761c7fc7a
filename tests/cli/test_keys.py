"""``trustledger keys status|rotate`` against a running app: receipts from before and after the
rotation verify with their own keys, the served public key follows the rotation, audit is clean."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from cli.main import main
from cli.verify import VERIFY_EXIT
from ledger.core.crypto import Sm2PublicKey
from ledger.settings import Settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Settings:
    monkeypatch.setenv("TRUSTLEDGER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRUSTLEDGER_CHAIN_BACKEND", "none")
    assert main(["init"]) == 0
    capsys.readouterr()
    return Settings(run_scheduler=False)


def notarize(client: TestClient, key: str, n: int) -> str:
    response = client.post(
        "/v1/records",
        headers={"Authorization": f"Bearer {key}"},
        json={"kind": "certificate", "content": {"licence": f"JY-{n}"}},
    )
    assert response.status_code == 202, response.text
    record_id: str = response.json()["id"]
    issued = client.post("/v1/log/checkpoint", headers={"Authorization": f"Bearer {key}"})
    assert issued.status_code == 201, issued.text
    return record_id


def test_keys_rotate_while_the_service_runs(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "add-client", "ops", "--role", "admin")
    assert code == 0
    key = out.strip()
    with TestClient(create_app(settings)) as client:
        old_pem = client.get("/v1/log/public-key").json()["pem"]
        r1_id = notarize(client, key, 1)
        r1 = tmp_path / "r1.json"
        r1.write_bytes(client.get(f"/v1/records/{r1_id}/receipt").content)

        code, out = run(capsys, "keys", "rotate")
        assert code == 0, out
        assert "new log key" in out

        served = client.get("/v1/log/public-key").json()
        assert served["pem"] != old_pem  # the running service picked the new key up
        new_key = Sm2PublicKey.from_hex(served["public_key"])
        r2_id = notarize(client, key, 2)
        r2 = tmp_path / "r2.json"
        r2.write_bytes(client.get(f"/v1/records/{r2_id}/receipt").content)
        r1_again = tmp_path / "r1-again.json"
        r1_again.write_bytes(client.get(f"/v1/records/{r1_id}/receipt").content)

    assert json.loads(r2.read_text())["log"]["key_id"] == new_key.key_id()
    (tmp_path / "old.pem").write_text(old_pem)
    (tmp_path / "new.pem").write_text(new_key.to_pem())
    assert run(capsys, "verify", str(r1), "--key", str(tmp_path / "old.pem"))[0] == 0
    assert run(capsys, "verify", str(r2), "--key", str(tmp_path / "new.pem"))[0] == 0
    code, out = run(capsys, "verify", str(r1), "--key", str(tmp_path / "new.pem"))
    assert code == VERIFY_EXIT["key"], out
    # R1 fetched again after the rotation is against the newest checkpoint, signed by the new key.
    assert run(capsys, "verify", str(r1_again), "--key", str(tmp_path / "new.pem"))[0] == 0

    code, out = run(capsys, "audit")  # the deployment's policy.json: each checkpoint with its key
    assert code == 0 and "0 findings" in out, out
    code, out = run(capsys, "audit", "--key", str(tmp_path / "new.pem"))
    assert code == 1 and "FINDING checkpoint" in out  # one key alone cannot audit a rotated log

    code, out = run(capsys, "keys", "status")
    assert code == 0, out
    assert "retired log key" in out and "serial 2" in out and "PLAIN" not in out


def test_keys_status_flags_plain_text_and_loose_files(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "keys", "status")
    assert code == 0, out
    assert f"KEK:            {settings.development_kek_path}" in out
    os.chmod(settings.data_dir / "trustledger.db", 0o644)
    code, out = run(capsys, "keys", "status")
    assert code == 1 and "readable by others" in out
    os.chmod(settings.data_dir / "trustledger.db", 0o600)
    settings.subject_secret_path.unlink()
    settings.subject_secret_path.write_text("00" * 32 + "\n")
    os.chmod(settings.subject_secret_path, 0o600)
    code, out = run(capsys, "keys", "status")
    assert code == 1 and "PLAIN TEXT" in out
    assert main(["init"]) == 0  # seals it
    code, out = run(capsys, "keys", "status")
    assert code == 0 and "PLAIN" not in out, out
