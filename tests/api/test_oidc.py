"""OIDC bearer-token verification against the local development provider served over HTTP.

Covers the happy path (RS256 and ES256, discovery and a configured JWKS URI), the time checks
against an injected clock, audience and issuer, and the attacks: a forged signature under the
provider's kid, ``alg: none``, HS256 keyed with the public key, unknown kids as a load generator;
plus key rotation, an unreachable provider and the provider's own token endpoint and key file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import api.oidc
from api.errors import IdentityProviderUnavailable, Unauthorized
from api.oidc import OidcConfig, OidcVerifier, SignedInSubject
from devidp import LocalIdentityProvider, RunningIdp, serve_in_thread
from ledger.errors import ConfigurationError

AUDIENCE = "trustledger-api"
PERSON = "110101199003074477"  # an 18-digit resident ID shape
ENTERPRISE = "91110000600037341L"  # a unified social credit code shape
T0 = 2_000_000_000.0  # 2033-05-18: far from the real time, so only the injected clock can pass it


class Idp:
    """A running development provider and its base URL."""

    def __init__(self, provider: LocalIdentityProvider, url: str) -> None:
        self.provider = provider
        self.url = url

    def verifier(self, *, at: float = T0, **config: Any) -> OidcVerifier:
        """A fresh verifier for this provider whose clock says ``at``."""
        fields: dict[str, Any] = {"issuer": self.url, "audience": AUDIENCE, **config}
        return OidcVerifier(OidcConfig(**fields), clock=lambda: at)

    def token(self, identifier: str = PERSON, *, now: float = T0, **kwargs: Any) -> str:
        """A token from the provider, issued at ``now`` for the API's audience by default."""
        kwargs.setdefault("audience", AUDIENCE)
        return self.provider.issue_token(identifier, now=now, **kwargs)


@pytest.fixture(scope="module", params=["RS256", "ES256"])
def idp(request: pytest.FixtureRequest) -> Iterator[Idp]:
    """One provider per signing algorithm, served for the whole module."""
    provider = LocalIdentityProvider(algorithm=request.param)
    with serve_in_thread(provider) as url:
        yield Idp(provider, url)


@pytest.fixture
def own_idp() -> Iterator[Idp]:
    """A provider of its own, for tests that rotate keys or stop the server."""
    provider = LocalIdentityProvider()
    with serve_in_thread(provider) as url:
        yield Idp(provider, url)


def _reason(verifier: OidcVerifier, token: str) -> str:
    """Why ``token`` is refused: a bad token is Unauthorized (401), a provider whose keys cannot
    be had is IdentityProviderUnavailable (503), nothing else."""
    with pytest.raises((Unauthorized, IdentityProviderUnavailable)) as caught:
        verifier.verify(token)
    expected = IdentityProviderUnavailable if caught.value.reason == "idp-unavailable" else Unauthorized
    assert type(caught.value) is expected
    return caught.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A compact JWS built by hand (PyJWT refuses to produce the attack tokens)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode("ascii")) if sign is not None else b""
    return f"{signing_input}.{_b64(signature)}"


def _claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# -- the happy path --------------------------------------------------------------------------------


def test_valid_token_yields_the_identifier(idp: Idp) -> None:
    verifier = idp.verifier()
    subject = verifier.verify(idp.token(PERSON, name="张三"))
    assert subject == SignedInSubject(
        identifier=PERSON, name="张三", token_subject=idp.provider.subject_for(PERSON), issuer=idp.url
    )
    enterprise = verifier.verify(idp.token(ENTERPRISE))
    assert (enterprise.identifier, enterprise.name) == (ENTERPRISE, None)


def test_configured_jwks_uri_skips_discovery(idp: Idp) -> None:
    verifier = idp.verifier(jwks_uri=f"{idp.url}/jwks.json")
    assert verifier.verify(idp.token()).identifier == PERSON


def test_custom_identifier_claim(idp: Idp) -> None:
    token = idp.token(extra_claims={"uscc": ENTERPRISE})
    assert idp.verifier(identifier_claim="uscc").verify(token).identifier == ENTERPRISE


def test_audience_may_be_one_of_several(idp: Idp) -> None:
    token = idp.token(audience="unused", extra_claims={"aud": ["portal", AUDIENCE]})
    assert idp.verifier().verify(token).identifier == PERSON


# -- time, against the injected clock --------------------------------------------------------------


