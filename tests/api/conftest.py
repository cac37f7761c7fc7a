"""API fixtures: the real app over a real ledger (SQLite and PostgreSQL), with keys of each role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.keys import api_key_hash, new_api_key
from ledger.log import Ledger
from ledger.settings import Settings


@dataclass
class Api:
    """A test client plus the API keys of one caller per role."""

    client: TestClient
    ledger: Ledger
    keys: dict[str, str]

    def auth(self, role: str = "notarizer") -> dict[str, str]:
        """Headers authenticating as the caller with ``role``."""
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def api(ledger: Ledger, tmp_path: Path) -> Iterator[Api]:
    """The app with the scheduler off (tests drive sequencing and checkpoints explicitly)."""
    settings = Settings(
        data_dir=tmp_path,
        run_scheduler=False,
        max_bulk_records=10_000,
        max_json_body_bytes=4 * 1024 * 1024,
        max_upload_bytes=1024 * 1024,
    )
    keys = {}
    for role in ("notarizer", "auditor", "admin"):
        keys[role] = new_api_key()
        ledger.store.add_client(f"{role}-system", role, api_key_hash(keys[role]), 0)
    with TestClient(create_app(settings, ledger=ledger)) as client:
        yield Api(client, ledger, keys)
