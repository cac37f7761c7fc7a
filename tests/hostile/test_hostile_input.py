"""Hostile input against a real ``trustledger serve``: it never goes down, never answers 500,
never writes half (issue 9, section 5).

``trustledger audit`` and ``trustledger credit replay --all`` run when the session's service is
torn down (``tests/hostile/conftest.py``), after every attack of the suite.

Each attack was reproduced against the service before the fix: deep JSON killed the process,
chunked bodies bypassed the size limit (and were read in full before a 401), a non-ASCII seal
signature and huge integers in queries were 500s. After every attack the service must still
answer, and no row a request could write may have appeared.
"""

from __future__ import annotations

import hashlib
import re
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.hostile.conftest import Deployment, assert_problem, new_address

pytestmark = pytest.mark.slow
DEEP = b"[" * 100_000  # ~100 KB: segfaulted json.loads under py_ecc's recursion limit
DEEP_SMALL = b"[" * 50_000  # under the unauthenticated body limit, so its depth is what is refused
HUGE = "99999999999999999999999"
NOT_BASE64 = "é" * 12  # non-ASCII: ValueError (not binascii.Error) from base64.b64decode


@pytest.fixture
def unchanged(deployment: Deployment) -> Iterator[None]:
    """The attack in the test leaves the service up and writes no row."""
    before = deployment.counts()
    yield
    deployment.assert_healthy()
    assert deployment.counts() == before, "a refused request left rows behind"


