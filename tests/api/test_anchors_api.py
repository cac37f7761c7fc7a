"""Anchoring through the HTTP API on the embedded chain: status, list, anchor now, receipt refresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.core.receipt import Receipt, verify_receipt
from tests.api.conftest import Api
from tests.api.test_records_api import assert_problem, checkpoint, hash_hex
from tests.ledger.chain_fixtures import Deployed, embedded_deployment, observe


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    chain, deployment = embedded_deployment(tmp_path / "chain.db")
    yield deployment
    chain.close()


def _notarize(api: Api, count: int) -> list[str]:
    records = [
        {"kind": "approval", "content_hash": {"alg": "sha256", "value": hash_hex(i)}} for i in range(count)
    ]
    response = api.client.post("/v1/records/bulk", json={"records": records}, headers=api.auth())
    assert response.status_code in (200, 201, 202), response.text
    return [r["id"] for r in response.json()["data"]]


def test_anchor_now_status_and_refresh(api: Api, deployed: Deployed) -> None:
    ids = _notarize(api, 4)
    checkpoint(api)
    pending = api.client.get(f"/v1/records/{ids[0]}/receipt").json()
    assert pending["anchor"] is None

    status = api.client.get("/v1/anchors/status").json()
    assert status["entries_behind"] == 4 and status["anchored_size"] == 0 and not status["anchoring_here"]
    assert_problem(api.client.post("/v1/anchors", headers=api.auth("auditor")), 409, "no-anchorer")

    api.client.app.state.anchorer = deployed.anchorer(api.ledger)  # type: ignore[attr-defined]
    assert_problem(api.client.post("/v1/anchors", headers=api.auth("notarizer")), 403, "role-required")
    response = api.client.post("/v1/anchors", headers=api.auth("auditor"))
    assert response.status_code == 201, response.text
    anchor = response.json()
    assert anchor["state"] == "final" and anchor["tree_size"] == 4 and anchor["sequence"] == 0

    status = api.client.get("/v1/anchors/status").json()
    assert status["entries_behind"] == 0 and status["anchored_size"] == 4
    assert status["last_anchor"]["tx_hash"] == anchor["tx_hash"]
    assert [a["tree_size"] for a in api.client.get("/v1/anchors").json()] == [4]

    refreshed = api.client.post("/v1/receipts/refresh", json=pending)
    assert refreshed.status_code == 200, refreshed.text
    receipt = Receipt.model_validate(refreshed.json())
    assert receipt.anchor is not None and receipt.anchor.tx_hash == anchor["tx_hash"]
    verify_receipt(receipt, anchor_observations=observe(deployed.client(), receipt))


def test_refresh_refuses_altered_or_malformed_receipts(api: Api) -> None:
    ids = _notarize(api, 2)
    checkpoint(api)
    receipt = api.client.get(f"/v1/records/{ids[1]}/receipt").json()
    altered = {**receipt, "record": {**receipt["record"], "submitter": "someone-else"}}
    assert_problem(api.client.post("/v1/receipts/refresh", json=altered), 400, "receipt-altered")
    assert_problem(api.client.post("/v1/receipts/refresh", content=b"{not json"), 400, "invalid-receipt")
    unknown = {**receipt, "record": {**receipt["record"], "id": "0" * 46}}
    assert api.client.post("/v1/receipts/refresh", json=unknown).status_code == 404
