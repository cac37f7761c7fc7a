"""The compile pipeline: a fresh compile reproduces the committed artifacts byte for byte.

Also: the artifacts' settings (solc 0.8.28, EVM paris: no PUSH0), the solcjs wrapper's version
answer, the choice between a native solc and the wrapper, and the error classes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from solcx.wrapper import get_solc_version

from contracts import ContractArtifact, compiler, load_artifact
from contracts.errors import ArtifactError, CompilationFailed, CompilerNotFound, ContractsError

PUSH0 = 0x5F


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict[str, Any]]:
    """One fresh compile of contracts/src for the module."""
    return compiler.compile_artifacts()


def test_fresh_compile_reproduces_committed_artifacts(fresh: dict[str, dict[str, Any]]) -> None:
    assert set(fresh) == set(compiler.ARTIFACT_SOURCES)
    for name, artifact in fresh.items():
        committed_text = (compiler.BUILD_DIR / f"{name}.json").read_text(encoding="utf-8")
        committed = json.loads(committed_text)
        # Field by field first, for a readable failure ...
        assert committed["abi"] == artifact["abi"], name
        assert committed["bytecode"] == artifact["bytecode"], name
        assert committed["deployedBytecode"] == artifact["deployedBytecode"], name
        # ... then byte for byte.
        assert committed_text == compiler.render_artifact(artifact), name
    assert compiler.check_artifacts(fresh=fresh) == []


def test_check_flags_stale_and_missing_artifacts(fresh: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    for name in fresh:
        shutil.copy(compiler.BUILD_DIR / f"{name}.json", tmp_path / f"{name}.json")
    assert compiler.check_artifacts(tmp_path, fresh=fresh) == []
    path = tmp_path / "AnchorRegistry.json"
    path.write_text(path.read_text().replace('"runs": 200', '"runs": 201'))
    (tmp_path / "Sm3Precompile.json").unlink()
    assert sorted(compiler.check_artifacts(tmp_path, fresh=fresh)) == ["AnchorRegistry", "Sm3Precompile"]


def test_main_check(
    fresh: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(compiler, "compile_artifacts", lambda solc=None: fresh)
    assert compiler.main(["--check"]) == 0
    monkeypatch.setattr(compiler, "BUILD_DIR", tmp_path)
    assert compiler.main(["--check"]) == 1
    assert compiler.main([]) == 0
    assert compiler.main(["--check"]) == 0
    assert (tmp_path / "AnchorRegistry.json").read_text() == compiler.render_artifact(fresh["AnchorRegistry"])


def _opcodes_without_metadata(code: bytes) -> list[int]:
    """The opcodes of runtime code, skipping PUSH data and the trailing CBOR metadata."""
    metadata_length = int.from_bytes(code[-2:], "big")
    code = code[: -(metadata_length + 2)]
    ops, i = [], 0
    while i < len(code):
        op = code[i]
        ops.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return ops


@pytest.mark.parametrize("name", list(compiler.ARTIFACT_SOURCES))
def test_artifact_settings_and_loading(name: str) -> None:
    artifact = load_artifact(name)
    assert isinstance(artifact, ContractArtifact)
    assert artifact.name == name
    assert artifact.solc_version == "0.8.28+commit.7893614a"
    doc = json.loads((compiler.BUILD_DIR / f"{name}.json").read_text())
    assert doc["compiler"]["settings"] == {"evmVersion": "paris", "optimizer": {"enabled": True, "runs": 200}}
    assert artifact.deployed_bytecode in artifact.bytecode
    # EVM paris: no PUSH0 (Shanghai), so the code runs on older consortium chains.
    assert PUSH0 not in _opcodes_without_metadata(artifact.deployed_bytecode)
    assert len(artifact.deployed_bytecode) <= 24_576  # EIP-170


def test_registry_abi_has_the_interface() -> None:
    abi = load_artifact("AnchorRegistry").abi
    names = {(item["type"], item.get("name")) for item in abi}
    for function in (
        "admin transferAdmin addMember removeMember isMember memberName memberCount sm3Precompile anchor"
        " logOperator setLogOperator logHashAlg anchorCount latestAnchor anchorAt anchorBySize hashLeaf"
        " verifyInclusionProof verifyConsistencyProof verifyInclusion sm3 HASH_SHA256 HASH_SM3"
    ).split():
        assert ("function", function) in names, function
    for event in "AdminTransferred MemberAdded MemberRemoved LogOperatorChanged CheckpointAnchored".split():
        assert ("event", event) in names, event
    for error in (
        "NotAdmin NotMember NotLogOperator ZeroAddress AlreadyMember UnknownMember UnknownHashAlg"
        " HashAlgMismatch EmptyTree NotGrowing InconsistentProof UnexpectedProof UnknownLog NoSuchAnchor"
    ).split():
        assert ("error", error) in names, error


def test_load_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError):
        load_artifact("NoSuchContract")
    with pytest.raises(ArtifactError):
        load_artifact("../pyproject")
    with pytest.raises(ArtifactError):
        ContractArtifact.from_json("{}")
    with pytest.raises(ArtifactError):
        ContractArtifact.from_json(
            '{"contractName": "X", "abi": [], "compiler": {"version": "v"},'
            ' "bytecode": "0xzz", "deployedBytecode": "0x00"}'
        )


def test_wrapper_answers_like_native_solc() -> None:
    assert get_solc_version(compiler.WRAPPER) == Version("0.8.28")
    assert get_solc_version(compiler.WRAPPER, with_commit_hash=True) == Version("0.8.28+commit.7893614a")


def _fake_solc(directory: Path, version: str) -> Path:
    path = directory / "solc"
    path.write_text(
        f"#!/bin/sh\necho 'solc, the solidity compiler commandline interface'\necho 'Version: {version}'\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_native_solc_is_used_only_at_the_pinned_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    native = _fake_solc(tmp_path, "0.8.27+commit.40a35a09.Linux.g++")
    assert compiler.find_solc() == compiler.WRAPPER
    native = _fake_solc(tmp_path, "0.8.28+commit.7893614a.Linux.g++")
    assert compiler.find_solc() == native


def test_no_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        "contracts.compiler.shutil.which", lambda name: None if name == "solc" else real_which(name)
    )
    monkeypatch.setattr(compiler, "SOLCJS_PACKAGE", tmp_path / "missing" / "package.json")
    with pytest.raises(CompilerNotFound, match="npm ci"):
        compiler.find_solc()
    monkeypatch.setattr("contracts.compiler.shutil.which", lambda name: None)
    with pytest.raises(CompilerNotFound, match="node") as excinfo:
        compiler.find_solc()
    assert isinstance(excinfo.value, ContractsError)
    assert "compiler-not-found" in excinfo.value.diagnostics()
    assert compiler.main(["--check"]) == 2


def test_compiler_errors_are_converted() -> None:
    sources = {"src/AnchorRegistry.sol": "pragma solidity 0.8.28; contract AnchorRegistry { oops }"}
    with pytest.raises(CompilationFailed, match="ParserError"):
        compiler.compile_artifacts(sources=sources)
