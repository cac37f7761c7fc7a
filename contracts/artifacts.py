"""Read the committed contract artifacts (``contracts/build/<Name>.json``).

The artifacts are written by :mod:`contracts.compiler` and shipped as package data, so they are
read through :mod:`importlib.resources` (works from a wheel or a source checkout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from contracts.errors import ArtifactError

__all__ = ["ContractArtifact", "load_artifact"]


@dataclass(frozen=True)
class ContractArtifact:
    """A compiled contract: ABI, creation and runtime bytecode, and the compiler that made them."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    solc_version: str

    @classmethod
    def from_json(cls, text: str) -> ContractArtifact:
        """Parse an artifact document; :class:`~contracts.errors.ArtifactError` if malformed."""
        try:
            doc = json.loads(text)
            name = doc["contractName"]
            abi = doc["abi"]
            version = doc["compiler"]["version"]
            bytecode = bytes.fromhex(doc["bytecode"].removeprefix("0x"))
            deployed = bytes.fromhex(doc["deployedBytecode"].removeprefix("0x"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ArtifactError(f"malformed contract artifact: {e}") from e
        if not isinstance(name, str) or not isinstance(version, str) or not isinstance(abi, list):
            raise ArtifactError("malformed contract artifact: wrong field types")
        if not all(isinstance(entry, dict) for entry in abi) or not bytecode or not deployed:
            raise ArtifactError(f"malformed contract artifact {name}: empty bytecode or bad ABI")
        return cls(name=name, abi=abi, bytecode=bytecode, deployed_bytecode=deployed, solc_version=version)


def load_artifact(name: str) -> ContractArtifact:
    """The committed artifact of contract ``name`` (``"AnchorRegistry"``, ``"Sm3Precompile"``).

    Raises :class:`~contracts.errors.ArtifactError` if there is no such artifact or it is malformed.
    """
    if not name.isidentifier():
        raise ArtifactError(f"invalid contract name {name!r}")
    resource = resources.files("contracts").joinpath("build", f"{name}.json")
    try:
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError) as e:
        raise ArtifactError(f"no artifact for contract {name!r}: run `python -m contracts.compiler`") from e
    artifact = ContractArtifact.from_json(text)
    if artifact.name != name:
        raise ArtifactError(f"artifact {name}.json describes contract {artifact.name!r}")
    return artifact