def json_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation whose request body is JSON, from the app's
    OpenAPI document: a new endpoint is attacked without anyone listing it here."""
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return found


def test_deep_json_to_every_json_endpoint(deployment: Deployment, unchanged: None) -> None:
    with deployment.client() as client:
        operations = json_operations(client.get("/openapi.json").json())
    paths = {path for _, path in operations}
    assert {"/v1/records", "/v1/records/bulk", "/v1/credit/events", "/v1/receipts/refresh"} <= paths
    json_headers = {"content-type": "application/json"}
    for method, path in operations:
        with deployment.client() as client:  # one attacker per endpoint: keyless 401s add up
            for role in (None, "admin", "source:court"):
                auth = deployment.auth(role) if role else {}
                for body in (DEEP, DEEP_SMALL):
                    response = client.request(method, path, content=body, headers=json_headers | auth)
                    problem = assert_problem(response, 400, 401, 403, 413)
                    assert problem["reason"] in {
                        "json-too-deep",
                        "body-too-large",
                        "missing-api-key",
                        "missing-token",
                        "role-required",
                    }, (method, path, role, problem)
        deployment.assert_healthy()


def test_deep_json_is_refused_for_its_depth(deployment: Deployment, unchanged: None) -> None:
    with deployment.client() as client:
        for path, role in (("/v1/records", "notarizer"), ("/v1/credit/events", "source:court")):
            response = client.post(
                path, content=DEEP, headers={"content-type": "application/json"} | deployment.auth(role)
            )
            assert assert_problem(response, 400)["reason"] == "json-too-deep"
        # Depth inside a valid record: the content value, the metadata, a bulk batch.
        nested: Any = "x"
        for _ in range(70):
            nested = [nested]
        for body in (
            {"kind": "generic", "content": nested},
            {"kind": "generic", "content": "x", "metadata": {"a": nested}},
        ):
            response = client.post("/v1/records", json=body, headers=deployment.auth("notarizer"))
            assert assert_problem(response, 400)["reason"] == "json-too-deep"
        bulk = {"records": [{"kind": "generic", "content": nested}]}
        response = client.post("/v1/records/bulk", json=bulk, headers=deployment.auth("notarizer"))
        assert assert_problem(response, 400)["reason"] == "json-too-deep"


# --- bodies on the stream ---------------------------------------------------------------------------


def _raw_request(
    deployment: Deployment,
    path: str,
    headers: dict[str, str],
    body_chunks: Iterator[bytes] | None,
    *,
    timeout_s: float = 20.0,
) -> tuple[int, int]:
    """Send a request over a raw socket (chunked unless ``headers`` name a content-length),
    stopping as soon as the server answers.

    Returns (status, body bytes sent before the answer). With ``body_chunks`` None only the
    headers are sent: a server that waits for the body before answering times out.
    """
    host, port = "127.0.0.1", deployment.service.port
    source = (new_address(), 0)
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}"]
    if "content-length" not in headers:
        lines.append("transfer-encoding: chunked")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sent = 0
    with socket.create_connection((host, port), timeout=timeout_s, source_address=source) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if body_chunks is not None:
            for chunk in body_chunks:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server answered (or closed): stop sending
                try:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
            else:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pytest.fail(f"no answer within {timeout_s} s (after {sent} body bytes)")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert match, f"no HTTP answer after {sent} body bytes: {answer[:200]!r}"
    return int(match.group(1)), sent


def _record_of(megabytes: int) -> Iterator[bytes]:
    """A valid one-record JSON body of about ``megabytes`` MB, in 64 KiB chunks."""
    yield b'{"kind": "generic", "content": "'
    for _ in range(megabytes * 16):
        yield b"x" * 65536
    yield b'"}'


def _file_of(megabytes: int) -> Iterator[bytes]:
    for _ in range(megabytes * 16):
        yield b"\0" * 65536


def test_chunked_body_over_the_limit_is_refused_on_the_stream(
    deployment: Deployment, unchanged: None
) -> None:
    # 100 MB sent chunked, with no Content-Length: refused once past the 2 MiB JSON limit.
    status, sent = _raw_request(
        deployment,
        "/v1/records",
        {"content-type": "application/json"} | deployment.auth("notarizer"),
        _record_of(100),
    )
    assert status == 413 and sent < 20 * 1024 * 1024, (status, sent)
    status, sent = _raw_request(
        deployment, "/v1/records/upload?kind=evidence", deployment.auth("notarizer"), _file_of(100)
    )
    assert status == 413 and sent < 20 * 1024 * 1024, (status, sent)


def test_no_key_is_refused_before_the_body_is_read(deployment: Deployment, unchanged: None) -> None:
    # Only the headers are sent: answering at all proves the body was not waited for.
    for path in ("/v1/records", "/v1/records/bulk", "/v1/records/upload?kind=evidence", "/v1/credit/events"):
        for auth in ({}, {"authorization": "Bearer tlk_guessed"}, {"x-api-key": "guessed"}):
            status, _ = _raw_request(
                deployment, path, {"content-type": "application/json"} | auth, None, timeout_s=10
            )
            assert status == 401, (path, auth, status)
    # A known key without the role is refused before the body too.
    status, _ = _raw_request(deployment, "/v1/records", deployment.auth("auditor"), None, timeout_s=10)
    assert status == 403
    # A citizen route without a token.
    status, _ = _raw_request(deployment, "/v1/credit/me/objections", {}, None, timeout_s=10)
    assert status == 401


def test_declared_length_over_the_limit_is_refused_unread(deployment: Deployment, unchanged: None) -> None:
    # Content-Length says 3 MiB (over the 2 MiB limit) and no byte follows: answered at once.
    headers = {"content-type": "application/json", "content-length": str(3 * 1024 * 1024)}
    status, _ = _raw_request(deployment, "/v1/records", headers | deployment.auth("notarizer"), None)
    assert status == 413
    headers = {"content-length": str(5 * 1024 * 1024)}
    status, _ = _raw_request(deployment, "/v1/records/upload?kind=evidence", headers, None)
    assert status == 401  # no key: refused before the length even matters
    status, _ = _raw_request(
        deployment, "/v1/records/upload?kind=evidence", headers | deployment.auth("notarizer"), None
    )
    assert status == 413


# --- 500s ----------------------------------------------------------------------------------------------


def test_non_ascii_seal_signature_is_a_400(deployment: Deployment, unchanged: None) -> None:
    record = {
        "kind": "generic",
        "content_hash": {"value": hashlib.sha256(b"sealed").hexdigest()},
        "seal": {"key_id": "k1", "signature": NOT_BASE64},
    }
    auth = deployment.auth("notarizer")
    with deployment.client() as client:
        for response in (
            client.post("/v1/records", json=record, headers=auth),
            client.post("/v1/records/bulk", json={"records": [record]}, headers=auth),
            client.post(
                "/v1/records/upload",
                params={"kind": "evidence", "seal_key_id": "k1", "seal_signature": NOT_BASE64},
                content=b"file",
                headers=auth,
            ),
        ):
            assert assert_problem(response, 400)["reason"] == "invalid-seal"


def test_huge_integers_are_refused(deployment: Deployment, unchanged: None) -> None:
    with deployment.client() as client:
        for path in (
            f"/v1/log/proofs/inclusion?index=0&tree_size={HUGE}",
            f"/v1/log/proofs/inclusion?index={HUGE}&tree_size=1",
            f"/v1/log/proofs/consistency?first=1&second={HUGE}",
            f"/v1/log/proofs/consistency?first={HUGE}&second=2",
            f"/v1/anchors?limit={HUGE}",
        ):
            assert assert_problem(client.get(path), 422)["reason"] == "validation-error", path
        # In range for the database, but past the log: a 400, not an OverflowError.
        largest = 2**63 - 1
        response = client.get(f"/v1/log/proofs/inclusion?index=0&tree_size={largest}")
        assert assert_problem(response, 400)["reason"] == "invalid-proof-request"
        response = client.get(
            f"/v1/credit/lists/snapshots/{HUGE}/proof",
            params={"subject_ref": "0" * 64, "purpose": "audit"},
            headers=deployment.auth("auditor"),
        )
        assert assert_problem(response, 422)["reason"] == "validation-error"


def test_upload_parameters_are_checked_like_the_json_route(deployment: Deployment, unchanged: None) -> None:
    auth = deployment.auth("notarizer")
    with deployment.client() as client:

        def upload(**params: str) -> httpx.Response:
            return client.post("/v1/records/upload", params=params, content=b"file", headers=auth)

        refused: list[tuple[dict[str, str], int, str]] = [
            ({"subject_id": ""}, 400, "invalid-subject"),
            ({"subject_id": " "}, 400, "invalid-subject"),
            ({"subject_id": "1" * 65}, 422, "validation-error"),
            # Credit kinds are written only by the credit service, on every intake route.
            ({"kind": "credit_event"}, 422, "validation-error"),
            # A seal needs both its parts; metadata must be a JSON object, and not a deep one.
            ({"seal_key_id": "k1"}, 422, "validation-error"),
            ({"metadata": "[1]"}, 422, "validation-error"),
            ({"metadata": "[" * 5000}, 400, "json-too-deep"),
            ({"metadata": "1" * 5000}, 400, "invalid-metadata"),
        ]
        for params, status, reason in refused:
            response = upload(**({"kind": "evidence"} | params))
            assert assert_problem(response, status)["reason"] == reason, params
