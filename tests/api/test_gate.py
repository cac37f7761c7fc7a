"""The request gate in process: JSON depth before parsing, bodies bounded on the stream and unread
before authentication, rate limits, and the 500s of issue 9 section 5 (see also tests/hostile/)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.body import check_json_text, json_depth
from api.limits import Rate, RateLimiter, retry_after
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.errors import InvalidRequest
from ledger.keys import api_key_hash, new_api_key
from ledger.log import Ledger
from ledger.settings import Settings
from tests.api.conftest import Api
from tests.api.test_records_api import assert_problem

NOT_BASE64 = "é" * 12
_CALLERS = itertools.count(1)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


# --- the depth scan ------------------------------------------------------------------------------------


def true_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ax\n\u00e9'),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\k'), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values, st.booleans())
def test_json_depth_is_exact_for_json(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_depth(text) == true_depth(value)


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": ["\\"[[", "\\\\"]}') == 2
    assert json_depth(b'["\\\\\\"[[[[", []]') == 2
    assert json_depth(b"[" * 100_000) == 100_000  # not JSON: an upper bound of the parser's recursion
    assert json_depth(b"") == 0 and json_depth(b"42") == 0


def test_check_json_text_refuses_deep_and_non_utf8() -> None:
    check_json_text(json.dumps(nested(64)).encode(), 64)
    with pytest.raises(InvalidRequest) as too_deep:
        check_json_text(json.dumps(nested(65)).encode(), 64)
    assert too_deep.value.reason == "json-too-deep"
    with pytest.raises(InvalidRequest) as utf16:  # json.loads would decode it; the scan cannot
        check_json_text(json.dumps(nested(3)).encode("utf-16"), 64)
    assert utf16.value.reason == "json-not-utf8"


# --- bodies ---------------------------------------------------------------------------------------------


def test_deep_json_is_refused_before_parsing(api: Api) -> None:
    for body in (
        {"kind": "generic", "content": nested(70)},
        {"records": [{"kind": "generic", "content": nested(70)}]},
    ):
        path = "/v1/records" if "kind" in body else "/v1/records/bulk"
        response = api.client.post(path, json=body, headers=api.auth())
        assert_problem(response, 400, "json-too-deep")
    ok = api.client.post("/v1/records", json={"kind": "generic", "content": nested(60)}, headers=api.auth())
    assert ok.status_code == 202, ok.text
    assert api.ledger.store.pending_count() == 1


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"kind": "generic", "content": "'
    for _ in range(total // 65536):
        yield b"x" * 65536
    yield b'"}'


def test_chunked_body_over_the_limit_is_413(api: Api) -> None:
    # No Content-Length (a generator body is sent chunked): the limit holds on the stream.
    response = api.client.post("/v1/records", content=_chunks(5 * 1024 * 1024), headers=api.auth())
    assert_problem(response, 413, "body-too-large")
    response = api.client.post(
        "/v1/records/upload?kind=evidence", content=_chunks(2 * 1024 * 1024), headers=api.auth()
    )
    assert_problem(response, 413, "upload-too-large")
    assert api.ledger.store.pending_count() == 0


def _asgi(api: Api, method: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Call the app directly with a 1 MB body; return (status, how often it asked for the body)."""
    path, _, query = path.partition("?")
    caller = next(_CALLERS)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (f"198.18.{caller // 250}.{caller % 250}", 1234),  # each call its own caller
        "server": ("testserver", 80),
    }
    asked = 0
    started: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": b"[" * (1024 * 1024), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])

    assert api.client.portal is not None
    api.client.portal.call(api.client.app, scope, receive, send)
    return started[0], asked


def test_unauthenticated_requests_are_refused_unread(api: Api) -> None:
    """Every operation that needs a key or a token refuses a caller without one before asking
    for the body — found from the OpenAPI document, so new routes are covered."""
    spec = api.client.get("/openapi.json").json()
    refused = 0
    for template, item in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "1", template)
        if template == "/v1/records/upload":
            path += "?kind=evidence"
        for method in item:
            probe = api.client.request(method.upper(), path)  # with no body at all
            if probe.status_code != 401:
                continue
            for headers in ({}, {"authorization": "Bearer tlk_guess"}, {"x-api-key": "guess"}):
                status, asked = _asgi(api, method.upper(), path, headers)
                if template.startswith("/v1/credit/me") and headers.get("authorization"):
                    continue  # a citizen's token is checked by the route (after a bounded read)
                assert (status, asked) == (401, 0), (method, template, headers)
            refused += 1
    assert refused >= 20  # records, log, anchors and credit operations all need a caller


def test_wrong_role_is_refused_unread(api: Api) -> None:
    status, asked = _asgi(api, "POST", "/v1/records", api.auth("auditor"))
    assert (status, asked) == (403, 0)
    status, asked = _asgi(api, "POST", "/v1/records/bulk", api.auth())
    assert (status, asked) == (400, 1)  # read (1 MB < the limit), then refused for its depth


# --- 500s and parameters ---------------------------------------------------------------------------------


