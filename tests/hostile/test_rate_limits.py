"""Rate limits on a real ``trustledger serve`` with its default settings (issue 9, section 5).

Before: 300 guessed-key requests in 0.6 s were all answered (401 each, a database look-up each).
Now failed authentications are limited per address (burst 20, then 30 a minute): the rest are
429 with ``Retry-After``, answered without a look-up, while other callers carry on.
"""

from __future__ import annotations

import secrets
from collections import Counter

import pytest

from tests.hostile.conftest import Deployment, assert_problem, new_address

pytestmark = pytest.mark.slow
GUESSES = 300


def test_guessed_keys_are_throttled_per_address(deployment: Deployment) -> None:
    before = deployment.counts()
    attacker = new_address()
    statuses: Counter[int] = Counter()
    with deployment.client(attacker) as client:
        for _ in range(GUESSES):
            guess = {"Authorization": f"Bearer tlk_{secrets.token_urlsafe(32)}"}
            response = client.get("/v1/credit/list-cases", headers=guess)
            problem = assert_problem(response, 401, 429)
            statuses[response.status_code] += 1
            if response.status_code == 429:
                assert problem["reason"] == "auth-rate-limited"
                assert int(response.headers["retry-after"]) >= 1
        # The address stays blocked for keyless attempts too.
        blocked = client.post("/v1/records", json={"kind": "generic", "content": "x"})
        assert assert_problem(blocked, 429)["reason"] == "auth-rate-limited"
    # The default burst is 20 failures, refilled at 30 a minute: at most a few more got through.
    assert statuses[401] <= 30 and statuses[429] >= GUESSES - 30, statuses
    # Another address, and a valid key, are not affected.
    with deployment.client() as client:
        assert client.get("/v1/credit/list-cases", headers=deployment.auth("officer")).status_code == 200
        assert client.get("/v1/log").status_code == 200
    deployment.assert_healthy()
    assert deployment.counts() == before


def test_forwarded_headers_do_not_choose_the_address(deployment: Deployment) -> None:
    """No proxy is trusted by default: ``X-Forwarded-For`` cannot give each guess a new address.

    Before: uvicorn believed forwarded headers from 127.0.0.1, so a caller on the service's own
    host named a fresh address for every guess and was never throttled. (127.0.0.1 is the one
    loopback address no other hostile test sends from; its failures bucket refills in seconds.)
    """
    statuses: Counter[int] = Counter()
    with deployment.client("127.0.0.1") as client:
        for n in range(30):
            headers = {
                "Authorization": f"Bearer tlk_{secrets.token_urlsafe(32)}",
                "X-Forwarded-For": f"203.0.113.{n + 1}",
            }
            response = client.get("/v1/credit/list-cases", headers=headers)
            assert_problem(response, 401, 429)
            statuses[response.status_code] += 1
    assert statuses[429] >= 5, statuses
