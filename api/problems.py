"""RFC 9457 problem details: the one place where domain errors become HTTP responses.

Domain code raises errors of the project's one tree (:class:`~trustledger.errors.TrustledgerError`:
the ledger's, the credit engine's, the API's and the contracts' subtrees) and never
``HTTPException``; :data:`STATUS` maps each class to a status, and the handler turns it into a
``problem+json`` body with the error's stable ``reason``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import errors as api_errors
from contracts import errors as contracts_errors
from credit import errors as credit_errors
from ledger import errors as ledger_errors
from trustledger.errors import TrustledgerError

_logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

STATUS: tuple[tuple[type[TrustledgerError], int], ...] = (
    # The ledger: the first class an error is an instance of decides (subclasses before bases).
    (ledger_errors.PayloadTooLarge, 413),
    (ledger_errors.InvalidRequest, 400),
    (ledger_errors.VerificationError, 400),
    (ledger_errors.NotFound, 404),
    (ledger_errors.Conflict, 409),
    (ledger_errors.NotYetAvailable, 409),
    (ledger_errors.LogOverloaded, 503),
    (ledger_errors.StorageError, 503),
    (ledger_errors.ConfigurationError, 500),
    (ledger_errors.ChainRejected, 409),
    (ledger_errors.ChainDisagreement, 502),
    (ledger_errors.ChainError, 503),
    (ledger_errors.LedgerError, 500),
    # The credit engine: anything not named is the caller's input (400).
    (credit_errors.InvalidIdentifier, 400),
    (credit_errors.InvalidDate, 400),
    (credit_errors.RulebookError, 422),
    (credit_errors.InvalidEvent, 422),
    (credit_errors.UnknownSubject, 404),
    (credit_errors.NotFoundError, 404),
    (credit_errors.WorkflowError, 409),
    (credit_errors.Conflict, 409),
    (credit_errors.CalendarError, 500),
    (credit_errors.SubjectStateError, 500),
    (credit_errors.NoRulebookInForce, 503),
    (credit_errors.IntegrityFailure, 503),
    (credit_errors.CreditError, 400),
    # The API itself.
    (api_errors.Unauthorized, 401),
    (api_errors.Forbidden, 403),
    (api_errors.IdentityProviderUnavailable, 503),  # not the caller's fault
    (api_errors.ApiError, 500),
    # The contracts pipeline (a deployment problem if it ever reaches a request).
    (contracts_errors.ContractsError, 500),
    (TrustledgerError, 500),
)
"""Error class → HTTP status, for the whole tree."""


def problem(status: int, title: str, detail: str, reason: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"urn:trustledger:problem:{reason}", "title": title, "status": status, "detail": detail}
    body["reason"] = reason
    body.update(extra)
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(error: TrustledgerError) -> int:
    """The HTTP status for a domain error."""
    return next(status for kind, status in STATUS if isinstance(error, kind))


def install_problem_handlers(app: FastAPI) -> None:
    """Register the exception handlers that turn errors into problem+json."""

    @app.exception_handler(TrustledgerError)
    async def domain_error(_request: Request, error: TrustledgerError) -> JSONResponse:
        status = status_of(error)
        extra: dict[str, Any] = {}
        if isinstance(error, ledger_errors.LogOverloaded | ledger_errors.NotYetAvailable):
            extra["retry_after"] = error.retry_after
        if status >= 500:
            _logger.error("request failed", extra={"error": error.diagnostics()})
        return problem(status, type(error).__name__, error.message, error.reason, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        issues = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in error.errors()[:20]
        ]
        first = issues[0] if issues else {"location": "body", "message": "invalid"}
        detail = f"{first['location']}: {first['message']}"
        return problem(422, "Invalid request", detail, "validation-error", errors=issues)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        reason = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        return problem(error.status_code, "HTTP error", str(error.detail), reason)
