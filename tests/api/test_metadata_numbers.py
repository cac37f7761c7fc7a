"""Intake enforces the metadata number rule of docs/formats.md: integers within ±(2^53−1) only.

Before, ``0.1`` and ``1e21`` were accepted although the format said integers only, and ``1.0`` was
stored as ``1`` (two request texts, one leaf). Each is refused with reason ``invalid-metadata`` on
every intake path, and nothing is written.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest

from tests.api.conftest import Api

PROBLEM = "application/problem+json"
NUMBERS = ["0.1", "1e21", "1.0", "-2.5E-3", "9007199254740992"]


def _record(metadata_number: str, i: int = 0) -> str:
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    return (
        f'{{"kind":"certificate","content_hash":{{"alg":"sha256","value":"{digest}"}},'
        f'"metadata":{{"issuer":"market","n":{metadata_number}}}}}'
    )


def _assert_refused(response: object) -> None:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["reason"] == "invalid-metadata" and "metadata.n" in body["detail"]


@pytest.mark.parametrize("number", NUMBERS)
def test_non_integer_metadata_numbers_are_refused_on_intake(api: Api, number: str) -> None:
    headers = {**api.auth(), "content-type": "application/json"}
    _assert_refused(api.client.post("/v1/records", content=_record(number), headers=headers))
    bulk = f'{{"records":[{_record("1", 1)},{_record(number, 2)}]}}'
    _assert_refused(api.client.post("/v1/records/bulk", content=bulk, headers=headers))
    meta = quote(f'{{"n":{number}}}')
    upload = api.client.post(
        f"/v1/records/upload?kind=evidence&metadata={meta}", content=b"x", headers=api.auth()
    )
    _assert_refused(upload)
    assert api.ledger.store.pending_count() == 0  # no write behind any refusal


def test_safe_integers_are_accepted(api: Api) -> None:
    headers = {**api.auth(), "content-type": "application/json"}
    for i, number in enumerate(["9007199254740991", "-9007199254740991", "0", "-0"]):
        response = api.client.post("/v1/records", content=_record(number, i), headers=headers)
        assert response.status_code == 202, response.text
    assert api.ledger.store.pending_count() == 4
