"""The log's public face: checkpoints, proofs, the public key, log info."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import AuditorDep, LedgerDep
from api.models import CheckpointOut, ConsistencyOut, InclusionOut, LogInfoOut, PublicKeyOut
from api.params import MAX_INT64, TreeIndex, TreeSize
from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.leaf import format_time
from ledger.errors import NotYetAvailable

router = APIRouter(prefix="/v1/log", tags=["log"])


def _checkpoint_out(signed: SignedCheckpoint) -> CheckpointOut:
    cp = signed.checkpoint
    return CheckpointOut(
        origin=cp.origin,
        tree_size=cp.size,
        root_hash=cp.root_hash.hex(),
        hash_alg=cp.hash_alg,
        time=format_time(cp.timestamp_us),
        note=signed.to_text(),
    )


@router.get("", summary="Log parameters and progress")
def log_info(ledger: LedgerDep) -> LogInfoOut:
    """Origin, hash, sequenced size, records waiting, newest checkpoint size."""
    progress = ledger.progress()
    return LogInfoOut(
        origin=ledger.origin,
        hash_alg=ledger.hash_alg,
        tree_size=progress.tree_size,
        pending=progress.pending,
        checkpoint_size=progress.checkpoint_size,
    )


@router.get("/checkpoint", responses={409: {"description": "no checkpoint yet"}})
def latest_checkpoint(ledger: LedgerDep) -> CheckpointOut:
    """The newest signed checkpoint."""
    return _checkpoint_out(ledger.latest_checkpoint())


@router.get("/checkpoint.txt", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def latest_checkpoint_text(ledger: LedgerDep) -> Response:
    """The newest signed checkpoint as a C2SP signed note (text/plain)."""
    return Response(ledger.latest_checkpoint().to_text(), media_type="text/plain; charset=utf-8")


@router.post("/checkpoint", status_code=status.HTTP_201_CREATED)
def issue_checkpoint(ledger: LedgerDep, _client: AuditorDep) -> CheckpointOut:
    """Sequence what is pending and issue a checkpoint now (auditor or admin)."""
    ledger.sequence_all()
    issued = ledger.issue_checkpoint()
    if issued is None:
        raise NotYetAvailable("the log is empty, or another process is issuing a checkpoint")
    return _checkpoint_out(SignedCheckpoint.from_text(issued.note))


@router.get("/proofs/consistency")
def consistency(
    ledger: LedgerDep,
    first: Annotated[int, Query(ge=0, le=MAX_INT64, description="the older tree size")],
    second: TreeSize,
) -> ConsistencyOut:
    """RFC 9162 consistency proof from tree size ``first`` to ``second``."""
    proof = ledger.consistency_proof(first, second)
    return ConsistencyOut(first=first, second=second, hashes=[h.hex() for h in proof])


@router.get("/proofs/inclusion")
def inclusion(ledger: LedgerDep, index: TreeIndex, tree_size: TreeSize) -> InclusionOut:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``tree_size``."""
    proof = ledger.inclusion_proof(index, tree_size)
    return InclusionOut(index=index, tree_size=tree_size, hashes=[h.hex() for h in proof])


@router.get("/public-key")
def public_key(ledger: LedgerDep) -> PublicKeyOut:
    """The SM2 key that signs checkpoints; pin it to verify receipts."""
    key = ledger.public_key
    return PublicKeyOut(key_name=ledger.origin, key_id=key.key_id(), public_key=key.hex(), pem=key.to_pem())
