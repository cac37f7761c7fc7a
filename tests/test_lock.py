"""Installs do not drift: both README commands install exact, hashed versions from the lock files.

``requirements/service.txt`` (``./scripts/run``) and ``requirements/test.txt`` (``./scripts/test``)
are written by ``scripts/lock`` from ``pyproject.toml``. These tests fail when a dependency is added
to ``pyproject.toml`` without refreshing the lock, when a pin loses its hashes, when the two files
disagree, when a script stops installing from the lock, or when the running environment is not the
locked one (install it with ``pip install --require-hashes -r requirements/test.txt``).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _lock(name: str) -> dict[str, tuple[Version, Marker | None, list[str]]]:
    """name → (version, marker, hashes) of every pin in ``requirements/<name>.txt``."""
    pins: dict[str, tuple[Version, Marker | None, list[str]]] = {}
    current: str | None = None
    for line in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match[1])
            assert current not in pins, f"{name}.txt pins {current} twice"
            marker = Marker(match[3]) if match[3] else None
            pins[current] = (Version(match[2]), marker, [])
        elif line.strip().startswith("--hash=") and current is not None:
            pins[current][2].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{name}.txt: unexpected line {line!r}")
    return pins


def _declared() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    service = [Requirement(r) for r in project["dependencies"]]
    return {
        "service": service,
        "test": service + [Requirement(r) for r in project["optional-dependencies"]["test"]],
    }


@pytest.mark.parametrize("name", ["service", "test"])
def test_every_declared_dependency_is_pinned_with_hashes(name: str) -> None:
    pins = _lock(name)
    for requirement in _declared()[name]:
        key = canonicalize_name(requirement.name)
        assert key in pins, f"{requirement} is not in requirements/{name}.txt: run scripts/lock"
        assert requirement.specifier.contains(pins[key][0], prereleases=True), (
            f"requirements/{name}.txt pins {key}=={pins[key][0]}, outside {requirement}: run scripts/lock"
        )
    for pinned, (_version, _marker, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), pinned


def test_service_and_test_locks_agree() -> None:
    service, test = _lock("service"), _lock("test")
    assert set(service) <= set(test)
    assert {k: service[k][0] for k in service} == {k: test[k][0] for k in service}


@pytest.mark.parametrize(("script", "lock"), [("run", "service"), ("test", "test")])
def test_the_readme_commands_install_from_the_lock(script: str, lock: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    installs = [line for line in text.splitlines() if "pip install" in line and not line.startswith("#")]
    assert len(installs) == 2, installs
    assert "--require-hashes" in installs[0] and f"-r requirements/{lock}.txt" in installs[0]
    assert "--no-deps" in installs[1] and installs[1].rstrip().endswith("-e .")


def test_the_running_environment_is_the_locked_one() -> None:
    """The suite runs on exactly the locked versions (a fresh install from the lock gives them)."""
    drift = {}
    for key, (version, marker, _hashes) in _lock("test").items():
        if marker is not None and not marker.evaluate():
            continue
        try:
            installed = Version(metadata.version(key))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[key] = (str(version), str(installed))
    assert not drift, f"locked vs installed: {drift}; pip install --require-hashes -r requirements/test.txt"
