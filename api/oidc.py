"""OpenID Connect bearer-token verification for citizens and enterprises.

People and enterprises sign in at the district's identity provider (IdP); the API receives the
provider's signed JWT as a bearer token and verifies it here against the provider's published
keys (RFC 7517 JWKS), found through OpenID Connect Discovery 1.0 §4 unless configured directly.

Checks, in order: the header names an allowed asymmetric algorithm and a ``kid`` (``none`` and
HMAC algorithms are never accepted, so a public key cannot be used as an HMAC secret); the key
with that ``kid`` verifies the signature (RFC 7515), fetching the JWKS again once when the ``kid``
is unknown (key rotation); ``iss`` and ``aud`` match (RFC 7519 §4.1.1, §4.1.3); ``exp``, ``nbf``
and ``iat`` hold against an injectable clock with a leeway; ``sub`` and the identifier claim are
present. Every failure is a :class:`~api.errors.Unauthorized` with a stable ``reason``, or an
:class:`~api.errors.IdentityProviderUnavailable` when the provider's keys cannot be had; no PyJWT
or urllib exception leaves this module.

:meth:`OidcVerifier.verify` blocks on the network when it has to fetch keys (bounded by
``http_timeout_s``): call it from a synchronous dependency (FastAPI's thread pool), not from
``async def`` code.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from api.errors import IdentityProviderUnavailable, Unauthorized
from ledger.errors import ConfigurationError

_logger = logging.getLogger(__name__)

#: Asymmetric JWS algorithms (RFC 7518 §3.1) this module will verify; ``none`` and ``HS*`` never.
SUPPORTED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
_JWKS_LIFESPAN_S = 300.0  # refresh the cached JWKS at most this often ...
_UNKNOWN_KID_REFETCH_S = 30.0  # ... unless a kid is unknown, at most once per this interval
_STALE_IF_ERROR_S = 3600.0  # keep verifying with the last good JWKS this long while the IdP is down
_FAILURE_BACKOFF_S = 5.0  # after a failed fetch, do not ask the IdP again for this long
_MAX_DISCOVERY_BYTES = 1024 * 1024
_DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class OidcConfig:
    """Where the identity provider is and what its tokens must say.

    ``issuer`` is compared exactly with the tokens' ``iss`` claim and, when ``jwks_uri`` is None,
    the JWKS location is read from ``{issuer}/.well-known/openid-configuration``, whose ``issuer``
    must also match exactly (OpenID Connect Discovery 1.0 §4.3). ``identifier_claim`` carries the
    person's 18-digit resident ID or the enterprise's unified social credit code.
    """

    issuer: str
    audience: str
    identifier_claim: str = "id_number"
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: int = 30
    http_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name, url in (("issuer", self.issuer), ("jwks_uri", self.jwks_uri)):
            if url is not None and not _is_http_url(url):
                raise ConfigurationError(f"OIDC {name} must be an http(s) URL, got {url!r}")
        if not self.audience:
            raise ConfigurationError("OIDC audience must not be empty")
        if not self.identifier_claim:
            raise ConfigurationError("OIDC identifier_claim must not be empty")
        unsupported = [alg for alg in self.algorithms if alg not in SUPPORTED_ALGORITHMS]
        if unsupported or not self.algorithms:
            raise ConfigurationError(
                f"OIDC algorithms must be a non-empty subset of {sorted(SUPPORTED_ALGORITHMS)}; "
                f"refused: {unsupported or 'empty'} (none and HMAC algorithms are never accepted)"
            )
        if self.leeway_s < 0:
            raise ConfigurationError("OIDC leeway_s must not be negative")
        if not (math.isfinite(self.http_timeout_s) and self.http_timeout_s > 0):
            raise ConfigurationError("OIDC http_timeout_s must be a positive number of seconds")

    @property
    def discovery_url(self) -> str:
        """The provider's discovery document (OpenID Connect Discovery 1.0 §4)."""
        return self.issuer.rstrip("/") + _DISCOVERY_PATH


@dataclass(frozen=True)
class SignedInSubject:
    """A person or enterprise whose bearer token verified.

    ``identifier`` is the resident ID or unified social credit code from the configured claim, as
    the provider wrote it (its format is checked by the credit domain, not here); ``token_subject``
    is the provider's ``sub``; ``name`` is the optional ``name`` claim.
    """

    identifier: str
    name: str | None
    token_subject: str
    issuer: str


