"""A small local OpenID Connect provider — FOR DEVELOPMENT AND TESTS ONLY, never production.

It stands in for the district's identity provider in the test suite and on the devnet: it signs
JWTs with an RS256 or ES256 key (:mod:`devidp.keys`) and describes itself with the discovery
document (OpenID Connect Discovery 1.0 §3, a subset) and the JWKS (RFC 7517). Its HTTP face, with
the *password-less* ``POST /token``, is :mod:`devidp.http`.

Keys can be rotated (:meth:`LocalIdentityProvider.rotate_key`) with the old key still published
until :meth:`LocalIdentityProvider.retire_old_keys`, which is what the verifier's rotation tests
need.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

from devidp.keys import SigningKey, load_keys, write_keys

_logger = logging.getLogger(__name__)

_SUBJECT_NAMESPACE = uuid.UUID("5f0c2b8e-6a57-4d0e-9a3e-2f6f3c1d7b10")  # dev-IdP ``sub`` values


class LocalIdentityProvider:
    """A development OpenID provider: signing keys, tokens, JWKS and discovery document.

    ``issuer`` is a plain attribute so that :func:`~devidp.http.serve_in_thread` can set it once the port is
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
        self._keys: list[SigningKey]  # oldest first; the last one signs
        if self._key_path is not None and self._key_path.exists():
            self._keys = load_keys(self._key_path)
            self._algorithm = self._keys[-1].alg
        else:
            self._keys = [SigningKey.generate(algorithm)]
            if self._key_path is not None:
                write_keys(self._key_path, self._keys, create=True)

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
        new = SigningKey.generate(self._algorithm)
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
            write_keys(self._key_path, self._keys, create=False)
