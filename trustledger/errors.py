"""The root of every error trustledger reports.

Each package has one subclass tree under :class:`TrustledgerError` (``ledger.errors``,
``credit.errors``, ``contracts.errors``, ``api.errors``); the API maps classes to HTTP statuses in
one place (``api.problems``) and the CLI to exit codes. Library exceptions are converted at the
boundary with ``raise ... from e``. ``reason`` is a stable machine-readable code.
"""

from __future__ import annotations


class TrustledgerError(Exception):
    """Root of all trustledger errors."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else self.reason

    def diagnostics(self) -> str:
        """A short explanation for operators and CLI users."""
        return f"{type(self).__name__} [{self.reason}]: {self.message}"
