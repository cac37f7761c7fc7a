"""Compile the Solidity sources of ``contracts/src`` into the committed artifacts of ``contracts/build``.

Usage (from the repository root)::

    python -m contracts.compiler           # (re)write contracts/build/<Name>.json
    python -m contracts.compiler --check   # exit 1 if a fresh compile differs from the committed files

The compiler is solc 0.8.28, pinned: a native ``solc`` on ``PATH`` is used only if it reports
exactly that version; otherwise ``contracts/solc-wrapper``, a native-solc look-alike over the npm
package ``solc`` 0.8.28 (solcjs) in ``contracts/node_modules`` (``npm ci --prefix contracts``).
Both produce the same bytecode, whose CBOR metadata names the compiler version without the
platform. Settings: EVM version ``paris`` (no PUSH0, for older consortium chains), optimizer on
with 200 runs. Every source is passed inline in the standard JSON input (nothing is read by the
compiler from disk), under its path relative to ``contracts/`` (``src/AnchorRegistry.sol``).

An artifact holds the ABI, the creation and runtime bytecode, the compiler version and settings,
written as deterministic JSON (sorted keys, indent 2, trailing newline) so that a fresh compile
reproduces the committed file byte for byte.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from contracts.errors import CompilationFailed, CompilerNotFound

__all__ = [
    "ARTIFACT_SOURCES",
    "BUILD_DIR",
    "COMPILER_SETTINGS",
    "SOLC_VERSION",
    "SOURCE_DIR",
    "WRAPPER",
    "check_artifacts",
    "compile_artifacts",
    "find_solc",
    "main",
    "read_sources",
    "render_artifact",
    "write_artifacts",
]

_logger = logging.getLogger(__name__)

CONTRACTS_DIR: Final = Path(__file__).resolve().parent
SOURCE_DIR: Final = CONTRACTS_DIR / "src"
BUILD_DIR: Final = CONTRACTS_DIR / "build"
WRAPPER: Final = CONTRACTS_DIR / "solc-wrapper"
SOLCJS_PACKAGE: Final = CONTRACTS_DIR / "node_modules" / "solc" / "package.json"

SOLC_VERSION: Final = "0.8.28"
"""The pinned compiler version (``pragma solidity 0.8.28`` in every source)."""

ARTIFACT_SOURCES: Final[Mapping[str, str]] = {
    "AnchorRegistry": "src/AnchorRegistry.sol",
    "EvidenceStore": "src/baseline/EvidenceStore.sol",
    "Sm3Precompile": "src/testing/Sm3Precompile.sol",
}
"""The deployable contracts that get an artifact, with their source unit names.

