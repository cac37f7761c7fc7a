"""RFC 9457 problem details: the one place where domain errors become HTTP responses.

Domain code raises :class:`~ledger.errors.LedgerError` subclasses and never ``HTTPException``;
this module maps each to a status and a ``problem+json`` body with a stable ``reason``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from credit import errors as credit_errors
from ledger import errors

_logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_STATUS: list[tuple[type[errors.LedgerError], int]] = [
    (errors.PayloadTooLarge, 413),
    (errors.InvalidRequest, 400),
    (errors.VerificationError, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.NotYetAvailable, 409),
    (errors.LogOverloaded, 503),
    (errors.StorageError, 503),
    (errors.ConfigurationError, 500),
    (errors.ChainRejected, 409),
    (errors.ChainDisagreement, 502),
    (errors.ChainError, 503),
]


_CREDIT_STATUS: list[tuple[type[credit_errors.CreditError], int]] = [
    (credit_errors.InvalidIdentifier, 400),
    (credit_errors.RulebookError, 422),
    (credit_errors.InvalidEvent, 422),
    (credit_errors.UnknownSubject, 404),
    (credit_errors.NotFoundError, 404),
    (credit_errors.WorkflowError, 409),
    (credit_errors.Conflict, 409),
    (credit_errors.CalendarError, 500),
    (credit_errors.IntegrityFailure, 503),
]


def problem(status: int, title: str, detail: str, reason: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"urn:trustledger:problem:{reason}", "title": title, "status": status, "detail": detail}
    body["reason"] = reason
    body.update(extra)
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(error: errors.LedgerError) -> int:
    """The HTTP status for a domain error."""
    if error.reason == "idp-unavailable":
        return 503  # the identity provider is down: not the caller's fault
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def install_problem_handlers(app: FastAPI) -> None:
    """Register the exception handlers that turn errors into problem+json."""

    @app.exception_handler(errors.LedgerError)
    async def ledger_error(_request: Request, error: errors.LedgerError) -> JSONResponse:
        status = status_of(error)
        extra: dict[str, Any] = {}
        if isinstance(error, errors.LogOverloaded | errors.NotYetAvailable):
            extra["retry_after"] = error.retry_after
        if status >= 500:
            _logger.error("request failed", extra={"error": error.diagnostics()})
        return problem(status, type(error).__name__, error.message, error.reason, **extra)

    @app.exception_handler(credit_errors.CreditError)
    async def credit_error(_request: Request, error: credit_errors.CreditError) -> JSONResponse:
        status = next((code for kind, code in _CREDIT_STATUS if isinstance(error, kind)), 400)
        if status >= 500:
            _logger.error("request failed", extra={"error": error.diagnostics()})
        return problem(status, type(error).__name__, error.message, error.reason)

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
