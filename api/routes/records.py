"""Record intake and reading: submit, bulk submit, streaming upload, status, receipt."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.body import check_json_text
from api.deps import LedgerDep, NotarizerDep, SettingsDep
from api.models import BulkAccepted, BulkIn, RecordAccepted, RecordIn, RecordStatusOut
from ledger.core.crypto import HashAlgorithm, new_hash
from ledger.core.leaf import MAX_METADATA_BYTES, RecordKind
from ledger.core.receipt import Receipt
from ledger.errors import InvalidRequest, PayloadTooLarge

router = APIRouter(prefix="/v1/records", tags=["records"])
# Canonical metadata is at most MAX_METADATA_BYTES; percent-encoded, this many characters stay
# under what the HTTP server accepts in a request head (~100 KB; beyond, it drops the connection).
_MAX_METADATA_QUERY = MAX_METADATA_BYTES
RecordId = Annotated[str, Path(min_length=1, max_length=64, description="the id returned at intake")]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (problem+json)"},
    401: {"description": "missing or unknown API key"},
    403: {"description": "role not allowed"},
    409: {"description": "idempotency key reused with different content"},
    413: {"description": "body or batch too large"},
    422: {"description": "invalid request fields (problem+json)"},
    429: {"description": "rate limited; retry after Retry-After seconds"},
    503: {"description": "log overloaded; retry after Retry-After seconds"},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_PROBLEMS,
    summary="Notarize one record",
)
def submit_record(body: RecordIn, ledger: LedgerDep, client: NotarizerDep) -> RecordAccepted:
    """Accept one record; it is sequenced and checkpointed in the background."""
    (accepted,) = ledger.submit(client.name, [body.to_submission(ledger)])
    return RecordAccepted.of(accepted)


@router.post(
    "/bulk",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_PROBLEMS,
    summary="Notarize many records at once (all or none)",
)
def submit_bulk(
    body: BulkIn,
    ledger: LedgerDep,
    settings: SettingsDep,
    client: NotarizerDep,
) -> BulkAccepted:
    """Accept up to ``max_bulk_records`` (default 10,000) records in one transaction."""
    if len(body.records) > settings.max_bulk_records:
        raise PayloadTooLarge(
            f"{len(body.records)} records in one request; the limit is {settings.max_bulk_records}",
            reason="too-many-records",
        )
    subs = [record.to_submission(ledger) for record in body.records]
    accepted = ledger.submit(client.name, subs)
    return BulkAccepted(data=[RecordAccepted.of(a) for a in accepted], count=len(accepted))


@router.post(
    "/upload",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_PROBLEMS,
    summary="Notarize an uploaded file, hashed while it streams",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_record(
    request: Request,
    ledger: LedgerDep,
    settings: SettingsDep,
    kind: RecordKind,
    client: NotarizerDep,
    alg: HashAlgorithm = HashAlgorithm.SM3,
    metadata: Annotated[str | None, Query(max_length=_MAX_METADATA_QUERY, description="JSON object")] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    idempotency_key: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    seal_key_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    seal_signature: Annotated[str | None, Query(min_length=8, max_length=200)] = None,
) -> RecordAccepted:
    """Stream the request body (the file itself) through the hash; the file is not stored.

    The body may be as large as ``max_upload_bytes``; only the hash enters the log, the caller
    keeps the file (evidence stays with its custodian). Every parameter is checked as the JSON
    route checks it, before a byte of the body is read.
    """
    record = _upload_record_in(
        settings.max_json_depth, kind, alg, metadata, subject_id, idempotency_key, seal_key_id, seal_signature
    )
    template = record.to_submission(ledger)
    hasher = new_hash(alg)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"upload exceeds {settings.max_upload_bytes} bytes", reason="upload-too-large"
            )
        hasher.update(chunk)
    submission = dataclasses.replace(template, content_hash=hasher.digest())
    (accepted,) = await run_in_threadpool(ledger.submit, client.name, [submission])
    return RecordAccepted.of(accepted)


def _upload_record_in(
    max_depth: int,
    kind: RecordKind,
    alg: HashAlgorithm,
    metadata: str | None,
    subject_id: str | None,
    idempotency_key: str | None,
    seal_key_id: str | None,
    seal_signature: str | None,
) -> RecordIn:
    """The upload's parameters as the JSON route's :class:`RecordIn` (a placeholder hash until the
    file has streamed), so both routes refuse the same things with the same reasons."""
    meta: Any = {}
    if metadata is not None:
        check_json_text(metadata.encode(), max_depth, what="metadata")
        try:
            meta = json.loads(metadata)
        except ValueError as e:  # JSONDecodeError, or an integer past Python's digit limit
            raise InvalidRequest(f"metadata is not JSON: {e}", reason="invalid-metadata") from e
    fields: dict[str, Any] = {
        "kind": kind,
        "content_hash": {"alg": alg, "value": "00" * 32},
        "metadata": meta,
        "subject_id": subject_id,
        "idempotency_key": idempotency_key,
    }
    if seal_key_id is not None or seal_signature is not None:
        fields["seal"] = {"key_id": seal_key_id, "signature": seal_signature}
    try:
        return RecordIn.model_validate(fields)
    except ValidationError as e:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in e.errors(include_url=False)]
        ) from e


@router.get("/{record_id}", responses={404: {"description": "unknown record"}})
def record_status(record_id: RecordId, ledger: LedgerDep) -> RecordStatusOut:
    """A record's status; anyone holding the (unguessable) record id may read it."""
    return RecordStatusOut.of(ledger.record(record_id))


@router.get(
    "/{record_id}/receipt",
    responses={404: {"description": "unknown record"}, 409: {"description": "not yet checkpointed"}},
)
def record_receipt(record_id: RecordId, ledger: LedgerDep) -> Receipt:
    """The record's receipt, verifiable offline with ``trustledger verify``."""
    return ledger.receipt(record_id)
