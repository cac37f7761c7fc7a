"""Why a witness refuses a checkpoint, one class per C2SP tlog-witness status code.

They extend the ledger's error tree (:mod:`ledger.errors`), so callers that catch
:class:`~ledger.errors.LedgerError` see them too; :data:`HTTP_STATUS` is the one mapping to HTTP.
"""

from __future__ import annotations

from ledger.errors import (
    Conflict,
    InvalidProof,
    InvalidRequest,
    InvalidSignature,
    LedgerError,
    NotFound,
    PayloadTooLarge,
)


class UnknownLog(NotFound):
    """The checkpoint's origin is not a log this witness witnesses (404)."""

    reason = "unknown-log"


class UntrustedCheckpoint(InvalidSignature):
    """No valid signature by a log key the policy trusts for this tree size (403)."""

    reason = "untrusted-checkpoint"


class OldSizeMismatch(Conflict):
    """``old`` is not the size of the witness's latest cosigned checkpoint (409, with that size)."""

    reason = "old-size-mismatch"

    def __init__(self, message: str, *, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class InconsistentCheckpoint(InvalidProof):
    """The checkpoint does not extend what the witness saw: a fork or a bad proof (422)."""

    reason = "inconsistent-checkpoint"


HTTP_STATUS: tuple[tuple[type[LedgerError], int], ...] = (
    (PayloadTooLarge, 413),
    (UnknownLog, 404),
    (UntrustedCheckpoint, 403),
    (OldSizeMismatch, 409),
    (InconsistentCheckpoint, 422),
    (InvalidRequest, 400),
)
"""Status code of each refusal (the first matching class wins); anything else is 503."""


def http_status(error: LedgerError) -> int:
    """The tlog-witness HTTP status of ``error``."""
    return next((status for cls, status in HTTP_STATUS if isinstance(error, cls)), 503)
