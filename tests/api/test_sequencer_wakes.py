"""The sequencer wakes itself: records written through any route are sequenced without the route
telling it (the ledger calls the sequencer after each commit)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from credit.identifiers import resident_id_check_char
from ledger.chain.config import ChainBackend
from ledger.core.leaf import RecordKind
from ledger.keys import api_key_hash, new_api_key
from ledger.log import Ledger, RecordStatus
from ledger.settings import Settings

# The age timer fires only after a minute; a full batch of one record wakes the sequencer at once.
MAX_AGE_S = 60.0
WAIT_S = 30.0  # well under MAX_AGE_S: sequencing within it means the write woke the sequencer


@pytest.fixture
def running(ledger: Ledger, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app with its background jobs on, over ``ledger``; API keys by role."""
    settings = Settings(
        data_dir=tmp_path,
        run_scheduler=True,
        sequencer_batch_size=1,
        sequencer_max_age_s=MAX_AGE_S,
        checkpoint_interval_s=3600,
        chain_backend=ChainBackend.NONE,  # no anchoring
    )
    keys = {}
    for role in ("notarizer", "source:court"):
        keys[role] = new_api_key()
        ledger.register_client(f"{role.replace(':', '-')}-system", role, api_key_hash(keys[role]))
    with TestClient(create_app(settings, ledger=ledger)) as client:
        client.app.state.credit.ensure_rulebook()  # type: ignore[attr-defined]  # an injected ledger is set up by its owner
        yield client, keys


def _wait_until_nothing_pending(ledger: Ledger) -> None:
    deadline = time.monotonic() + WAIT_S
    while ledger.pending_count() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_record_write_is_sequenced_without_notify(
    running: tuple[TestClient, dict[str, str]], ledger: Ledger
) -> None:
    client, keys = running
    response = client.post(
        "/v1/records",
        json={"kind": "certificate", "content": {"certificate": "2026-001"}},
        headers={"Authorization": f"Bearer {keys['notarizer']}"},
    )
    assert response.status_code == 202, response.text
    _wait_until_nothing_pending(ledger)
    assert ledger.record(response.json()["id"]).status is not RecordStatus.PENDING


def test_a_credit_write_is_sequenced_without_notify(
    running: tuple[TestClient, dict[str, str]], ledger: Ledger
) -> None:
    client, keys = running
    body = "110105198001010" + "11"
    event = {
        "type": "contract_default",
        "subject": body + resident_id_check_char(body),
        "occurred_on": date.today().isoformat(),
        "source_ref": "(2026)闽0102民初9号",
    }
    response = client.post(
        "/v1/credit/events",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {keys['source:court']}"},
    )
    assert response.status_code == 201, response.text
    _wait_until_nothing_pending(ledger)
    written = [
        record_id
        for record_id, _position, leaf in ledger.iter_records([RecordKind.CREDIT_EVENT])
        if leaf.metadata.get("source_ref") == event["source_ref"]
    ]
    assert len(written) == 1
    assert ledger.record(written[0]).status is not RecordStatus.PENDING
    assert ledger.pending_count() == 0  # the score change too
