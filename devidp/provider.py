"""A small local OpenID Connect provider — FOR DEVELOPMENT AND TESTS ONLY, never production.

It stands in for the district's identity provider in the test suite and on the devnet: it signs
JWTs with an RS256 or ES256 key, publishes the discovery document (OpenID Connect Discovery 1.0
§3, a subset) and the JWKS (RFC 7517), and offers a *password-less* ``POST /token`` that hands a
signed token to anyone for any identifier. There is no login, consent or client authentication:
exposing it anywhere but a developer's machine or a test run lets anyone sign in as anyone.

Key ids are RFC 7638 JWK thumbprints. Keys can be rotated (:meth:`rotate_key`) with the old key
still published until :meth:`retire_old_keys`, which is what the verifier's rotation tests need.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import jwt
import uvicorn
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request, Response
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.problems import install_problem_handlers
from ledger.errors import ConfigurationError, InvalidRequest

_logger = logging.getLogger(__name__)

_ALGORITHMS = ("RS256", "ES256")
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_SUBJECT_NAMESPACE = uuid.UUID("5f0c2b8e-6a57-4d0e-9a3e-2f6f3c1d7b10")  # dev-IdP ``sub`` values

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _SigningKey:
    """One signing key of the provider."""

    kid: str
    alg: str
    private_key: _PrivateKey

    @classmethod
    def generate(cls, alg: str) -> _SigningKey:
        """A fresh RSA-2048 (RS256) or P-256 (ES256) key, its kid the RFC 7638 thumbprint."""
        key: _PrivateKey
        if alg == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ConfigurationError(f"the development IdP signs with {_ALGORITHMS}, not {alg!r}")
        return cls(_thumbprint(_public_jwk(key)), alg, key)

    @classmethod
    def from_json(cls, data: Any) -> _SigningKey:
        """A key from its key-file entry ``{"kid", "alg", "private_key_pem"}``."""
        if not isinstance(data, dict):
            raise ValueError("key entry is not an object")
        kid, alg, pem = data.get("kid"), data.get("alg"), data.get("private_key_pem")
        if not isinstance(kid, str) or alg not in _ALGORITHMS or not isinstance(pem, str):
            raise ValueError("key entry needs kid, alg (RS256 or ES256) and private_key_pem")
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        expected = rsa.RSAPrivateKey if alg == "RS256" else ec.EllipticCurvePrivateKey
        if not isinstance(key, expected):
            raise ValueError(f"key {kid} is not a {alg} key")
        return cls(kid, alg, key)

    def to_json(self) -> dict[str, str]:
        """The key-file entry (the private key in unencrypted PKCS#8 PEM)."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {"kid": self.kid, "alg": self.alg, "private_key_pem": pem.decode("ascii")}

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK as published in the JWKS."""
        return {**_public_jwk(self.private_key), "kid": self.kid, "alg": self.alg, "use": "sig"}


class LocalIdentityProvider:
    """A development OpenID provider: signing keys, tokens, JWKS and discovery document.

    ``issuer`` is a plain attribute so that :func:`serve_in_thread` can set it once the port is
    known. With ``key_path`` the keys are loaded from that JSON file, or generated and written to
    it (mode 0600) if it does not exist; rotations are saved there too. Thread-safe.
    """

    def __init__(
        self,
        issuer: str = "http://127.0.0.1",
        *,
        key_path: Path | str | None = None,
        algorithm: str = "RS256",
        identifier_claim: str = "id_number",
        default_audience: str = "trustledger-api",
        token_lifetime_s: int = 3600,
    ) -> None:
        self.issuer = issuer
        self.identifier_claim = identifier_claim
        self.default_audience = default_audience
        self.token_lifetime_s = token_lifetime_s
        self._algorithm = algorithm
        self._key_path = Path(key_path) if key_path is not None else None
        self._lock = threading.Lock()
        self._keys: list[_SigningKey]  # oldest first; the last one signs
        if self._key_path is not None and self._key_path.exists():
            self._keys = _load_keys(self._key_path)
            self._algorithm = self._keys[-1].alg
        else:
            self._keys = [_SigningKey.generate(algorithm)]
            if self._key_path is not None:
                _write_keys(self._key_path, self._keys, create=True)

    @property
    def kid(self) -> str:
        """The id of the key that signs new tokens."""
        with self._lock:
            return self._keys[-1].kid

    @property
    def algorithm(self) -> str:
        """The JWS algorithm of new tokens (RS256 or ES256)."""
        return self._algorithm

    def subject_for(self, identifier: str) -> str:
        """The stable ``sub`` this provider gives ``identifier`` (a name-based UUID, not secret)."""
        return str(uuid.uuid5(_SUBJECT_NAMESPACE, f"{self.issuer}#{identifier}"))

    def issue_token(
        self,
        identifier: str,
        *,
        name: str | None = None,
        audience: str,
        lifetime_s: int = 3600,
        now: float | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        """A signed JWT for ``identifier`` valid from ``now`` (default: the real time) for ``lifetime_s``.

        ``extra_claims`` are added last and override the standard ones; a ``None`` value removes
        that claim (tests use it to drop ``sub`` or the identifier claim).
        """
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject_for(identifier),
            "aud": audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime_s,
            "jti": uuid.uuid4().hex,
            self.identifier_claim: identifier,
        }
        if name is not None:
            claims["name"] = name
        for claim, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(claim, None)
            else:
                claims[claim] = value
        with self._lock:
            key = self._keys[-1]
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})

    def jwks(self) -> dict[str, Any]:
        """The published keys (RFC 7517 §5): the signing key and any not yet retired."""
        with self._lock:
            return {"keys": [key.public_jwk() for key in self._keys]}

    def discovery(self) -> dict[str, Any]:
        """The discovery document (OpenID Connect Discovery 1.0 §3; no authorization endpoint)."""
        base = self.issuer.rstrip("/")
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{base}/jwks.json",
            "token_endpoint": f"{base}/token",
            "id_token_signing_alg_values_supported": [self._algorithm],
            "response_types_supported": ["id_token", "token"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["none"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "name",
                self.identifier_claim,
            ],
        }

    def rotate_key(self) -> str:
        """Sign with a new key from now on; the old ones stay published. Returns the new kid."""
        new = _SigningKey.generate(self._algorithm)
        with self._lock:
            self._keys.append(new)
            self._save()
        _logger.info("development IdP key rotated", extra={"kid": new.kid})
        return new.kid

    def retire_old_keys(self) -> None:
        """Stop publishing every key but the current signing key."""
        with self._lock:
            self._keys = self._keys[-1:]
            self._save()

    def _save(self) -> None:
        if self._key_path is not None:
            _write_keys(self._key_path, self._keys, create=False)


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


def _public_jwk(key: _PrivateKey) -> dict[str, Any]:
    """The public half of ``key`` as a JWK (kty and key parameters only)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))


def _thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 §3 JWK thumbprint (SHA-256, base64url) of a public RSA or EC JWK.

    RFC 7638 §3.3 fixes the encoding: the required members only, in lexicographic order, no
    whitespace; the members are ASCII strings, so sorted compact ``json.dumps`` produces it.
    """
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({name: jwk[name] for name in required}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _load_keys(path: Path) -> list[_SigningKey]:
    """The keys in a key file ``{"keys": [...]}``, oldest first."""
    try:
        if path.stat().st_mode & 0o077:
            _logger.warning("development IdP key file is readable by others", extra={"path": str(path)})
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["keys"] if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError("no keys")
        return [_SigningKey.from_json(entry) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigurationError(f"unusable development IdP key file {path}: {e}") from e


def _write_keys(path: Path, keys: list[_SigningKey], *, create: bool) -> None:
    """Write the key file with mode 0600 (``create``: it must not exist yet; else atomically replace)."""
    text = json.dumps({"keys": [key.to_json() for key in keys]}, indent=2) + "\n"
    target = path if create else path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        if not create:
            os.replace(target, path)
    except OSError as e:
        if not create:
            target.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write development IdP key file {path}: {e}") from e