class OidcVerifier:
    """Verifies the identity provider's bearer tokens; safe to share between threads.

    The discovery document and the JWKS are fetched on first use, each with ``http_timeout_s``.
    The JWKS is cached for 5 minutes; a token naming an unknown ``kid`` makes the verifier fetch
    it again at once (at most once per 30 s, so tokens with made-up ``kid`` values cannot turn
    the API into a load generator against the provider). After a failed fetch the provider is
    left alone for 5 s (requests fail fast with ``idp-unavailable``) and the last good JWKS keeps
    being used for up to an hour. ``clock`` returns the current Unix time for the ``exp``,
    ``nbf`` and ``iat`` checks (tests inject it); caching uses the monotonic clock.
    """

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._jwks_client: PyJWKClient | None = None
        self._last_good: tuple[PyJWKSet, float] | None = None  # (keys, monotonic time fetched)
        self._last_unknown_kid_refetch: float | None = None
        self._retry_at = 0.0  # monotonic time before which the provider is not asked again
        self._last_error = ""

    def verify(self, token: str) -> SignedInSubject:
        """The subject of ``token`` if it is valid now; raises :class:`Unauthorized` otherwise."""
        config = self.config
        alg, kid = _read_header(token, config.algorithms)
        key = self._signing_key(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=config.audience,
                issuer=config.issuer,
                options={
                    # Times are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidAudienceError as e:
            raise Unauthorized(
                f"the token is not meant for {config.audience!r}", reason="token-audience"
            ) from e
        except jwt.InvalidIssuerError as e:
            raise Unauthorized(f"the token was not issued by {config.issuer}", reason="token-issuer") from e
        except jwt.MissingRequiredClaimError as e:
            if e.claim == "aud":
                raise Unauthorized("the token names no audience", reason="token-audience") from e
            if e.claim == "iss":
                raise Unauthorized("the token names no issuer", reason="token-issuer") from e
            raise Unauthorized(f"the token lacks the {e.claim!r} claim", reason="token-claims") from e
        except (InvalidSubjectError, InvalidJTIError) as e:
            raise Unauthorized(f"the token's claims are malformed: {e}", reason="token-claims") from e
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            # Bad signature, malformed token, algorithm mismatch with the key, weak key.
            raise Unauthorized(f"the token does not verify: {e}", reason="token-invalid") from e
        self._check_times(claims)
        return self._subject(claims)

    # -- keys -------------------------------------------------------------------------------

    def _signing_key(self, kid: str, alg: str) -> PyJWK:
        """The provider's key ``kid``, refetching the JWKS once if it is unknown (key rotation)."""
        with self._lock:
            key = _find_key(self._key_set(refresh=False), kid)
            if key is None:
                now = time.monotonic()
                last = self._last_unknown_kid_refetch
                if last is None or now - last >= _UNKNOWN_KID_REFETCH_S:
                    self._last_unknown_kid_refetch = now
                    _logger.info("unknown token key id; fetching the JWKS again", extra={"kid": kid})
                    key = _find_key(self._key_set(refresh=True), kid)
        if key is None:
            raise Unauthorized(
                f"the token's key {kid!r} is not published by the provider", reason="token-invalid"
            )
        if key.algorithm_name != alg:
            raise Unauthorized(
                f"the token's algorithm {alg} does not match its key's ({key.algorithm_name})",
                reason="token-invalid",
            )
        return key

    def _key_set(self, *, refresh: bool) -> PyJWKSet:
        """The provider's JWKS (cached by PyJWKClient); the caller holds ``self._lock``.

        After a failed fetch the provider is not asked again for ``_FAILURE_BACKOFF_S``, so an
        outage costs one timeout, not one per request; meanwhile the last good JWKS is used
        (except for a forced refresh) if it is younger than ``_STALE_IF_ERROR_S``.
        """
        now = time.monotonic()
        error: IdentityProviderUnavailable | None = None
        if now >= self._retry_at:
            try:
                keys = self._fetch_key_set(refresh=refresh)
            except IdentityProviderUnavailable as e:
                error = e
                self._retry_at = now + _FAILURE_BACKOFF_S
                self._last_error = e.message
                _logger.warning("identity provider unreachable", extra={"error": e.message})
            else:
                if self._last_good is None or self._last_good[0] is not keys:
                    self._last_good = (keys, now)
                return keys
        last = self._last_good
        if not refresh and last is not None and now - last[1] <= _STALE_IF_ERROR_S:
            if error is not None:  # once per failed fetch, not once per request
                _logger.warning("using the last good JWKS", extra={"age_s": now - last[1]})
            return last[0]
        if error is not None:
            raise error
        raise IdentityProviderUnavailable(f"{self._last_error} (not retried for {_FAILURE_BACKOFF_S:g} s)")

    def _fetch_key_set(self, *, refresh: bool) -> PyJWKSet:
        """The JWKS from PyJWKClient's cache or the network; failures become ``idp-unavailable``."""
        client = self._client()
        try:
            return client.get_jwk_set(refresh=refresh)
        except (jwt.PyJWTError, OSError, ValueError) as e:  # urllib, JSON and JWKS-content errors
            raise IdentityProviderUnavailable(
                f"the identity provider's keys could not be fetched from {client.uri}: {e}"
            ) from e

    def _client(self) -> PyJWKClient:
        """The JWKS client, created once the JWKS location is known; the caller holds the lock."""
        if self._jwks_client is None:
            uri = self.config.jwks_uri or self._discover_jwks_uri()
            try:
                self._jwks_client = PyJWKClient(
                    uri,
                    cache_keys=False,
                    cache_jwk_set=True,
                    lifespan=_JWKS_LIFESPAN_S,
                    timeout=self.config.http_timeout_s,
                    cooldown_duration=0,  # unknown kids are rate-limited by _signing_key
                )
            except jwt.PyJWTError as e:
                raise IdentityProviderUnavailable(f"unusable JWKS location {uri!r}: {e}") from e
        return self._jwks_client

    def _discover_jwks_uri(self) -> str:
        """``jwks_uri`` from the discovery document (OpenID Connect Discovery 1.0 §4, §4.3)."""
        url = self.config.discovery_url
        try:
            opener = urllib.request.build_opener(_NoRedirect())
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            with opener.open(request, timeout=self.config.http_timeout_s) as response:
                body = response.read(_MAX_DISCOVERY_BYTES + 1)
            if len(body) > _MAX_DISCOVERY_BYTES:
                raise ValueError(f"document larger than {_MAX_DISCOVERY_BYTES} bytes")
            document = json.loads(body)
        except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts, resets, bad JSON
            raise IdentityProviderUnavailable(
                f"the identity provider's discovery document could not be read from {url}: {e}"
            ) from e
        if not isinstance(document, dict):
            raise IdentityProviderUnavailable(f"{url} is not a JSON object")
        if document.get("issuer") != self.config.issuer:
            raise IdentityProviderUnavailable(
                f"{url} names issuer {document.get('issuer')!r}, expected {self.config.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _is_http_url(jwks_uri):
            raise IdentityProviderUnavailable(f"{url} has no usable jwks_uri")
        _logger.info("OIDC provider discovered", extra={"issuer": self.config.issuer, "jwks_uri": jwks_uri})
        return jwks_uri

    # -- claims -----------------------------------------------------------------------------

    def _check_times(self, claims: dict[str, Any]) -> None:
        """``exp`` (required), ``nbf`` and ``iat`` against the injected clock (RFC 7519 §4.1.4-6)."""
        now = self._clock()
        leeway = self.config.leeway_s
        exp = _numeric_date(claims, "exp", required=True)
        nbf = _numeric_date(claims, "nbf", required=False)
        iat = _numeric_date(claims, "iat", required=False)
        if exp is not None and exp <= now - leeway:
            raise Unauthorized("the token has expired", reason="token-expired")
        if nbf is not None and nbf > now + leeway:
            raise Unauthorized("the token is not valid yet (nbf)", reason="token-not-yet-valid")
        if iat is not None and iat > now + leeway:
            raise Unauthorized("the token was issued in the future (iat)", reason="token-not-yet-valid")

    def _subject(self, claims: dict[str, Any]) -> SignedInSubject:
        """The signed-in subject from verified claims."""
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("the token lacks the 'sub' claim", reason="token-claims")
        name_claim = self.config.identifier_claim
        identifier = claims.get(name_claim)
        if not isinstance(identifier, str) or not identifier.strip():
            raise Unauthorized(f"the token lacks the {name_claim!r} claim", reason="token-claims")
        name = claims.get("name")
        return SignedInSubject(
            identifier=identifier,
            name=name if isinstance(name, str) else None,
            token_subject=sub,
            issuer=self.config.issuer,
        )


def _read_header(token: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    """The token's ``alg`` and ``kid``, refusing anything not in ``allowed`` before any fetch."""
    if not isinstance(token, str) or not token:
        raise Unauthorized("no bearer token", reason="token-invalid")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError) as e:
        raise Unauthorized(f"the token is malformed: {e}", reason="token-invalid") from e
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise Unauthorized(f"the token's algorithm {alg!r} is not accepted", reason="token-invalid")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("the token names no key ('kid')", reason="token-invalid")
    return alg, kid


def _find_key(keys: PyJWKSet, kid: str) -> PyJWK | None:
    """The signing key ``kid`` of an asymmetric algorithm this module supports, if published."""
    for key in keys.keys:
        if (
            key.key_id == kid
            and key.public_key_use in ("sig", None)
            and key.algorithm_name in SUPPORTED_ALGORITHMS
        ):
            return key
    return None


def _numeric_date(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    """A NumericDate claim (RFC 7519 §2) as a float; booleans and non-finite values are refused."""
    value = claims.get(name)
    if value is None:
        if required:
            raise Unauthorized(f"the token lacks the {name!r} claim", reason="token-claims")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthorized(f"the token's {name!r} claim is not a NumericDate", reason="token-claims")
    return float(value)


def _is_http_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Do not follow redirects: the discovery document must be served at its own URL."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None
