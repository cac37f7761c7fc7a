"""The on-chain half of trustledger: the Solidity anchor registry and its committed build artifacts.

``contracts/src`` holds the Solidity sources (``AnchorRegistry``, the ``SM3`` and ``RFC9162``
libraries, and a stand-in for FISCO BCOS's SM3 precompile under ``testing/``);
``contracts/build`` holds their compiled artifacts, committed and shipped in the wheel, so that
running a node needs no compiler. :func:`load_artifact` reads one; :mod:`contracts.compiler`
regenerates them (``python -m contracts.compiler``, ``--check`` in CI).

Importing this package has no side effects: no compiler, web3 or file access until called.
"""

from __future__ import annotations

from contracts.artifacts import ContractArtifact, load_artifact

__all__ = ["ContractArtifact", "load_artifact"]
