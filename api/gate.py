"""The request gate: authenticate, rate-limit and bound the body before any route code runs.

One pure ASGI middleware (Starlette's ``@app.middleware("http")`` cost ~0.6 ms of CPU per request)
that, for every HTTP request, in this order:

1. finds the route and what it asks of its caller (:func:`api.deps.requirement_of`);
2. for an API-key route, resolves the key from the headers alone — a missing or unknown key is
   refused (401) and a wrong role (403) *without reading the body*; failed authentications are
   limited per address, more strictly than anything else; known keys have their own bucket;
   callers without an API key are limited per address;
3. reads the body while counting the bytes as they arrive (chunked or not, whatever
   ``Content-Length`` says) and answers 413 as soon as it is over the limit: the JSON limit for an
   authenticated caller, a small one (``max_unauthenticated_body_bytes``) for anyone else, the
   upload limit for routes whose documented body is ``application/octet-stream`` (those stream
   through the route, counted here too);
4. checks a JSON body's nesting depth and encoding on the bytes (:mod:`api.body`), so that no
   parser ever sees a body that could exhaust its stack, then hands the body on.

Every refusal is problem+json with a ``reason``; 429s carry ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.body import check_json_text
from api.deps import (
    CLIENT_SCOPE_KEY,
    MAX_AUTHORIZATION_CHARS,
    Auth,
    Client,
    Requirement,
    api_key_of,
    cached_client,
    find_client,
    requirement_of,
)
from api.errors import ApiError, Forbidden, Unauthorized
from api.limits import Rate, RateLimiter, retry_after
from api.problems import problem, status_of
from ledger.errors import LedgerError, PayloadTooLarge
from ledger.settings import Settings
from trustledger.errors import TrustledgerError

_logger = logging.getLogger(__name__)
_PUBLIC = Requirement()


class _Route:
    """What the gate needs to know about one route."""

    __slots__ = ("requirement", "streams")

    def __init__(self, requirement: Requirement, streams: bool) -> None:
        self.requirement = requirement
        self.streams = streams


def _describe(route: BaseRoute) -> _Route:
    if not isinstance(route, APIRoute):
        return _Route(_PUBLIC, False)
    content = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    return _Route(requirement_of(route.dependant), "application/octet-stream" in content)


def _flatten(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route in routing order, included routers opened up.

    FastAPI (0.16x) wraps each ``include_router`` in an object that keeps the router as
    ``original_router``; routers are included without a prefix here, so their routes' paths are
    the paths served. ``tests/api/test_gate.py`` checks that every authenticated route in the
    OpenAPI document is placed, so a FastAPI change that breaks this fails a test.
    """
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flatten(included.routes)
        else:
            yield route


class BodyTooLarge(PayloadTooLarge):
    """A streamed body went over its limit while the route was reading it."""


