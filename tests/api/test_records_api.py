"""End-to-end through the HTTP API: notarize, bulk, upload, receipts, proofs, and every error."""

from __future__ import annotations

import base64
import hashlib

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, Sm2PublicKey, digest_function, new_hash
from ledger.core.leaf import RecordKind, canonical_json, canonical_metadata, seal_message
from ledger.core.merkle import verify_consistency
from ledger.core.receipt import Receipt, verify_receipt
from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def hash_hex(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def checkpoint(api: Api) -> dict[str, object]:
    response = api.client.post("/v1/log/checkpoint", headers=api.auth("auditor"))
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def assert_problem(response: object, status: int, reason: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["reason"] == reason and body["status"] == status and body["detail"]
    return body


def test_notarize_and_verify_receipt(api: Api) -> None:
    content = {"licence": "JY-2026-0001", "holder": "某某餐饮有限公司"}
    response = api.client.post(
        "/v1/records",
        json={
            "kind": "certificate",
            "content": content,
            "metadata": {"dept": "market"},
            "subject_id": "91350100M000100Y43",
        },
        headers=api.auth(),
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted" and len(accepted["id"]) == 46
    pending = api.client.get(f"/v1/records/{accepted['id']}/receipt")
    assert_problem(pending, 409, "receipt-pending")
    assert pending.headers["retry-after"]

    checkpoint(api)
    status = api.client.get(f"/v1/records/{accepted['id']}").json()
    assert status["status"] == "checkpointed" and status["log_index"] == 0
    receipt = Receipt.from_json(api.client.get(f"/v1/records/{accepted['id']}/receipt").content)
    key = Sm2PublicKey.from_pem(api.client.get("/v1/log/public-key").json()["pem"])
    expected_hash = digest_function(HashAlgorithm.SM3)(canonical_json(content))
    result = verify_receipt(receipt, document_hash=expected_hash, trusted_key=key)
    assert result.document_checked and result.key_pinned
    assert "91350100M000100Y43" not in receipt.to_json()  # only the keyed hash is in the receipt
    assert receipt.record.subject_ref == api.ledger.subject_ref("91350100M000100Y43").hex()


def test_bulk_submit_and_consistency(api: Api) -> None:
    records = [{"kind": "approval", "content_hash": {"value": hash_hex(i)}} for i in range(10_000)]
    response = api.client.post("/v1/records/bulk", json={"records": records}, headers=api.auth())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["count"] == 10_000 and len({r["id"] for r in body["data"]}) == 10_000
    first = checkpoint(api)
    api.client.post("/v1/records", json=records[0] | {"kind": "generic"}, headers=api.auth())
    second = checkpoint(api)
    proof = api.client.get(
        f"/v1/log/proofs/consistency?first={first['tree_size']}&second={second['tree_size']}"
    )
    hasher = api.ledger.hasher
    verify_consistency(
        hasher,
        int(first["tree_size"]),  # type: ignore[call-overload]
        int(second["tree_size"]),  # type: ignore[call-overload]
        bytes.fromhex(str(first["root_hash"])),
        bytes.fromhex(str(second["root_hash"])),
        [bytes.fromhex(h) for h in proof.json()["hashes"]],
    )
    text = api.client.get("/v1/log/checkpoint.txt")
    assert text.text == second["note"] and text.headers["content-type"].startswith("text/plain")
    info = api.client.get("/v1/log").json()
    assert info["tree_size"] == 10_001 and info["pending"] == 0 and info["checkpoint_size"] == 10_001


def test_upload_is_hashed_while_streaming(api: Api) -> None:
    data = bytes(range(256)) * 2048  # 512 KiB

    def chunks() -> object:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    response = api.client.post(
        "/v1/records/upload?kind=evidence&metadata=%7B%22case%22%3A%22C-1%22%7D",
        content=chunks(),  # type: ignore[arg-type]
        headers=api.auth(),
    )
    assert response.status_code == 202, response.text
    checkpoint(api)
    receipt = Receipt.from_json(api.client.get(f"/v1/records/{response.json()['id']}/receipt").content)
    hasher = new_hash(HashAlgorithm.SM3)
    hasher.update(data)
    verify_receipt(receipt, document_hash=hasher.digest(), trusted_key=api.ledger.public_key)
    assert receipt.record.metadata == {"case": "C-1"} and receipt.record.kind is RecordKind.EVIDENCE


def test_sealed_record_over_http(api: Api) -> None:
    key = Sm2PrivateKey.generate()
    public = key.public_key()
    api.ledger.store.add_seal_key(public.key_id(), "notarizer-system", public.hex(), 0)
    content = bytes.fromhex(hash_hex(7))
    signature = key.sign(
        seal_message(RecordKind.APPROVAL, HashAlgorithm.SM3, content, canonical_metadata({"a": 1}))
    )
    body = {
        "kind": "approval",
        "content_hash": {"value": content.hex()},
        "metadata": {"a": 1},
        "seal": {"key_id": public.key_id(), "signature": base64.b64encode(signature).decode()},
    }
    assert api.client.post("/v1/records", json=body, headers=api.auth()).status_code == 202
    tampered = body | {"metadata": {"a": 2}}
    assert_problem(api.client.post("/v1/records", json=tampered, headers=api.auth()), 400, "invalid-seal")


def test_errors_are_problem_documents(api: Api) -> None:
    post = api.client.post
    good = {"kind": "generic", "content_hash": {"value": hash_hex(1)}}
    # malformed hash, unknown kind, both or neither content forms
    assert_problem(
        post("/v1/records", json={**good, "content_hash": {"value": "xyz"}}, headers=api.auth()),
        422,
        "validation-error",
    )
    assert_problem(
        post("/v1/records", json={**good, "kind": "diploma"}, headers=api.auth()), 422, "validation-error"
    )
    assert_problem(post("/v1/records", json={"kind": "generic"}, headers=api.auth()), 422, "validation-error")
    assert_problem(
        post("/v1/records", content=b"{not json", headers=api.auth() | {"content-type": "application/json"}),
        422,
        "validation-error",
    )
    # wrong key, no key, wrong role
    assert_problem(
        post("/v1/records", json=good, headers={"Authorization": "Bearer tlk_wrong"}), 401, "invalid-api-key"
    )
    assert_problem(post("/v1/records", json=good), 401, "missing-api-key")
    assert_problem(
        post("/v1/records", json=good, headers={"Authorization": "Basic abc"}), 401, "bad-authorization"
    )
    assert_problem(post("/v1/records", json=good, headers=api.auth("auditor")), 403, "role-required")
    assert_problem(post("/v1/log/checkpoint", headers=api.auth("notarizer")), 403, "role-required")
    # reused idempotency key with different content
    first = post("/v1/records", json={**good, "idempotency_key": "order-1"}, headers=api.auth())
    again = post("/v1/records", json={**good, "idempotency_key": "order-1"}, headers=api.auth())
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "duplicate"
    other = {**good, "content_hash": {"value": hash_hex(2)}, "idempotency_key": "order-1"}
    assert_problem(post("/v1/records", json=other, headers=api.auth()), 409, "idempotency-conflict")
    # oversized body, too many records, oversized upload
    huge = {**good, "metadata": {"blob": "x" * (5 * 1024 * 1024)}}
    assert_problem(post("/v1/records", json=huge, headers=api.auth()), 413, "body-too-large")
    big_meta = {**good, "metadata": {"blob": "x" * 10_000}}
    assert_problem(post("/v1/records", json=big_meta, headers=api.auth()), 400, "invalid-metadata")
    many = {"records": [good] * 10_001}
    assert_problem(post("/v1/records/bulk", json=many, headers=api.auth()), 413, "too-many-records")
    upload = post("/v1/records/upload?kind=evidence", content=b"x" * (1024 * 1024 + 1), headers=api.auth())
    assert_problem(upload, 413, "upload-too-large")
    # unknown record, bad proof request
    assert_problem(api.client.get("/v1/records/" + "0" * 32), 404, "unknown-record")
    assert_problem(
        api.client.get("/v1/log/proofs/consistency?first=5&second=2"), 400, "invalid-proof-request"
    )
    assert_problem(api.client.get("/v1/nothing-here"), 404, "not-found")
    # nothing was half-stored by any of the failed requests
    assert api.ledger.store.pending_count() == 1


def test_openapi_documents_every_route(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/v1/records",
        "/v1/records/bulk",
        "/v1/records/upload",
        "/v1/records/{record_id}",
        "/v1/records/{record_id}/receipt",
        "/v1/log/checkpoint",
        "/v1/log/checkpoint.txt",
        "/v1/log/proofs/consistency",
        "/v1/log/proofs/inclusion",
        "/v1/log/public-key",
    } <= paths
    assert "application/octet-stream" in spec["paths"]["/v1/records/upload"]["post"]["requestBody"]["content"]
    assert "Receipt" in spec["components"]["schemas"]
