"""Anchoring on the consortium chain: progress, the anchors, anchoring on demand, receipt refresh."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import AuditorDep, LedgerDep
from ledger.anchoring import Anchorer, anchoring_status
from ledger.core.leaf import encode_leaf, format_time
from ledger.core.receipt import Receipt
from ledger.errors import Conflict, InvalidRequest
from ledger.stored import StoredAnchor

router = APIRouter(tags=["anchoring"])


class AnchorOut(BaseModel):
    """One checkpoint's anchor and where it stands."""

    tree_size: int
    state: str
    checkpoint_hash: str
    chain_id: int
    registry: str
    tx_hash: str | None
    sequence: int | None
    block_number: int | None
    block_hash: str | None
    attempts: int
    created_at: str
    final_at: str | None
    last_error: str | None


class AnchoringStatusOut(BaseModel):
    """How far behind anchoring is."""

    log_size: int
    checkpoint_size: int
    anchored_size: int
    entries_behind: int
    oldest_unanchored_age_s: float | None
    last_anchor: AnchorOut | None
    in_flight: AnchorOut | None
    last_error: str | None
    anchoring_here: bool


def _anchor_out(row: StoredAnchor | None) -> AnchorOut | None:
    if row is None:
        return None
    return AnchorOut(
        tree_size=row.tree_size,
        state=row.state,
        checkpoint_hash=row.checkpoint_hash.hex(),
        chain_id=row.chain_id,
        registry=row.registry_address,
        tx_hash=row.tx_hash,
        sequence=row.sequence,
        block_number=row.block_number,
        block_hash=row.block_hash,
        attempts=row.attempts,
        created_at=format_time(row.created_at_us),
        final_at=format_time(row.final_at_us) if row.final_at_us else None,
        last_error=row.last_error,
    )


def _anchorer(request: Request) -> Anchorer | None:
    anchorer: Anchorer | None = request.app.state.anchorer
    return anchorer


@router.get("/v1/anchors/status", summary="How far behind anchoring is")
def anchors_status(request: Request, ledger: LedgerDep) -> AnchoringStatusOut:
    """Entries not yet covered by a final anchor, the age of the oldest, the anchor in flight."""
    anchorer = _anchorer(request)
    s = anchoring_status(ledger, last_error=anchorer.last_error if anchorer else None)
    return AnchoringStatusOut(
        log_size=s.log_size,
        checkpoint_size=s.checkpoint_size,
        anchored_size=s.anchored_size,
        entries_behind=s.entries_behind,
        oldest_unanchored_age_s=s.oldest_unanchored_age_s,
        last_anchor=_anchor_out(s.last_anchor),
        in_flight=_anchor_out(s.in_flight),
        last_error=s.last_error,
        anchoring_here=anchorer is not None,
    )


@router.get("/v1/anchors", summary="Anchors, newest first")
def anchors_list(ledger: LedgerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AnchorOut]:
    """Every anchor attempt with its state (final, in flight, superseded or failed)."""
    return [a for a in (_anchor_out(r) for r in ledger.anchors(limit=limit)) if a is not None]


@router.post(
    "/v1/anchors",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "anchoring does not run in this process"},
        503: {"description": "chain down"},
    },
)
async def anchor_now(request: Request, _client: AuditorDep) -> AnchorOut:
    """Anchor the newest checkpoint now and wait (bounded) until it is final (auditor or admin)."""
    anchorer = _anchorer(request)
    if anchorer is None:
        raise Conflict(
            "anchoring is not running in this process (run_scheduler is off)", reason="no-anchorer"
        )
    row = await run_in_threadpool(anchorer.anchor_now, timeout_s=60.0)
    out = _anchor_out(row)
    if out is None:
        raise Conflict("the log is empty; nothing to anchor", reason="empty-log")
    return out


@router.post(
    "/v1/receipts/refresh",
    summary="Refresh a receipt (to its anchored form once available)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}}
    },
)
async def refresh_receipt(request: Request, ledger: LedgerDep) -> Receipt:
    """Return the record's current receipt: anchored when its checkpoint has been anchored.

    Like OpenTimestamps' upgrade of a pending proof: send the receipt you hold, get back one whose
    checkpoint is anchored on chain. The record's leaf must match what the log holds.
    """
    old = Receipt.from_json(await request.body())
    fresh = await run_in_threadpool(ledger.receipt, old.record.id)
    if encode_leaf(old.leaf_data()) != encode_leaf(fresh.leaf_data()):
        raise InvalidRequest(
            "the receipt's record differs from the log's record with that id", reason="receipt-altered"
        )
    return fresh
