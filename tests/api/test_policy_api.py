"""The trust policy served at its well-known path (and under /v1/log), or a problem+json 404."""

from __future__ import annotations

from ledger.core.crypto import HashAlgorithm
from ledger.core.policy import TrustPolicy, new_policy
from ledger.policy_file import write_policy
from tests.api.conftest import Api

PATHS = ("/.well-known/trustledger/policy.json", "/v1/log/policy")


def test_policy_is_served_with_its_fingerprint(api: Api) -> None:
    settings = api.client.app.state.settings  # type: ignore[attr-defined]
    for path in PATHS:
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["reason"] == "no-policy"
    policy = new_policy(origin=api.ledger.origin, hash_alg=HashAlgorithm.SM3, log_key=api.ledger.public_key)
    write_policy(settings.policy_path, policy)
    for path in PATHS:
        response = api.client.get(path)  # no key needed: it is public
        assert response.status_code == 200, path
        assert TrustPolicy.from_json(response.content) == policy
        assert response.headers["x-trust-policy-fingerprint"] == policy.fingerprint()