class Gate:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._table: list[tuple[BaseRoute, _Route]] | None = None  # built at the first request
        self._per_key = RateLimiter(Rate(settings.rate_limit_key_per_s, settings.rate_limit_key_burst))
        self._per_address = RateLimiter(
            Rate(settings.rate_limit_address_per_s, settings.rate_limit_address_burst)
        )
        self._failures = RateLimiter(
            Rate(settings.rate_limit_auth_failures_per_min / 60.0, settings.rate_limit_auth_failures_burst)
        )

    def _route(self, scope: Scope) -> _Route:
        if self._table is None:
            self._table = [(route, _describe(route)) for route in _flatten(scope["app"].router.routes)]
        for route, described in self._table:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return described
        # No route: the router answers 404/405. Anything the gate cannot place is treated as
        # public, i.e. with the small unauthenticated body limit (fails closed).
        return _Route(_PUBLIC, False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        except _Refused as refused:
            await refused.response(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope)
        address = _address(scope)
        headers = _headers(scope)
        requirement = route.requirement
        limit = min(self.settings.max_unauthenticated_body_bytes, self.settings.max_json_body_bytes)
        if requirement.auth is Auth.API_KEY:
            client = await self._authenticate(scope, address, headers)
            if not requirement.admits(client):
                raise _Refused.of(
                    Forbidden(f"{client.name} ({client.role.value}) may not do this", reason="role-required")
                )
            self._limit(self._per_key, f"key:{client.name}", "api-key-rate-limited", "this API key")
            scope[CLIENT_SCOPE_KEY] = client
            limit = self.settings.max_json_body_bytes
        else:
            self._limit(self._per_address, address, "address-rate-limited", "this address")
            if requirement.auth is Auth.CITIZEN:
                self._check_failures(address)
                authorization = headers.get("authorization", "")
                if not authorization.strip() or len(authorization) > MAX_AUTHORIZATION_CHARS:
                    self._failures.take(address)
                    raise _Refused.of(
                        Unauthorized("sign in: 'Authorization: Bearer <id token>'", reason="missing-token")
                    )
                send = self._counting_failures(send, address)
        if route.streams:
            limit = self.settings.max_upload_bytes
            _refuse_declared_length(headers, limit, "upload-too-large")
            await self.app(scope, _counted(receive, limit), send)
            return
        _refuse_declared_length(headers, limit, "body-too-large")
        body = await _read_body(receive, limit)
        if body:
            try:
                check_json_text(body, self.settings.max_json_depth)
            except LedgerError as e:
                raise _Refused.of(e) from e
        await self.app(scope, _replay(body, receive), send)

    async def _authenticate(self, scope: Scope, address: str, headers: dict[str, str]) -> Client:
        """The caller named by its API key; every failure costs a token of the failures bucket.

        An address that has failed too often is refused (429) before its key is looked up, so
        guessing gets no answer at all; a key seen valid in the last seconds (the client cache)
        still passes, so systems sharing an address with an attacker keep working.
        """
        try:
            authorization = headers.get("authorization")
            if authorization is not None and len(authorization) > MAX_AUTHORIZATION_CHARS:
                raise Unauthorized("unknown or disabled API key", reason="invalid-api-key")
            key = api_key_of(authorization, headers.get("x-api-key"))
            state = scope["app"].state
            client = cached_client(state.client_cache, key)
            if client is not None:
                return client
            self._check_failures(address)
            return await run_in_threadpool(find_client, state.ledger, state.client_cache, key)
        except Unauthorized as e:
            self._check_failures(address)
            self._failures.take(address)
            raise _Refused.of(e) from e
        except LedgerError as e:  # the database is down: 503, not the caller's fault
            raise _Refused.of(e) from e

    def _check_failures(self, address: str) -> None:
        if not self.settings.rate_limit_enabled:
            return
        wait = self._failures.wait(address)
        if wait > 0:
            raise _Refused(
                problem(
                    429,
                    "Too many failed authentications",
                    "too many failed authentications from this address; try again later",
                    "auth-rate-limited",
                    retry_after=retry_after(wait),
                )
            )

    def _limit(self, limiter: RateLimiter, key: str, reason: str, who: str) -> None:
        if not self.settings.rate_limit_enabled:
            return
        wait = limiter.take(key)
        if wait > 0:
            raise _Refused(
                problem(
                    429,
                    "Too many requests",
                    f"too many requests from {who}; slow down",
                    reason,
                    retry_after=retry_after(wait),
                )
            )

    def _counting_failures(self, send: Send, address: str) -> Send:
        """``send`` that counts a 401 answered by the route (a bad ID token) as a failure."""

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self._failures.take(address)
            await send(message)

        return counting


class _Refused(ApiError):
    """A request the gate answers itself with ``response`` (its control flow: never leaves the gate)."""

    reason = "refused-by-gate"

    def __init__(self, response: Any) -> None:
        super().__init__("the request gate answered this request itself")
        self.response = response

    @classmethod
    def of(cls, error: TrustledgerError) -> _Refused:
        status = status_of(error)
        if status >= 500:
            _logger.error("request failed", extra={"error": error.diagnostics()})
        return cls(problem(status, type(error).__name__, error.message, error.reason))


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _headers(scope: Scope) -> dict[str, str]:
    """The headers the gate reads (the last of repeated ones, lower-case names)."""
    wanted = {b"authorization", b"x-api-key", b"content-length", b"transfer-encoding"}
    return {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in wanted}


def _refuse_declared_length(headers: dict[str, str], limit: int, reason: str) -> None:
    declared = headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit() or len(declared) > 19 or int(declared) > limit:
        raise _Refused.of(PayloadTooLarge(f"body exceeds {limit} bytes", reason=reason))


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, counted as it arrives; 413 as soon as it is over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(problem(400, "Client disconnected", "the body was cut off", "disconnected"))
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused.of(PayloadTooLarge(f"body exceeds {limit} bytes", reason="body-too-large"))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that hands over the body read already, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counted(receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that raises :class:`BodyTooLarge` (413) once more than ``limit`` bytes came."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(f"upload exceeds {limit} bytes", reason="upload-too-large")
        return message

    return counted
