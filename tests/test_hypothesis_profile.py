"""No property test can fail on the machine's load: every one runs without a deadline or ``too_slow``.

``tests/conftest.py`` loads the ``ci`` profile; a test's own ``@settings(deadline=...)`` or a
``suppress_health_check`` list that leaves ``too_slow`` out would silently bring the flake back
(``test_credit_documents_are_rfc8785_canonical`` failed a clean-clone run that way). This walks
every test module and checks the settings each property test will actually run with.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).parent


def _property_tests() -> Iterator[tuple[str, Any]]:
    for path in sorted(TESTS.rglob("test_*.py")):
        module = importlib.import_module(".".join(path.relative_to(TESTS.parent).with_suffix("").parts))
        for name, value in vars(module).items():
            candidates = [(name, value)]
            if inspect.isclass(value):
                candidates = [(f"{name}.{k}", v) for k, v in vars(value).items()]
            for qualname, fn in candidates:
                if inspect.isfunction(fn) and getattr(fn, "is_hypothesis_test", False) is True:
                    yield f"{module.__name__}::{qualname}", fn


def _profile_chosen_by_hand() -> None:
    chosen = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if chosen != "ci":
        if os.environ.get("CI"):
            pytest.fail(f"HYPOTHESIS_PROFILE={chosen}: CI runs the ci profile")
        pytest.skip(f"HYPOTHESIS_PROFILE={chosen} asked for hypothesis's timing checks on purpose")


def test_the_ci_profile_is_loaded() -> None:
    _profile_chosen_by_hand()
    current = settings.default
    assert current is not None
    assert current.deadline is None
    assert HealthCheck.too_slow in current.suppress_health_check


def test_no_property_test_times_the_machine() -> None:
    found = dict(_property_tests())
    assert len(found) >= 20, sorted(found)  # the walk really sees the suite's property tests
    _profile_chosen_by_hand()
    offenders = {
        name: (s.deadline, [c.name for c in s.suppress_health_check])
        for name, fn in found.items()
        if (s := fn._hypothesis_internal_use_settings).deadline is not None
        or HealthCheck.too_slow not in s.suppress_health_check
    }
    assert not offenders, f"property tests that would time the machine (deadline, suppressed): {offenders}"
