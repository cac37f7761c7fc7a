"""The development identity provider's HTTP face — DEVELOPMENT AND TESTS ONLY, never deploy it.

:func:`create_idp_app` serves a :class:`~devidp.provider.LocalIdentityProvider`: the discovery
document, the JWKS and a *password-less* ``POST /token`` that hands a signed token to anyone for
any identifier. There is no login, consent or client authentication: exposing it anywhere but a
developer's machine or a test run lets anyone sign in as anyone. :class:`RunningIdp` serves it
with uvicorn in a background thread for the tests.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.problems import install_problem_handlers
from devidp.provider import LocalIdentityProvider
from ledger.errors import InvalidRequest

_logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


class _TokenRequest(BaseModel):
    """The body of the development ``POST /token``."""

    model_config = ConfigDict(extra="forbid")

    identifier: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str | None, Field(max_length=200)] = None
    audience: Annotated[str | None, Field(min_length=1, max_length=200)] = None


def create_idp_app(provider: LocalIdentityProvider) -> FastAPI:
    """The provider's HTTP face — DEVELOPMENT AND TESTS ONLY, never deploy it.

    ``GET /.well-known/openid-configuration`` and ``GET /jwks.json`` are what a verifier needs.
    ``POST /token`` is password-less: a form or JSON body ``{identifier, name?, audience?}`` gets
    ``{access_token, id_token, token_type: "Bearer", expires_in}`` with no authentication at all.
    """
    _logger.warning("development identity provider: anyone can get a token for any identifier")
    app = FastAPI(
        title="trustledger development identity provider",
        description="DEVELOPMENT AND TESTS ONLY: POST /token signs tokens for anyone, without login.",
        version="0.1.0",
    )
    install_problem_handlers(app)

    @app.get("/.well-known/openid-configuration", tags=["oidc"])
    def openid_configuration() -> dict[str, Any]:
        """The discovery document."""
        return provider.discovery()

    @app.get("/jwks.json", tags=["oidc"])
    def jwks() -> dict[str, Any]:
        """The public signing keys."""
        return provider.jwks()

    @app.post("/token", tags=["development"])
    async def token(request: Request, response: Response) -> dict[str, Any]:
        """DEVELOPMENT ONLY: a signed token for the identifier in the form or JSON body."""
        body: Any
        if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
            try:
                body = await request.json()
            except ValueError as e:
                raise InvalidRequest("the body is not JSON", reason="invalid-json") from e
        else:
            form = await request.form()
            body = {key: value for key, value in form.items() if isinstance(value, str)}
        try:
            parsed = _TokenRequest.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise InvalidRequest(f"{where}: {first['msg']}", reason="invalid-token-request") from e
        audience = parsed.audience or provider.default_audience
        lifetime = provider.token_lifetime_s
        tokens = [
            provider.issue_token(parsed.identifier, name=parsed.name, audience=audience, lifetime_s=lifetime)
            for _ in range(2)
        ]
        response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
        return {
            "access_token": tokens[0],
            "id_token": tokens[1],
            "token_type": "Bearer",
            "expires_in": lifetime,
        }

    return app


class RunningIdp:
    """The development provider served by uvicorn in a background thread.

    A context manager: entering binds the port (``port=0``: a free one), sets ``provider.issuer``
    to the base URL, starts the server and returns the URL; leaving stops it. ``url`` stays
    available after entering. :meth:`start` and :meth:`stop` do the same without ``with``.
    """

    def __init__(self, provider: LocalIdentityProvider, host: str = "127.0.0.1", port: int = 0) -> None:
        self.provider = provider
        self.host = host
        self.port = port
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start serving; returns the base URL, which is now ``provider.issuer``."""
        if self._thread is not None:
            raise RuntimeError("the development IdP is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        port = int(sock.getsockname()[1])
        url = f"http://[{self.host}]:{port}" if family == socket.AF_INET6 else f"http://{self.host}:{port}"
        self.provider.issuer = url
        config = uvicorn.Config(
            create_idp_app(self.provider), log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"dev-idp:{port}", daemon=True
        )
        self._server, self._thread, self.url, self.port = server, thread, url, port
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"the development IdP did not start on {url}")
            time.sleep(0.01)
        _logger.info("development IdP serving", extra={"url": url})
        return url

    def stop(self) -> None:
        """Stop the server and wait (bounded) for its thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            _logger.warning("development IdP thread did not stop", extra={"url": self.url})

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(provider: LocalIdentityProvider, host: str = "127.0.0.1", port: int = 0) -> RunningIdp:
    """Serve ``provider`` on ``host:port`` in a background thread: ``with serve_in_thread(p) as url:``."""
    return RunningIdp(provider, host, port)
