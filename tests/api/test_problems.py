"""One table maps the whole error tree to HTTP statuses, by class (never by reason string)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors as api_errors
from api.problems import STATUS, install_problem_handlers, status_of
from contracts import errors as contracts_errors
from credit import errors as credit_errors
from ledger import errors as ledger_errors
from ledger.witness import errors as witness_errors
from trustledger.errors import TrustledgerError

PACKAGES = (ledger_errors, credit_errors, api_errors, contracts_errors, witness_errors)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (api_errors.Unauthorized("no key", reason="missing-api-key"), 401),
        (api_errors.Forbidden("no role", reason="role-required"), 403),
        (api_errors.IdentityProviderUnavailable("down"), 503),
        (credit_errors.Conflict("source_ref reused"), 409),
        (credit_errors.StaleWrite("busy"), 409),
        (credit_errors.InvalidEvent("bad"), 422),
        (credit_errors.UnknownPurpose("why?"), 400),
        (credit_errors.CreditError("bad", reason="storage"), 400),
        (credit_errors.NoRulebookInForce("no rulebook"), 503),
        (credit_errors.InvalidDate("tomorrow"), 400),
        (ledger_errors.Conflict("key reused", reason="idempotency-conflict"), 409),
        (ledger_errors.WriteConflict("raced"), 409),
        (ledger_errors.PayloadTooLarge("big"), 413),
        (ledger_errors.LogOverloaded("busy", retry_after=2), 503),
        (ledger_errors.ChainDisagreement("fork"), 502),
        (contracts_errors.ArtifactError("missing"), 500),
    ],
)
def test_status_by_class(error: TrustledgerError, status: int) -> None:
    assert status_of(error) == status


def test_a_reason_string_does_not_choose_the_status() -> None:
    """Only the class counts: an Unauthorized that happens to carry the provider's reason is 401."""
    assert status_of(api_errors.Unauthorized("odd", reason="idp-unavailable")) == 401


def test_every_class_of_the_tree_is_reached_and_no_entry_is_shadowed() -> None:
    assert all(issubclass(kind, TrustledgerError) for kind, _ in STATUS)
    for package in PACKAGES:
        for name in dir(package):
            value = getattr(package, name)
            if isinstance(value, type) and issubclass(value, TrustledgerError):
                assert any(issubclass(value, kind) for kind, _ in STATUS), f"{name} has no status"
    for position, (kind, _) in enumerate(STATUS):
        earlier = [base for base, _ in STATUS[:position] if issubclass(kind, base)]
        assert not earlier, f"{kind.__name__} is shadowed by {earlier[0].__name__}"


def test_one_handler_answers_every_package_with_problem_json() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    raised: dict[str, TrustledgerError] = {
        "credit-conflict": credit_errors.Conflict("source_ref reused with other content"),
        "idp": api_errors.IdentityProviderUnavailable("the provider did not answer"),
        "overloaded": ledger_errors.LogOverloaded("backlog", retry_after=3),
    }

    @app.get("/raise/{which}")
    def fail(which: str) -> None:
        raise raised[which]

    with TestClient(app) as client:
        conflict = client.get("/raise/credit-conflict")
        idp = client.get("/raise/idp")
        overloaded = client.get("/raise/overloaded")
    assert (conflict.status_code, conflict.json()["reason"]) == (409, "conflict")
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert (idp.status_code, idp.json()["reason"]) == (503, "idp-unavailable")
    assert (overloaded.status_code, overloaded.headers["Retry-After"]) == (503, "3")
