"""FastAPI dependencies: settings, the ledger, and the authenticated calling system."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant

from api.errors import Forbidden, Unauthorized
from api.oidc import OidcVerifier
from credit.errors import InvalidIdentifier
from credit.identifiers import SubjectKind
from credit.service import CreditService
from ledger.keys import api_key_hash
from ledger.log import Ledger
from ledger.settings import Settings

_CLIENT_CACHE_S = 10.0
_CLIENT_CACHE_MAX = 10_000
_MAX_KEY_CHARS = 512  # ours are 47; longer ones are not hashed at all
MAX_AUTHORIZATION_CHARS = 16 * 1024  # an API key or an OpenID Connect ID token
CLIENT_SCOPE_KEY = "trustledger.client"  # the ASGI scope entry where the gate leaves the caller


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def api_key_of(authorization: str | None, x_api_key: str | None) -> str:
    """The API key in ``Authorization: Bearer <key>`` or ``X-API-Key`` (:class:`Unauthorized` if none)."""
    key = x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("use 'Authorization: Bearer <api key>'", reason="bad-authorization")
        key = value.strip()
    if not key:
        raise Unauthorized("this operation needs an API key", reason="missing-api-key")
    if len(key) > _MAX_KEY_CHARS:
        raise Unauthorized("unknown or disabled API key", reason="invalid-api-key")
    return key


def cached_client(cache: dict[bytes, tuple[float, Client]], key: str) -> Client | None:
    """The client of ``key`` if it was looked up within the last few seconds (no I/O)."""
    hit = cache.get(api_key_hash(key))
    if hit is not None and time.monotonic() - hit[0] <= _CLIENT_CACHE_S:
        return hit[1]
    return None


def find_client(ledger: Ledger, cache: dict[bytes, tuple[float, Client]], key: str) -> Client:
    """The client of ``key``, from the cache or the database (:class:`Unauthorized` if unknown)."""
    digest = api_key_hash(key)
    # Only known keys are cached, so random keys cannot grow the cache; entries expire so that a
    # disabled client loses access within _CLIENT_CACHE_S.
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and now - hit[0] <= _CLIENT_CACHE_S:
        return hit[1]
    found = ledger.client_by_key_hash(digest)
    if found is None:
        cache.pop(digest, None)
        raise Unauthorized("unknown or disabled API key", reason="invalid-api-key")
    client = Client.parse(found.name, found.role)
    if len(cache) >= _CLIENT_CACHE_MAX:
        cache.clear()
    cache[digest] = (now, client)
    return client


def get_client(
    request: Request,
    ledger: LedgerDep,
    authorization: Annotated[str | None, Header(max_length=MAX_AUTHORIZATION_CHARS)] = None,
    x_api_key: Annotated[str | None, Header(max_length=_MAX_KEY_CHARS)] = None,
) -> Client:
    """The calling system named by ``Authorization: Bearer <key>`` or ``X-API-Key``.

    The request gate (:mod:`api.gate`) authenticates before the body is read and leaves the
    client in the ASGI scope; the look-up here is for an app used without the gate.
    """
    authenticated = request.scope.get(CLIENT_SCOPE_KEY)
    if isinstance(authenticated, Client):
        return authenticated
    key = api_key_of(authorization, x_api_key)
    cache: dict[bytes, tuple[float, Client]] = request.app.state.client_cache
    return find_client(ledger, cache, key)


ClientDep = Annotated[Client, Depends(get_client)]


@dataclass(frozen=True)
class RequireRole:
    """A dependency admitting only callers with one of ``roles`` (admin always passes).

    A value rather than a closure so that the request gate can read a route's roles and refuse a
    caller before the body is read.
    """

    roles: tuple[Role, ...]

    def admits(self, client: Client) -> bool:
        """Whether ``client`` may call the route."""
        return client.role is Role.ADMIN or client.role in self.roles

    def __call__(self, client: ClientDep) -> Client:
        if not self.admits(client):
            raise Forbidden(f"{client.name} ({client.role.value}) may not do this", reason="role-required")
        return client


def _require(*roles: Role) -> RequireRole:
    return RequireRole(roles)


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
    request: Request,
    credit: CreditDep,
    authorization: Annotated[str | None, Header(max_length=MAX_AUTHORIZATION_CHARS)] = None,
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


class Auth(StrEnum):
    """How a route authenticates its caller."""

    NONE = "none"  # public
    API_KEY = "api-key"  # a calling system (get_client)
    CITIZEN = "citizen"  # a signed-in person or enterprise (get_citizen)


@dataclass(frozen=True)
class Requirement:
    """What a route asks of its caller, read from its dependencies."""

    auth: Auth = Auth.NONE
    roles: tuple[RequireRole, ...] = ()

    def admits(self, client: Client) -> bool:
        """Whether an authenticated ``client`` passes every role check of the route."""
        return all(check.admits(client) for check in self.roles)


def requirement_of(dependant: Dependant) -> Requirement:
    """The authentication a route's dependency tree performs (API key, citizen token or none)."""
    auth = Auth.NONE
    roles: list[RequireRole] = []
    stack = list(dependant.dependencies)
    while stack:
        sub = stack.pop()
        if sub.call is get_client:
            auth = Auth.API_KEY
        elif sub.call is get_citizen and auth is Auth.NONE:
            auth = Auth.CITIZEN
        elif isinstance(sub.call, RequireRole):
            roles.append(sub.call)
        stack.extend(sub.dependencies)
    return Requirement(auth, tuple(roles))
