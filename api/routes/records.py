"""Record intake and reading: submit, bulk submit, streaming upload, status, receipt."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from api.deps import LedgerDep, NotarizerDep, SequencerDep, SettingsDep
from api.models import BulkAccepted, BulkIn, RecordAccepted, RecordIn, RecordStatusOut, decode_signature
from ledger.core.crypto import HashAlgorithm, new_hash
from ledger.core.leaf import RecordKind
from ledger.core.receipt import Receipt
from ledger.errors import InvalidRequest, PayloadTooLarge
from ledger.log import Accepted, Ledger, Submission

router = APIRouter(prefix="/v1/records", tags=["records"])
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (problem+json)"},
    401: {"description": "missing or unknown API key"},
    403: {"description": "role not allowed"},
    409: {"description": "idempotency key reused with different content"},
    413: {"description": "body or batch too large"},
    503: {"description": "log overloaded; retry after Retry-After seconds"},
}


def _submit(ledger: Ledger, sequencer: Any, submitter: str, subs: list[Submission]) -> list[Accepted]:
    accepted = ledger.submit(submitter, subs)
    if sequencer is not None:
        sequencer.notify(len(subs))
    return accepted


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_PROBLEMS,
    summary="Notarize one record",
)
def submit_record(
    body: RecordIn, ledger: LedgerDep, sequencer: SequencerDep, client: NotarizerDep
) -> RecordAccepted:
    """Accept one record; it is sequenced and checkpointed in the background."""
    (accepted,) = _submit(ledger, sequencer, client.name, [body.to_submission(ledger)])
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
    sequencer: SequencerDep,
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
    accepted = _submit(ledger, sequencer, client.name, subs)
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
    sequencer: SequencerDep,
    settings: SettingsDep,
    kind: RecordKind,
    client: NotarizerDep,
    alg: HashAlgorithm = HashAlgorithm.SM3,
    metadata: Annotated[str | None, Query(description="JSON object")] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    idempotency_key: Annotated[str | None, Query(max_length=200)] = None,
    seal_key_id: str | None = None,
    seal_signature: str | None = None,
) -> RecordAccepted:
    """Stream the request body (the file itself) through the hash; the file is not stored.

    The body may be as large as ``max_upload_bytes``; only the hash enters the log, the caller
    keeps the file (evidence stays with its custodian).
    """
    hasher = new_hash(alg)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"upload exceeds {settings.max_upload_bytes} bytes", reason="upload-too-large"
            )
        hasher.update(chunk)
    try:
        meta = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"metadata is not JSON: {e}", reason="invalid-metadata") from e
    submission = Submission(
        kind=kind,
        content_hash=hasher.digest(),
        hash_alg=alg,
        metadata=meta,
        subject_ref=ledger.subject_ref(subject_id) if subject_id else None,
        idempotency_key=idempotency_key,
        seal_key_id=seal_key_id,
        seal_signature=decode_signature(seal_signature) if seal_signature else None,
    )
    (accepted,) = await run_in_threadpool(_submit, ledger, sequencer, client.name, [submission])
    return RecordAccepted.of(accepted)


@router.get("/{record_id}", responses={404: {"description": "unknown record"}})
def record_status(record_id: str, ledger: LedgerDep) -> RecordStatusOut:
    """A record's status; anyone holding the (unguessable) record id may read it."""
    return RecordStatusOut.of(ledger.record(record_id))


@router.get(
    "/{record_id}/receipt",
    responses={404: {"description": "unknown record"}, 409: {"description": "not yet checkpointed"}},
)
def record_receipt(record_id: str, ledger: LedgerDep) -> Receipt:
    """The record's receipt, verifiable offline with ``trustledger verify``."""
    return ledger.receipt(record_id)
