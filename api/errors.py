"""The API's error tree: failures only the HTTP front end has (who is calling, and whether the
identity provider that vouches for citizens answers).

Every class is a :class:`~trustledger.errors.TrustledgerError`; :mod:`api.problems` maps it to an
HTTP status in the same table as the ledger's, the credit engine's and the contracts' errors.
``reason`` is a stable machine-readable code.
"""

from __future__ import annotations

from trustledger.errors import TrustledgerError


class ApiError(TrustledgerError):
    """Root of the API's own errors."""

    reason: str = "api-error"


class Unauthorized(ApiError):
    """No credentials, or unknown or invalid ones: an API key or an ID token (HTTP 401)."""

    reason = "unauthorized"


class Forbidden(ApiError):
    """A known caller without the role the operation needs (HTTP 403)."""

    reason = "forbidden"


class IdentityProviderUnavailable(ApiError):
    """The identity provider's discovery document or keys cannot be had (HTTP 503): citizens'
    tokens cannot be checked right now, which is not the caller's fault."""

    reason = "idp-unavailable"
