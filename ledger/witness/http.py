"""The witness's HTTP shell (C2SP tlog-witness): a small Starlette app over :class:`Witness`.

- ``POST /add-checkpoint``: 200 with the cosignature line(s) (``text/plain``); 409 with the
  latest cosigned size and a newline (``text/x.tlog.size``); otherwise problem+json with a
  ``reason``: 400 malformed, 403 not signed by a trusted log key, 404 unknown log, 413 too large,
  422 inconsistent (a fork, a smaller tree, a bad proof), 408 body too slow, 503 storage.
- ``GET /<sha256(origin) hex>/checkpoint``: the latest cosigned checkpoint (monitoring).
- ``GET /healthz``: liveness, the witness's name and public key.

The body is bounded on the stream (a declared ``Content-Length`` is checked first; chunked
bodies are cut off at the limit) and must arrive within ``read_timeout_s``: the service faces
the internet and its clients may be hostile. No error answers with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger.errors import LedgerError, PayloadTooLarge
from ledger.witness.errors import OldSizeMismatch, http_status
from ledger.witness.protocol import MAX_BODY_BYTES
from ledger.witness.service import Witness

_logger = logging.getLogger(__name__)
SIZE_CONTENT_TYPE = "text/x.tlog.size"
PROBLEM_JSON = "application/problem+json"
_ORIGIN_HASH = re.compile(r"^[0-9a-f]{64}$")
_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    413: "Payload too large",
    422: "Unprocessable checkpoint",
    500: "Internal error",
    503: "Unavailable",
}


def _problem(status: int, detail: str, reason: str) -> JSONResponse:
    body = {
        "type": f"urn:trustledger:problem:{reason}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _within(declared: str, limit: int) -> bool:
    # At most 12 digits before int(): a huge header must not cost a huge conversion.
    return declared.isascii() and declared.isdigit() and len(declared) <= 12 and int(declared) <= limit


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body may have at most {limit} bytes", reason="body-too-large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_witness_app(
    witness: Witness, *, max_body_bytes: int = MAX_BODY_BYTES, read_timeout_s: float = 10.0
) -> Starlette:
    """The witness's ASGI app."""

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and not _within(declared, max_body_bytes):
            return _problem(413, f"the body may have at most {max_body_bytes} bytes", "body-too-large")
        try:
            body = await asyncio.wait_for(_read_body(request, max_body_bytes), read_timeout_s)
        except PayloadTooLarge as e:
            return _problem(413, e.message, e.reason)
        except TimeoutError:
            return _problem(408, f"the body did not arrive within {read_timeout_s} s", "body-timeout")
        try:
            lines = await run_in_threadpool(witness.add_checkpoint, body)
        except OldSizeMismatch as e:
            # Exactly text/x.tlog.size (a media_type would get "; charset=utf-8" appended).
            body = f"{e.latest_size}\n".encode()
            return Response(body, status_code=409, headers={"content-type": SIZE_CONTENT_TYPE})
        except PayloadTooLarge as e:
            return _problem(413, e.message, e.reason)
        except LedgerError as e:
            status = http_status(e)
            if status >= 500:
                _logger.error("witness failure", extra={"error": e.diagnostics()})
            return _problem(status, e.message, e.reason)
        return Response(lines, media_type="text/plain; charset=utf-8")

    async def checkpoint(request: Request) -> Response:
        hashed = str(request.path_params["origin_hash"])
        if not _ORIGIN_HASH.match(hashed):
            return _problem(404, "not the lowercase hex SHA-256 of a log origin", "unknown-log")
        try:
            note = await run_in_threadpool(witness.latest_checkpoint, hashed)
        except LedgerError as e:
            return _problem(http_status(e), e.message, e.reason)
        return Response(note.to_text(), media_type="text/plain; charset=utf-8")

    async def healthz(_request: Request) -> Response:
        key = witness.public_key.hex()
        logs = witness.origins
        return JSONResponse({"status": "ok", "name": witness.name, "public_key": key, "logs": logs})

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        reason = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
        return _problem(status, str(getattr(exc, "detail", "")) or _TITLES.get(status, "Error"), reason)

    async def internal_error(_request: Request, exc: Exception) -> Response:
        _logger.exception("unexpected witness error", exc_info=exc)
        return _problem(500, "internal error", "internal-error")

    handlers: dict[Any, Any] = {HTTPException: http_error, Exception: internal_error}
    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash}/checkpoint", checkpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers=handlers,
    )