def test_time_travel_uses_the_injected_clock(idp: Idp) -> None:
    token = idp.token(now=T0, lifetime_s=600)
    assert idp.verifier(at=T0 + 599).verify(token).identifier == PERSON
    assert _reason(OidcVerifier(idp.verifier().config), token) == "token-not-yet-valid"  # real clock


def test_expired_token(idp: Idp) -> None:
    token = idp.token(now=T0, lifetime_s=600)
    assert idp.verifier(at=T0 + 600 + 29).verify(token).identifier == PERSON  # within the leeway
    assert _reason(idp.verifier(at=T0 + 600 + 30), token) == "token-expired"
    assert _reason(idp.verifier(at=T0 + 600 + 5, leeway_s=0), token) == "token-expired"


def test_token_not_yet_valid(idp: Idp) -> None:
    assert idp.verifier(at=T0 - 29).verify(idp.token(now=T0)).identifier == PERSON  # within the leeway
    assert _reason(idp.verifier(at=T0 - 31), idp.token(now=T0)) == "token-not-yet-valid"
    issued_in_future = idp.token(now=T0, extra_claims={"nbf": None, "iat": T0 + 120})
    assert _reason(idp.verifier(at=T0), issued_in_future) == "token-not-yet-valid"


@pytest.mark.parametrize(
    "extra",
    [{"exp": None}, {"exp": "tomorrow"}, {"exp": True}, {"nbf": "now"}, {"iat": [1]}],
    ids=["no-exp", "text-exp", "bool-exp", "text-nbf", "list-iat"],
)
def test_malformed_times(idp: Idp, extra: dict[str, Any]) -> None:
    assert _reason(idp.verifier(), idp.token(extra_claims=extra)) == "token-claims"


# -- audience, issuer, claims ----------------------------------------------------------------------


def test_wrong_audience(idp: Idp) -> None:
    verifier = idp.verifier()
    assert _reason(verifier, idp.token(audience="another-service")) == "token-audience"
    assert _reason(verifier, idp.token(extra_claims={"aud": None})) == "token-audience"


def test_wrong_issuer(idp: Idp) -> None:
    verifier = idp.verifier()
    assert _reason(verifier, idp.token(extra_claims={"iss": "https://idp.evil.example"})) == "token-issuer"
    assert _reason(verifier, idp.token(extra_claims={"iss": idp.url + "/"})) == "token-issuer"
    assert _reason(verifier, idp.token(extra_claims={"iss": None})) == "token-issuer"


def test_discovery_must_name_the_configured_issuer(idp: Idp) -> None:
    # The provider at this URL calls itself something else (OpenID Connect Discovery §4.3).
    verifier = OidcVerifier(OidcConfig(issuer=idp.url + "/", audience=AUDIENCE), clock=lambda: T0)
    assert _reason(verifier, idp.token()) == "idp-unavailable"


@pytest.mark.parametrize(
    "extra",
    [{"id_number": None}, {"id_number": ""}, {"id_number": 110101199003074477}, {"sub": None}, {"sub": 7}],
    ids=["no-identifier", "empty-identifier", "numeric-identifier", "no-sub", "numeric-sub"],
)
def test_missing_or_malformed_subject_claims(idp: Idp, extra: dict[str, Any]) -> None:
    assert _reason(idp.verifier(), idp.token(extra_claims=extra)) == "token-claims"


# -- attacks ---------------------------------------------------------------------------------------


def test_signature_by_another_key_under_the_providers_kid(idp: Idp) -> None:
    claims = _claims_of(idp.token())
    forger: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if idp.provider.algorithm == "RS256":
        forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        forger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, forger, algorithm=idp.provider.algorithm, headers={"kid": idp.provider.kid})
    assert _reason(idp.verifier(), forged) == "token-invalid"


def test_tampered_claims(idp: Idp) -> None:
    header, payload, signature = idp.token(PERSON).split(".")
    claims = _claims_of(idp.token(PERSON))
    claims["id_number"] = ENTERPRISE
    tampered = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert _reason(idp.verifier(), tampered) == "token-invalid"


def test_alg_none_is_refused(idp: Idp) -> None:
    claims = _claims_of(idp.token())
    for alg in ("none", "None", "NONE"):
        token = _compact({"alg": alg, "typ": "JWT", "kid": idp.provider.kid}, claims)
        assert _reason(idp.verifier(), token) == "token-invalid"