The libraries (``SM3``, ``RFC9162``) have internal functions only and are compiled into these."""

COMPILER_SETTINGS: Final[Mapping[str, Any]] = {
    "evmVersion": "paris",
    "optimizer": {"enabled": True, "runs": 200},
}
"""Standard-JSON ``settings`` (without the output selection), recorded in every artifact."""

_OUTPUTS: Final = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]
_VERSION_RE: Final = re.compile(r"Version:\s*(\d+\.\d+\.\d+)")
_VERSION_TIMEOUT_S: Final = 15.0


def _solc_version(binary: str | Path) -> str | None:
    """The ``x.y.z`` version a solc binary reports, or None if it does not answer."""
    try:
        out = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=_VERSION_TIMEOUT_S,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return match.group(1) if match else None


def find_solc() -> Path:
    """The compiler to use: a native ``solc`` 0.8.28 on PATH, else the solcjs wrapper.

    Raises :class:`~contracts.errors.CompilerNotFound` when neither is usable.
    """
    native = shutil.which("solc")
    if native is not None:
        version = _solc_version(native)
        if version == SOLC_VERSION:
            return Path(native)
        _logger.info("ignoring solc on PATH", extra={"solc": native, "version": version})
    if shutil.which("node") is None:
        raise CompilerNotFound(f"no native solc {SOLC_VERSION} on PATH and no `node` for the solcjs wrapper")
    if not SOLCJS_PACKAGE.is_file():
        raise CompilerNotFound(
            f"no native solc {SOLC_VERSION} on PATH and solcjs is not installed:"
            f" run `npm ci --prefix {CONTRACTS_DIR}`"
        )
    installed = json.loads(SOLCJS_PACKAGE.read_text(encoding="utf-8")).get("version")
    if installed != SOLC_VERSION:
        raise CompilerNotFound(f"contracts/node_modules holds solcjs {installed}, expected {SOLC_VERSION}")
    return WRAPPER


def read_sources(source_dir: Path = SOURCE_DIR) -> dict[str, str]:
    """Every ``.sol`` file under ``source_dir``, keyed by its path relative to ``contracts/``."""
    root = source_dir.parent
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(source_dir.rglob("*.sol"))
    }


def _standard_input(sources: Mapping[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": content} for name, content in sorted(sources.items())},
        "settings": {
            **COMPILER_SETTINGS,
            "outputSelection": {"*": {"*": _OUTPUTS}},
        },
    }


def compile_artifacts(
    solc: Path | None = None,
    sources: Mapping[str, str] | None = None,
    contracts: Mapping[str, str] = ARTIFACT_SOURCES,
) -> dict[str, dict[str, Any]]:
    """Compile the sources and return the artifact documents, keyed by contract name.

    ``solc`` defaults to :func:`find_solc`; ``sources`` (source unit name → Solidity text) to
    :func:`read_sources`; ``contracts`` (contract name → source unit name) names the artifacts
    to return. Raises :class:`~contracts.errors.CompilationFailed` on compiler errors.
    """
    import solcx  # deferred: only compiling needs py-solc-x
    from solcx.exceptions import SolcError

    binary = solc if solc is not None else find_solc()
    unit_sources = dict(sources) if sources is not None else read_sources()
    try:
        output = solcx.compile_standard(_standard_input(unit_sources), solc_binary=binary)
    except SolcError as e:
        raise CompilationFailed(f"solc reported errors:\n{e.message}") from e
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
        raise CompilationFailed(f"running {binary} failed: {e}") from e
    for problem in output.get("errors", []):
        _logger.warning("solc: %s", problem.get("formattedMessage", problem))
    artifacts: dict[str, dict[str, Any]] = {}
    for name, unit in contracts.items():
        try:
            compiled = output["contracts"][unit][name]
            metadata = json.loads(compiled["metadata"])
            artifacts[name] = {
                "contractName": name,
                "sourceName": unit,
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "compiler": {"version": metadata["compiler"]["version"], "settings": dict(COMPILER_SETTINGS)},
            }
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise CompilationFailed(f"compiler output lacks contract {name} of {unit}") from e
    return artifacts


def render_artifact(artifact: Mapping[str, Any]) -> str:
    """The deterministic JSON text of an artifact: sorted keys, indent 2, trailing newline."""
    return json.dumps(artifact, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def write_artifacts(build_dir: Path = BUILD_DIR, solc: Path | None = None) -> list[Path]:
    """Compile and write ``<build_dir>/<Name>.json`` for every artifact; return the paths."""
    build_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in compile_artifacts(solc).items():
        path = build_dir / f"{name}.json"
        path.write_text(render_artifact(artifact), encoding="utf-8")
        written.append(path)
    return written


def check_artifacts(
    build_dir: Path = BUILD_DIR,
    solc: Path | None = None,
    fresh: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Names of the artifacts whose committed file differs from a fresh compile (or is missing).

    ``fresh`` is the output of :func:`compile_artifacts` if the caller already has it.
    """
    stale = []
    for name, artifact in (fresh if fresh is not None else compile_artifacts(solc)).items():
        path = build_dir / f"{name}.json"
        committed = path.read_text(encoding="utf-8") if path.is_file() else None
        if committed != render_artifact(artifact):
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code (0 ok, 1 stale artifacts, 2 error)."""
    parser = argparse.ArgumentParser(
        prog="python -m contracts.compiler",
        description="Compile contracts/src into the committed artifacts of contracts/build.",
    )
    parser.add_argument(
        "--check", action="store_true", help="fail if a fresh compile differs from the committed artifacts"
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = check_artifacts(BUILD_DIR)
            if stale:
                names = ", ".join(stale)
                sys.stderr.write(
                    f"stale artifacts in {BUILD_DIR}: {names}; run `python -m contracts.compiler`\n"
                )
                return 1
            sys.stdout.write(f"artifacts in {BUILD_DIR} are up to date\n")
            return 0
        for path in write_artifacts(BUILD_DIR):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    except (CompilerNotFound, CompilationFailed) as e:
        sys.stderr.write(e.diagnostics() + "\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
