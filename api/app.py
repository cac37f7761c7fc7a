"""The FastAPI application factory. Nothing is built at import: the lifespan opens the ledger."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response

from api.problems import install_problem_handlers, problem
from api.routes import log, records
from ledger.log import Ledger
from ledger.sequencer import Sequencer, start_checkpoint_scheduler
from ledger.service import open_ledger
from ledger.settings import Settings

_logger = logging.getLogger(__name__)
_UPLOAD_PATH = "/v1/records/upload"


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None) -> FastAPI:
    """Build the app; ``ledger`` may be injected (tests), otherwise it is opened from settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings or Settings()
        opened = ledger or open_ledger(conf, create_schema=True)
        app.state.settings = conf
        app.state.ledger = opened
        app.state.client_cache = {}
        app.state.sequencer = None
        scheduler = None
        if conf.run_scheduler:
            sequencer = Sequencer(
                opened, batch_size=conf.sequencer_batch_size, max_age_s=conf.sequencer_max_age_s
            )
            sequencer.start()
            app.state.sequencer = sequencer
            scheduler = start_checkpoint_scheduler(opened, conf.checkpoint_interval_s)
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            if app.state.sequencer is not None:
                app.state.sequencer.stop()
            if ledger is None:
                opened.store.engine.dispose()

    app = FastAPI(
        title="trustledger audit API",
        version="0.1.0",
        description=(
            "Notarize certificates, approvals and evidence into an SM3 Merkle log with SM2-signed "
            "checkpoints; fetch receipts anyone can verify offline. Errors are RFC 9457 problem+json."
        ),
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(records.router)
    app.include_router(log.router)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Uploads have their own (larger) limit, enforced while streaming.
        if request.url.path != _UPLOAD_PATH:
            limit = request.app.state.settings.max_json_body_bytes
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                return problem(413, "Payload too large", f"body exceeds {limit} bytes", "body-too-large")
        return await call_next(request)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness."""
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (settings from TRUSTLEDGER_* variables)."""
    return create_app(Settings())