def test_hs256_keyed_with_the_public_key_is_refused(idp: Idp) -> None:
    """The classic confusion: HMAC the token with the public key text an RSA/EC verifier holds."""
    claims = _claims_of(idp.token())
    jwk = next(key for key in idp.provider.jwks()["keys"] if key["kid"] == idp.provider.kid)
    public = jwt.PyJWK(jwk).key
    variants = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
    ]
    for secret in variants:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            token = _compact(
                {"alg": alg, "typ": "JWT", "kid": idp.provider.kid},
                claims,
                lambda data, s=secret, d=digest: hmac.new(s, data, d).digest(),
            )
            assert _reason(idp.verifier(), token) == "token-invalid"


def test_header_alg_must_match_the_keys_alg(idp: Idp) -> None:
    other = "ES256" if idp.provider.algorithm == "RS256" else "RS256"
    forger: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if other == "ES256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    token = jwt.encode(_claims_of(idp.token()), forger, algorithm=other, headers={"kid": idp.provider.kid})
    assert _reason(idp.verifier(), token) == "token-invalid"


def test_hmac_and_none_cannot_be_configured() -> None:
    for algorithms in [("HS256",), ("RS256", "none"), ()]:
        with pytest.raises(ConfigurationError):
            OidcConfig(issuer="https://idp.example", audience=AUDIENCE, algorithms=algorithms)
    with pytest.raises(ConfigurationError):
        OidcConfig(issuer="file:///etc/passwd", audience=AUDIENCE)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.e30.", "é.é.é"])
def test_garbage_is_token_invalid(idp: Idp, token: str) -> None:
    assert _reason(idp.verifier(), token) == "token-invalid"


def test_token_without_kid(idp: Idp) -> None:
    claims = _claims_of(idp.token())
    header, _, signature = idp.token().split(".")
    no_kid = _b64(json.dumps({"alg": idp.provider.algorithm, "typ": "JWT"}).encode())
    assert _reason(idp.verifier(), f"{no_kid}.{_b64(json.dumps(claims).encode())}.{signature}") == (
        "token-invalid"
    )


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(
    idp: Idp, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = []
    original = idp.provider.jwks

    def counting() -> dict[str, Any]:
        served.append(1)
        return original()

    monkeypatch.setattr(idp.provider, "jwks", counting)
    verifier = idp.verifier()
    verifier.verify(idp.token())
    assert len(served) == 1
    claims = _claims_of(idp.token())
    for n in range(5):
        stranger = jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": f"made-up-{n}"})
        assert _reason(verifier, stranger) == "token-invalid"  # refused before any fetch: HS256
    assert len(served) == 1
    header = {"alg": idp.provider.algorithm, "typ": "JWT"}
    for n in range(5):
        stranger = _compact({**header, "kid": f"made-up-{n}"}, claims, lambda _data: b"\0" * 64)
        assert _reason(verifier, stranger) == "token-invalid"
    assert len(served) == 2  # one refetch for the first unknown kid, then rate-limited
    assert verifier.verify(idp.token()).identifier == PERSON
    assert len(served) == 2


# -- rotation and outages --------------------------------------------------------------------------


def test_key_rotation_without_restarting_the_verifier(own_idp: Idp) -> None:
    verifier = own_idp.verifier()
    old_token = own_idp.token()
    assert verifier.verify(old_token).identifier == PERSON
    old_kid = own_idp.provider.kid
    new_kid = own_idp.provider.rotate_key()
    assert new_kid != old_kid
    new_token = own_idp.token(ENTERPRISE)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verifier.verify(new_token).identifier == ENTERPRISE
    assert verifier.verify(old_token).identifier == PERSON  # still published
    own_idp.provider.retire_old_keys()
    assert [key["kid"] for key in own_idp.provider.jwks()["keys"]] == [new_kid]
    assert own_idp.verifier().verify(new_token).identifier == ENTERPRISE
    assert _reason(own_idp.verifier(), old_token) == "token-invalid"


def test_provider_down_is_idp_unavailable() -> None:
    provider = LocalIdentityProvider()
    with serve_in_thread(provider) as url:
        token = provider.issue_token(PERSON, audience=AUDIENCE, now=T0)
    verifier = OidcVerifier(OidcConfig(issuer=url, audience=AUDIENCE, http_timeout_s=2.0), clock=lambda: T0)
    with pytest.raises(IdentityProviderUnavailable) as caught:
        verifier.verify(token)
    assert caught.value.reason == "idp-unavailable"
    assert f"{url}/.well-known/openid-configuration" in caught.value.message
    started = time.monotonic()
    assert _reason(verifier, token) == "idp-unavailable"  # backs off instead of waiting again
    assert time.monotonic() - started < 0.5
    direct = OidcVerifier(OidcConfig(issuer=url, audience=AUDIENCE, jwks_uri=f"{url}/jwks.json"))
    with pytest.raises(IdentityProviderUnavailable) as caught:
        direct.verify(token)
    assert caught.value.reason == "idp-unavailable"
    assert f"{url}/jwks.json" in caught.value.message


def test_unusable_jwks(own_idp: Idp, monkeypatch: pytest.MonkeyPatch) -> None:
    kid = own_idp.provider.kid
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": kid}  # an HMAC key is never a verification key
    monkeypatch.setattr(own_idp.provider, "jwks", lambda: {"keys": [oct_key]})
    assert _reason(own_idp.verifier(), own_idp.token()) == "token-invalid"
    monkeypatch.setattr(own_idp.provider, "jwks", lambda: {"keys": []})
    assert _reason(own_idp.verifier(), own_idp.token()) == "idp-unavailable"
    monkeypatch.setattr(own_idp.provider, "jwks", lambda: ["not", "an", "object"])
    assert _reason(own_idp.verifier(), own_idp.token()) == "idp-unavailable"


def test_last_good_keys_are_used_while_the_provider_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = [0.0]
    fake_time = SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0], time=time.time)
    for module in (api.oidc, jwt.api_jwk, jwt.jwk_set_cache):
        monkeypatch.setattr(module, "time", fake_time)
    provider = LocalIdentityProvider()
    running = RunningIdp(provider)
    url = running.start()
    try:
        verifier = OidcVerifier(OidcConfig(issuer=url, audience=AUDIENCE), clock=lambda: T0)
        token = provider.issue_token(PERSON, audience=AUDIENCE, now=T0)
        assert verifier.verify(token).identifier == PERSON
    finally:
        running.stop()
    offset[0] = 301.0  # the cached JWKS has expired and the provider is gone
    assert verifier.verify(token).identifier == PERSON
    offset[0] = 3700.0  # too stale
    assert _reason(verifier, token) == "idp-unavailable"


