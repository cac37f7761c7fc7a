"""The FastAPI application factory. Nothing is built at import: the lifespan opens the ledger."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.gate import Gate
from api.oidc import OidcConfig, OidcVerifier
from api.problems import install_problem_handlers
from api.routes import anchors, log, policy, records
from api.routes import credit as credit_routes
from credit.service import CreditService
from credit.setup import open_credit, schedule_credit_jobs
from ledger.cosigning import schedule_cosigning
from ledger.log import Ledger
from ledger.sequencer import Sequencer, start_checkpoint_scheduler
from ledger.service import open_anchorer, open_ledger
from ledger.settings import Settings

_logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    ledger: Ledger | None = None,
    credit: CreditService | None = None,
    oidc: OidcVerifier | None = None,
) -> FastAPI:
    """Build the app; ``ledger``, ``credit`` and ``oidc`` may be injected (tests), otherwise they are
    opened from settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings or Settings()
        opened = ledger or open_ledger(conf, create_schema=True)
        app.state.settings = conf
        app.state.ledger = opened
        app.state.credit = credit or open_credit(opened, conf, create=True)
        if ledger is None and credit is None:  # set up what the app opened itself (injected: the caller's)
            app.state.credit.ensure_rulebook()
        app.state.oidc = oidc or _oidc_from(conf)
        app.state.client_cache = {}
        app.state.sequencer = None
        app.state.anchorer = None
        scheduler = None
        if conf.run_scheduler:
            sequencer = Sequencer(
                opened, batch_size=conf.sequencer_batch_size, max_age_s=conf.sequencer_max_age_s
            )
            sequencer.start()
            app.state.sequencer = sequencer
            scheduler = start_checkpoint_scheduler(opened, conf.checkpoint_interval_s)
            app.state.anchorer = open_anchorer(opened, conf)
            if app.state.anchorer is not None:
                app.state.anchorer.schedule(scheduler, conf.anchor_tick_s)
            schedule_credit_jobs(scheduler, app.state.credit, conf)
            schedule_cosigning(scheduler, opened, conf.policy_path, conf.checkpoint_interval_s)
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            if app.state.anchorer is not None:
                app.state.anchorer.close()
            if app.state.sequencer is not None:
                app.state.sequencer.stop()
            if ledger is None:
                opened.close()

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
    app.add_middleware(Gate, settings=settings or Settings())
    app.include_router(records.router)
    app.include_router(log.router)
    app.include_router(anchors.router)
    app.include_router(policy.router)
    app.include_router(credit_routes.router)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness."""
        return {"status": "ok"}

    return app


def _oidc_from(settings: Settings) -> OidcVerifier | None:
    """The citizens' token verifier (None when no identity provider is configured)."""
    if settings.oidc_issuer is None:
        return None
    config = OidcConfig(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        identifier_claim=settings.oidc_identifier_claim,
        jwks_uri=settings.oidc_jwks_uri,
    )
    return OidcVerifier(config)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (settings from TRUSTLEDGER_* variables)."""
    return create_app(Settings())
