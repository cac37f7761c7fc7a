"""Property-based requests to every operation of the OpenAPI document (schemathesis, stateless)
against the suite's real service: no answer is a server error, without a key, with the
operator's key or with a source's key.

The schema is the app's own OpenAPI document (built without opening anything), so a new route is
fuzzed without being listed. Bounded to a few examples per operation to keep the run short. Each
case is sent from its own loopback address, as the service limits failed authentications per
address and keyless cases must reach the route, not a 429. Citizen routes are reached only
without a valid ID token (no identity provider is configured here): they must refuse, not fail.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from requests.adapters import HTTPAdapter

from api.app import create_app
from ledger.settings import Settings
from tests.hostile.conftest import Deployment, new_address

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("TRUSTLEDGER_FUZZ_EXAMPLES", "5"))  # more for a longer hunt
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


class _SourceAddress(HTTPAdapter):
    """Connections from one given local address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _no_server_error(case: Any, deployment: Deployment, role: str | None) -> None:
    with requests.Session() as session:
        session.mount("http://", _SourceAddress(new_address()))
        headers = deployment.auth(role) if role else {}
        response = case.call(base_url=deployment.url, session=session, headers=headers, timeout=60)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} as {role or 'nobody'}: {response.status_code} "
        f"{response.text[:500]}\n{case.as_curl_command()}"
    )


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_without_a_key(case: Any, deployment: Deployment) -> None:
    _no_server_error(case, deployment, None)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_with_the_operator_key(case: Any, deployment: Deployment) -> None:
    _no_server_error(case, deployment, "admin")


@schema.include(path_regex="^/v1/credit/").parametrize()  # elsewhere a source is refused (403)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_with_a_source_key(case: Any, deployment: Deployment) -> None:
    _no_server_error(case, deployment, "source:court")
