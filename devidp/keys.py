"""The development identity provider's signing keys and their key file — DEVELOPMENT AND TESTS ONLY.

Key ids are RFC 7638 JWK thumbprints. The key file is JSON ``{"keys": [{"kid", "alg",
"private_key_pem"}, ...]}``, oldest first, written with mode 0600; the private keys are in
unencrypted PKCS#8 PEM, which is acceptable only because these keys sign development tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from ledger.errors import ConfigurationError

_logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    """One signing key of the provider."""

    kid: str
    alg: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        """A fresh RSA-2048 (RS256) or P-256 (ES256) key, its kid the RFC 7638 thumbprint."""
        key: PrivateKey
        if alg == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ConfigurationError(f"the development IdP signs with {ALGORITHMS}, not {alg!r}")
        return cls(_thumbprint(_public_jwk(key)), alg, key)

    @classmethod
    def from_json(cls, data: Any) -> SigningKey:
        """A key from its key-file entry ``{"kid", "alg", "private_key_pem"}``."""
        if not isinstance(data, dict):
            raise ValueError("key entry is not an object")
        kid, alg, pem = data.get("kid"), data.get("alg"), data.get("private_key_pem")
        if not isinstance(kid, str) or alg not in ALGORITHMS or not isinstance(pem, str):
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


def _public_jwk(key: PrivateKey) -> dict[str, Any]:
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


def load_keys(path: Path) -> list[SigningKey]:
    """The keys in a key file ``{"keys": [...]}``, oldest first."""
    try:
        if path.stat().st_mode & 0o077:
            _logger.warning("development IdP key file is readable by others", extra={"path": str(path)})
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["keys"] if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError("no keys")
        return [SigningKey.from_json(entry) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigurationError(f"unusable development IdP key file {path}: {e}") from e


def write_keys(path: Path, keys: list[SigningKey], *, create: bool) -> None:
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
