"""The error hierarchy of the contracts package (compiler pipeline and artifacts).

Every failure is a :class:`ContractsError`. Library exceptions (py-solc-x, OS errors, JSON) are
converted into these at the boundary with ``raise ... from e``.
"""

from __future__ import annotations

from trustledger.errors import TrustledgerError


class ContractsError(TrustledgerError):
    """Root of the contracts package's errors. ``reason`` is a stable machine-readable code."""

    reason: str = "contracts-error"


class CompilerError(ContractsError):
    """Compiling the Solidity sources failed."""

    reason = "compiler-error"


class CompilerNotFound(CompilerError):
    """Neither a native solc 0.8.28 on PATH nor the solcjs wrapper (Node + contracts/node_modules)."""

    reason = "compiler-not-found"


class CompilationFailed(CompilerError):
    """The compiler ran and reported errors, or its output lacks an expected contract."""

    reason = "compilation-failed"


class ArtifactError(ContractsError):
    """A committed build artifact is missing or malformed."""

    reason = "artifact-error"