# -- the development provider itself ---------------------------------------------------------------


def test_token_endpoint_form_and_json(idp: Idp) -> None:
    verifier = OidcVerifier(OidcConfig(issuer=idp.url, audience=AUDIENCE))
    discovery = httpx.get(f"{idp.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == idp.url
    assert discovery["id_token_signing_alg_values_supported"] == [idp.provider.algorithm]
    form = httpx.post(discovery["token_endpoint"], data={"identifier": PERSON, "name": "张三"})
    assert form.status_code == 200
    assert form.headers["cache-control"] == "no-store"
    body = form.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    for name in ("access_token", "id_token"):
        subject = verifier.verify(body[name])
        assert (subject.identifier, subject.name) == (PERSON, "张三")
    as_json = httpx.post(f"{idp.url}/token", json={"identifier": ENTERPRISE, "audience": "portal"})
    assert as_json.status_code == 200
    assert _reason(verifier, as_json.json()["access_token"]) == "token-audience"
    bad = httpx.post(f"{idp.url}/token", json={"name": "nobody"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


def test_key_file_is_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "idp-key.json"
    first = LocalIdentityProvider(key_path=path, algorithm="ES256")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = LocalIdentityProvider(key_path=path)
    assert (again.kid, again.algorithm) == (first.kid, "ES256")
    token = first.issue_token(PERSON, audience=AUDIENCE)
    assert jwt.decode(token, jwt.PyJWK(again.jwks()["keys"][0]), algorithms=["ES256"], audience=AUDIENCE)
    old_kid = first.kid
    new_kid = first.rotate_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [key["kid"] for key in LocalIdentityProvider(key_path=path).jwks()["keys"]] == [old_kid, new_kid]
    first.retire_old_keys()
    assert LocalIdentityProvider(key_path=path).kid == new_kid
    path.write_text("{}")
    with pytest.raises(ConfigurationError):
        LocalIdentityProvider(key_path=path)
