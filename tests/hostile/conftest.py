"""A real ``trustledger serve`` per test module, with a key per role and a ledger that has data.

Each module starts its own service (``deployment`` below, module scope) so the attacks run against
the process a city would run, over a real socket; the helpers count every row a failed request
must not have written, and run ``trustledger audit`` and ``trustledger credit replay --all``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ledger.keys import api_key_hash, new_api_key
from ledger.service import init_deployment, open_ledger
from ledger.settings import Settings
from tests.service import Service

PROBLEM = "application/problem+json"
ROLES = ("notarizer", "auditor", "admin", "source:court", "approval", "officer")
# Rows that only requests write; the log's own tables (tiles, checkpoints, anchors) move with the
# background jobs and are checked by `trustledger audit` instead.
COUNTED_TABLES = (
    "record",
    "api_client",
    "seal_key",
    "credit_subject",
    "credit_event",
    "credit_change",
    "credit_effect",
    "credit_score",
    "credit_access",
    "credit_case",
    "credit_case_step",
    "credit_list_snapshot",
    "credit_red_decision",
    "credit_rulebook",
)
ELDER = "11010519491231002X"  # a valid resident ID (the example of CREDIT-RULES.md)


@dataclass
class Deployment:
    """A running service, its data directory and environment, and one API key per role."""

    service: Service
    env: dict[str, str]
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.service.url

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, trust_env=False, **kwargs)

    def counts(self) -> dict[str, int]:
        """Rows per table that a request may write (read while the service runs)."""
        engine = sa.create_engine(f"sqlite:///{self.data_dir / 'trustledger.db'}")
        try:
            with engine.connect() as conn:
                present = set(sa.inspect(conn).get_table_names())
                return {
                    t: int(conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one())  # noqa: S608
                    for t in COUNTED_TABLES
                    if t in present
                }
        finally:
            engine.dispose()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``trustledger ARGS`` on this deployment's data, as an operator would run it."""
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def assert_healthy(self) -> None:
        """The process still runs and answers."""
        assert self.service.alive(), f"the service is down:\n{self.service.log()}"


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """``response`` is problem+json with a reason, with one of ``statuses`` (never a 5xx)."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code and body["reason"] and body["detail"], body
    return body


def start_deployment(tmp: Path, **settings: str) -> Deployment:
    """Initialise a data directory, register a client per role, start ``trustledger serve``.

    ``settings`` are ``TRUSTLEDGER_*`` variables (without the prefix) for the service.
    """
    data_dir = tmp / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLEDGER_")}
    env.update(
        TRUSTLEDGER_DATA_DIR=str(data_dir),
        TRUSTLEDGER_CHECKPOINT_INTERVAL_S="0.5",
        TRUSTLEDGER_SEQUENCER_MAX_AGE_S="0.05",
        TRUSTLEDGER_ANCHOR_INTERVAL_S="3600",
        TRUSTLEDGER_ANCHOR_MIN_ENTRIES="1000000",
        **{f"TRUSTLEDGER_{name.upper()}": value for name, value in settings.items()},
    )
    # The default embedded chain, as `trustledger init` sets up: its libraries (py_ecc, eth) raise
    # the interpreter's recursion limit, which is what turned deep JSON into a crash.
    config = Settings(data_dir=data_dir)
    init_deployment(config)
    keys = {}
    ledger = open_ledger(config)
    try:
        for role in ROLES:
            keys[role] = new_api_key()
            ledger.store.add_client(f"hostile-{role.replace(':', '-')}", role, api_key_hash(keys[role]), 0)
    finally:
        ledger.store.engine.dispose()
    return Deployment(Service(env), env, data_dir, keys)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A service with generous failed-authentication limits (the attacks send many keyless
    requests) and small body limits (so over-limit bodies are quick to send); it holds one
    notarized record and one credit event (so audit and replay have something to check)."""
    deployed = start_deployment(
        tmp_path_factory.mktemp("hostile"),
        MAX_JSON_BODY_BYTES=str(2 * 1024 * 1024),
        MAX_UPLOAD_BYTES=str(4 * 1024 * 1024),
        RATE_LIMIT_AUTH_FAILURES_BURST="100000",
        RATE_LIMIT_ADDRESS_BURST="100000",
    )
    try:
        with deployed.client() as client:
            record = {"kind": "certificate", "content": {"licence": "JY-1"}, "metadata": {"dept": "m"}}
            accepted = client.post("/v1/records", json=record, headers=deployed.auth("notarizer"))
            assert accepted.status_code == 202, accepted.text
            event = {
                "type": "adjudged_unpaid_debt",
                "subject": ELDER,
                "occurred_on": "2026-01-05",
                "source_ref": "hostile-1",
            }
            submitted = client.post(
                "/v1/credit/events", json={"events": [event]}, headers=deployed.auth("source:court")
            )
            assert submitted.status_code == 201, submitted.text
        yield deployed
    finally:
        deployed.service.stop()
