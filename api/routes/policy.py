"""The deployment's trust policy, served for convenience at a well-known path.

A verifier must get the policy out of band (from the consortium, compared by fingerprint): a
policy fetched from the operator it is meant to check proves nothing by itself. Serving it here
lets members and tools fetch the current revision and compare its fingerprint with the published
one (``X-Trust-Policy-Fingerprint``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import SettingsDep
from ledger.errors import NotFound
from ledger.policy_file import read_policy

router = APIRouter(tags=["log"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/json": {}}, "description": "the trust policy document"},
    404: {"description": "this deployment has no trust policy yet"},
}


def _policy_response(settings: SettingsDep) -> Response:
    if not settings.policy_path.exists():
        raise NotFound("this deployment has no trust policy (run `trustledger init`)", reason="no-policy")
    policy = read_policy(settings.policy_path)
    return Response(
        policy.to_json(),
        media_type="application/json",
        headers={"X-Trust-Policy-Fingerprint": policy.fingerprint(), "Cache-Control": "no-cache"},
    )


@router.get("/.well-known/trustledger/policy.json", response_class=Response, responses=_RESPONSES)
def well_known_policy(settings: SettingsDep) -> Response:
    """The trust policy (format ``trustledger-trust-policy``); pin a copy obtained out of band."""
    return _policy_response(settings)


@router.get("/v1/log/policy", response_class=Response, responses=_RESPONSES)
def log_policy(settings: SettingsDep) -> Response:
    """The trust policy, as at ``/.well-known/trustledger/policy.json``."""
    return _policy_response(settings)
