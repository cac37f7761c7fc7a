"""Crash test: kill -9 the service while it sequences a large bulk submission.

After a restart every record the service acknowledged is sequenced exactly once, the tree has no
gaps or duplicates, and a full audit passes. Runs real ``trustledger serve`` processes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from cli.main import main
from ledger.service import open_ledger
from ledger.settings import Settings
from tests.service import Service, free_port

pytestmark = pytest.mark.slow
BULK = 2_000
REQUESTS = 15


@pytest.fixture
def environment(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env.update(
        TRUSTLEDGER_DATA_DIR=str(tmp_path / "var"),
        TRUSTLEDGER_DATABASE_URL=database_url,
        TRUSTLEDGER_SEQUENCER_BATCH_SIZE="1500",
        TRUSTLEDGER_SEQUENCER_MAX_AGE_S="0.05",
        TRUSTLEDGER_CHECKPOINT_INTERVAL_S="0.3",
    )
    monkeypatch.setenv("TRUSTLEDGER_DATA_DIR", env["TRUSTLEDGER_DATA_DIR"])
    monkeypatch.setenv("TRUSTLEDGER_DATABASE_URL", database_url)
    assert main(["init"]) == 0
    yield env


def test_kill_during_sequencing_loses_nothing(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["add-client", "approvals", "--role", "notarizer"]) == 0
    key = capsys.readouterr().out.strip()
    headers = {"Authorization": f"Bearer {key}"}
    service = Service(environment, free_port())
    acknowledged: list[str] = []
    sent = threading.Event()

    def submit() -> None:
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
            for n in range(REQUESTS):
                records = [
                    {
                        "kind": "approval",
                        "content_hash": {"value": hashlib.sha256(f"{n}/{i}".encode()).hexdigest()},
                    }
                    for i in range(BULK)
                ]
                try:
                    response = client.post("/v1/records/bulk", json={"records": records})
                except httpx.HTTPError:
                    break  # the service died under us: this request was never acknowledged
                if response.status_code == 202:
                    acknowledged.extend(r["id"] for r in response.json()["data"])
                if n == 5:
                    sent.set()
        sent.set()

    writer = threading.Thread(target=submit)
    writer.start()
    try:
        assert sent.wait(60)
        deadline = time.monotonic() + 30
        at_kill: dict[str, int] = {}
        while time.monotonic() < deadline:  # kill while the sequencer has work in hand
            info = httpx.get(f"{service.url}/v1/log", timeout=5).json()
            if info["tree_size"] > 0 and info["pending"] > 0:
                at_kill = info
                break
            time.sleep(0.01)
        service.kill()
        assert at_kill, "never saw the service with both sequenced and pending records"
    finally:
        service.kill()
        writer.join(60)
    assert acknowledged, "no bulk request was acknowledged before the kill"

    restarted = Service(environment, free_port())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = httpx.get(f"{restarted.url}/v1/log", timeout=5).json()
            if info["pending"] == 0 and info["checkpoint_size"] == info["tree_size"]:
                break
            time.sleep(0.2)
        assert info["pending"] == 0, info
    finally:
        restarted.kill()

    ledger = open_ledger(Settings())
    try:
        with ledger.store.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, log_index FROM record")).all()
        index_of = dict(rows)
        assert all(index_of.get(rid) is not None for rid in acknowledged), "an acknowledged record was lost"
        indices = sorted(index for _, index in rows)
        assert indices == list(range(len(rows))), "log indices have gaps or duplicates"
        assert ledger.current_size() == len(rows) >= len(acknowledged)
    finally:
        ledger.store.engine.dispose()
    assert main(["audit"]) == 0, capsys.readouterr().out