def test_non_ascii_seal_signature_is_400(api: Api) -> None:
    record = {
        "kind": "generic",
        "content_hash": {"value": hashlib.sha256(b"x").hexdigest()},
        "seal": {"key_id": "k1", "signature": NOT_BASE64},
    }
    assert_problem(api.client.post("/v1/records", json=record, headers=api.auth()), 400, "invalid-seal")
    bulk = {"records": [record]}
    assert_problem(api.client.post("/v1/records/bulk", json=bulk, headers=api.auth()), 400, "invalid-seal")
    params = {"kind": "evidence", "seal_key_id": "k1", "seal_signature": NOT_BASE64}
    upload = api.client.post("/v1/records/upload", params=params, content=b"f", headers=api.auth())
    assert_problem(upload, 400, "invalid-seal")
    assert api.ledger.store.pending_count() == 0


def test_huge_integers_are_422(api: Api) -> None:
    huge = "99999999999999999999999"
    for path in (
        f"/v1/log/proofs/inclusion?index=0&tree_size={huge}",
        f"/v1/log/proofs/consistency?first=1&second={huge}",
    ):
        assert_problem(api.client.get(path), 422, "validation-error")
    snapshot = api.client.get(
        f"/v1/credit/lists/snapshots/{huge}/proof",
        params={"subject_ref": "0" * 64, "purpose": "audit"},
        headers=api.auth("auditor"),
    )
    assert_problem(snapshot, 422, "validation-error")
    assert api.ledger.store.pending_count() == 0  # no access record either


def test_upload_subject_id_is_checked_like_the_json_route(api: Api) -> None:
    def upload(**params: str) -> Any:
        return api.client.post("/v1/records/upload", params=params, content=b"f", headers=api.auth())

    json_route = api.client.post(
        "/v1/records", json={"kind": "evidence", "content": "f", "subject_id": ""}, headers=api.auth()
    )
    assert_problem(json_route, 400, "invalid-subject")
    assert_problem(upload(kind="evidence", subject_id=""), 400, "invalid-subject")
    assert_problem(upload(kind="evidence", subject_id="1" * 65), 422, "validation-error")
    assert_problem(upload(kind="credit_change"), 422, "validation-error")
    assert api.ledger.store.pending_count() == 0
    accepted = upload(kind="evidence", subject_id="91350100M000100Y43", metadata='{"case": "A-1"}')
    assert accepted.status_code == 202, accepted.text
    leaf = api.ledger.record(accepted.json()["id"]).leaf
    assert leaf.subject_ref == api.ledger.subject_ref("91350100M000100Y43")
    assert leaf.content_hash == digest_function(HashAlgorithm.SM3)(b"f")


# --- rate limits -----------------------------------------------------------------------------------------


@pytest.fixture
def strict(ledger: Ledger, tmp_path: Path) -> Iterator[Api]:
    """The app with small buckets that do not refill during a test."""
    settings = Settings(
        data_dir=tmp_path,
        run_scheduler=False,
        rate_limit_key_per_s=0.001,
        rate_limit_key_burst=5,
        rate_limit_address_per_s=0.001,
        rate_limit_address_burst=8,
        rate_limit_auth_failures_per_min=0.06,
        rate_limit_auth_failures_burst=3,
    )
    keys = {"notarizer": new_api_key()}
    ledger.store.add_client("notary", "notarizer", api_key_hash(keys["notarizer"]), 0)
    with TestClient(create_app(settings, ledger=ledger)) as client:
        yield Api(client, ledger, keys)


def test_failed_authentications_are_limited_per_address(strict: Api) -> None:
    statuses = [
        strict.client.get("/v1/anchors/status", headers={"x-api-key": f"guess-{i}"}).status_code
        for i in range(3)
    ]
    guesses = [
        strict.client.post("/v1/records", json={}, headers={"x-api-key": f"guess-{i}"}) for i in range(5)
    ]
    assert statuses == [200, 200, 200]  # a public route ignores the header
    assert [g.status_code for g in guesses] == [401, 401, 401, 429, 429]
    body = assert_problem(guesses[-1], 429, "auth-rate-limited")
    assert int(guesses[-1].headers["retry-after"]) >= 1 and body["detail"]


def test_each_key_has_its_bucket(strict: Api) -> None:
    answers = [
        strict.client.post("/v1/records", json={"kind": "generic", "content": i}, headers=strict.auth())
        for i in range(6)
    ]
    assert [a.status_code for a in answers] == [202] * 5 + [429]
    assert_problem(answers[-1], 429, "api-key-rate-limited")
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert strict.ledger.store.pending_count() == 5


def test_keyless_callers_are_limited_per_address(strict: Api) -> None:
    answers = [strict.client.get("/v1/log").status_code for _ in range(9)]
    assert answers == [200] * 8 + [429]


def test_rate_limiter_refills_and_forgets() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(per_s=2.0, burst=2), max_keys=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.wait("a") == pytest.approx(0.5)
    limiter.take("b")
    limiter.take("c")  # "a" is the least recently used: forgotten, full again
    assert limiter.wait("a") == 0.0
    assert retry_after(0.2) == 1 and retry_after(2.1) == 3 and retry_after(float("inf")) == 86_400
