"""FastAPI dependencies: settings, the ledger, and the authenticated calling system."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Header, Request

from api.oidc import OidcVerifier
from credit.errors import InvalidIdentifier
from credit.identifiers import SubjectKind
from credit.service import CreditService
from ledger.errors import Forbidden, Unauthorized
from ledger.keys import api_key_hash
from ledger.log import Ledger
from ledger.sequencer import Sequencer
from ledger.settings import Settings

_CLIENT_CACHE_S = 10.0
_CLIENT_CACHE_MAX = 10_000


class Role(StrEnum):
    """What a calling system may do."""

    NOTARIZER = "notarizer"  # submit records
    AUDITOR = "auditor"  # read proofs, trigger checkpoints, replay scores, read subjects' credit data
    SOURCE = "source"  # a credit source system (stored as "source:<rulebook source role>")
    APPROVAL = "approval"  # an approval system asking which measures apply
    OFFICER = "officer"  # credit officers: confirm list changes, decide repairs, publish list snapshots
    ADMIN = "admin"  # everything


@dataclass(frozen=True)
class Client:
    """An authenticated calling system."""

    name: str
    role: Role
    source_role: str | None = None  # for sources: court, tax, … (the rulebook's source roles)

    @classmethod
    def parse(cls, name: str, stored_role: str) -> Client:
        """A client from its stored role text (``source:court`` → SOURCE with source role court)."""
        role, _, source_role = stored_role.partition(":")
        return cls(name, Role(role), source_role or None)


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_ledger(request: Request) -> Ledger:
    """The app's ledger."""
    ledger: Ledger = request.app.state.ledger
    return ledger


def get_sequencer(request: Request) -> Sequencer | None:
    """The in-process sequencer, if this process runs one."""
    sequencer: Sequencer | None = request.app.state.sequencer
    return sequencer


SettingsDep = Annotated[Settings, Depends(get_settings)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
SequencerDep = Annotated[Sequencer | None, Depends(get_sequencer)]


def get_client(
    request: Request,
    ledger: LedgerDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Client:
    """The calling system named by ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    key = x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized("use 'Authorization: Bearer <api key>'", reason="bad-authorization")
        key = value.strip()
    if not key:
        raise Unauthorized("this operation needs an API key", reason="missing-api-key")
    digest = api_key_hash(key)
    # Only known keys are cached, so random keys cannot grow the cache; entries expire so that a
    # disabled client loses access within _CLIENT_CACHE_S.
    cache: dict[bytes, tuple[float, Client]] = request.app.state.client_cache
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and now - hit[0] <= _CLIENT_CACHE_S:
        return hit[1]
    found = ledger.store.client_by_key_hash(digest)
    if found is None:
        cache.pop(digest, None)
        raise Unauthorized("unknown or disabled API key", reason="invalid-api-key")
    client = Client.parse(found[0], found[1])
    if len(cache) >= _CLIENT_CACHE_MAX:
        cache.clear()
    cache[digest] = (now, client)
    return client


ClientDep = Annotated[Client, Depends(get_client)]


def _require(*roles: Role) -> Callable[[Client], Client]:
    """A dependency admitting only callers with one of ``roles`` (admin always passes)."""

    def check(client: ClientDep) -> Client:
        if client.role is not Role.ADMIN and client.role not in roles:
            raise Forbidden(f"{client.name} ({client.role.value}) may not do this", reason="role-required")
        return client

    return check


NotarizerDep = Annotated[Client, Depends(_require(Role.NOTARIZER))]
AuditorDep = Annotated[Client, Depends(_require(Role.AUDITOR))]
SourceDep = Annotated[Client, Depends(_require(Role.SOURCE))]
ApprovalDep = Annotated[Client, Depends(_require(Role.APPROVAL))]
OfficerDep = Annotated[Client, Depends(_require(Role.OFFICER))]
OfficerOrSourceDep = Annotated[Client, Depends(_require(Role.OFFICER, Role.SOURCE))]


def get_credit(request: Request) -> CreditService:
    """The app's credit service."""
    service: CreditService = request.app.state.credit
    return service


CreditDep = Annotated[CreditService, Depends(get_credit)]


@dataclass(frozen=True)
class Citizen:
    """A person or enterprise signed in through the identity provider: only its own data."""

    subject_ref: bytes
    identifier: str
    name: str | None
    kind: SubjectKind


def get_citizen(
    request: Request, credit: CreditDep, authorization: Annotated[str | None, Header()] = None
) -> Citizen:
    """The subject named by an OpenID Connect bearer token from the district's identity provider."""
    verifier: OidcVerifier | None = request.app.state.oidc
    if verifier is None:
        raise Unauthorized("citizen sign-in is not configured (oidc_issuer)", reason="oidc-not-configured")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("sign in: 'Authorization: Bearer <id token>'", reason="missing-token")
    signed_in = verifier.verify(token.strip())
    try:
        ref, kind, number = credit.subject_ref(signed_in.identifier)
    except InvalidIdentifier as e:
        if e.reason != "identifier-ambiguous":
            raise
        # Valid both as a resident ID and as a credit code: the reference depends only on the
        # number, and people sign in here (enterprises' tokens carry codes with letters mostly).
        ref, kind, number = credit.subject_ref(signed_in.identifier, SubjectKind.PERSON)
    return Citizen(ref, number, signed_in.name, kind)


CitizenDep = Annotated[Citizen, Depends(get_citizen)]
