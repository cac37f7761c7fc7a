"""One real ``trustledger serve`` for the hostile suite, with a key per role and some data.

The attacks run against the process a city would run, over a real socket, with the default rate
limits. Each test that must not be throttled by another's failed authentications sends from its own
loopback address (all of 127.0.0.0/8 reaches the service, and the service limits per address), as
distinct attackers would. The helpers count every row a failed request must not have written, and
run ``trustledger audit`` and ``trustledger credit replay --all``.
"""

from __future__ import annotations

import itertools
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
_HOSTS = itertools.count(1)


def new_address() -> str:
    """A loopback address no other test of this session sends from."""
    n = next(_HOSTS)
    return f"127.0.{n // 250 + 1}.{n % 250 + 1}"


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

    def client(self, address: str | None = None) -> httpx.Client:
        """An HTTP client sending from ``address`` (default: a fresh loopback address)."""
        transport = httpx.HTTPTransport(local_address=address or new_address())
        return httpx.Client(base_url=self.url, timeout=30, trust_env=False, transport=transport)

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

    def cli(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run ``trustledger COMMAND`` for each command on this deployment's data, as an operator
        would, side by side (each spends seconds importing)."""
        running = [
            (
                command,
                subprocess.Popen(
                    [sys.executable, "-m", "cli", *command],
                    env=self.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for command in commands
        ]
        done = []
        for command, process in running:
            out, err = process.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
        return done

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
        TRUSTLEDGER_CHAIN_BACKEND="none",
        **{f"TRUSTLEDGER_{name.upper()}": value for name, value in settings.items()},
    )
    # No chain: deploying the embedded one takes ~10 s. The service imports the chain libraries
    # anyway (py_ecc and eth raise the recursion limit at import, what made deep JSON fatal).
    config = Settings(data_dir=data_dir, chain_backend="none")
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


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The service (default rate limits, small body limits so that over-limit bodies are quick
    to send), holding one notarized record and one credit event for audit and replay to check.

    When the session ends, ``trustledger audit`` and ``trustledger credit replay --all`` must
    exit 0 on its data."""
    deployed = start_deployment(
        tmp_path_factory.mktemp("hostile"),
        MAX_JSON_BODY_BYTES=str(2 * 1024 * 1024),
        MAX_UPLOAD_BYTES=str(4 * 1024 * 1024),
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
        # After every attack of the session: the service is up, and the log and the credit
        # history are intact (an error here fails the run, reported at the last test's teardown).
        deployed.assert_healthy()
        audit, replay = deployed.cli(["audit"], ["credit", "replay", "--all"])
        assert audit.returncode == 0, f"trustledger audit after the attacks: {audit.stdout}{audit.stderr}"
        assert replay.returncode == 0, (
            f"credit replay --all after the attacks: {replay.stdout}{replay.stderr}"
        )
    finally:
        deployed.service.stop()
