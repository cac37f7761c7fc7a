"""The ledger's error hierarchy.

Every failure the ledger reports is a :class:`LedgerError`. Library exceptions (SQLAlchemy,
gmssl, web3) are converted into these at the boundary with ``raise ... from e``; the API maps
them to RFC 9457 problem documents in one place (``api.problems``), the CLI to exit codes.
"""

from __future__ import annotations

from trustledger.errors import TrustledgerError


class LedgerError(TrustledgerError):
    """Root of all ledger errors. ``reason`` is a stable machine-readable code."""

    reason: str = "ledger-error"


class InvalidRequest(LedgerError):
    """The caller's input is malformed or not acceptable (HTTP 400)."""

    reason = "invalid-request"


class PayloadTooLarge(InvalidRequest):
    """A body, upload or batch is larger than the configured limit (HTTP 413)."""

    reason = "payload-too-large"


class NotFound(LedgerError):
    """The named record, checkpoint or key does not exist (HTTP 404)."""

    reason = "not-found"


class Conflict(LedgerError):
    """The request conflicts with stored state, e.g. a reused idempotency key (HTTP 409)."""

    reason = "conflict"


class WriteConflict(Conflict):
    """A unit of work met a concurrent writer on a unique key (an idempotency key, or one of the
    caller's own rows): nothing of the unit was stored; retry the whole unit (HTTP 409)."""


class NotYetAvailable(LedgerError):
    """The thing exists but is not ready yet, e.g. a receipt before its checkpoint (HTTP 409)."""

    reason = "not-yet-available"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class LogOverloaded(LedgerError):
    """Back-pressure: too many records wait for sequencing (HTTP 503 with Retry-After)."""

    reason = "log-overloaded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(LedgerError):
    """The database failed or is unreachable (HTTP 503)."""

    reason = "storage-error"


class ConfigurationError(LedgerError):
    """Settings, key files or the database schema are missing or invalid."""

    reason = "configuration-error"


class VerificationError(LedgerError):
    """Base of everything that makes a proof, signature or receipt not verify."""

    reason = "verification-failed"


class InvalidProof(VerificationError):
    """A Merkle inclusion or consistency proof does not verify (a bad proof, not a bad request)."""

    reason = "invalid-proof"


class InvalidSignature(VerificationError):
    """An SM2 signature (checkpoint or seal) does not verify."""

    reason = "invalid-signature"


class InvalidReceipt(VerificationError):
    """A receipt is malformed, or one of its checks failed; ``step`` names the check."""

    reason = "invalid-receipt"

    def __init__(self, message: str, *, step: str, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.step = step


class ChainError(LedgerError):
    """Base of failures talking to the anchoring chain (web3 and provider errors end here)."""

    reason = "chain-error"


class ChainUnavailable(ChainError):
    """No configured chain endpoint answered in time (HTTP 503); anchoring retries later."""

    reason = "chain-unavailable"


class ChainRejected(ChainError):
    """The registry contract refused a call; ``error`` is the Solidity custom error's name."""

    reason = "chain-rejected"

    def __init__(self, message: str, *, error: str, args: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.error = error
        self.error_args = args


class ChainDisagreement(ChainError):
    """Member endpoints report different anchored checkpoints: a lagging or lying node."""

    reason = "chain-disagreement"
