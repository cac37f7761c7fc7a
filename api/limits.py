"""In-process rate limits: token buckets per API key, per address, and for failed authentication.

A small token bucket of our own rather than ``limits``/``slowapi``: the service needs three
buckets checked in one ASGI middleware before the body is read, in-process (each worker process
limits on its own; the limits are set per worker), with a ``Retry-After`` computed from the bucket.
``slowapi`` works per route through decorators and a ``Request`` (after FastAPI has read the
body), and ``limits`` brings storage back-ends we do not use; the whole algorithm is the few lines
below. The clock is injected so tests need no sleeping.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

_DEFAULT_MAX_KEYS = 100_000


@dataclass(frozen=True)
class Rate:
    """``per_s`` tokens a second, at most ``burst`` saved up."""

    per_s: float
    burst: int


class RateLimiter:
    """One token bucket per key (an API client's name, an address), bounded in number.

    Only touched from the event loop (the ASGI middleware), so it needs no lock. When more than
    ``max_keys`` keys are tracked the least recently used bucket is forgotten: that key starts
    again with a full bucket, which bounds the memory an attacker with many addresses can take.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        max_keys: int = _DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.rate.burst), now))
        return min(float(self.rate.burst), tokens + (now - at) * self.rate.per_s)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._store(key, tokens, now)
            return (1.0 - tokens) / self.rate.per_s if self.rate.per_s > 0 else math.inf
        self._store(key, tokens - 1.0, now)
        return 0.0

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0.0: it has one now); takes nothing."""
        tokens = self._tokens(key, self._clock())
        if tokens >= 1.0:
            return 0.0
        return (1.0 - tokens) / self.rate.per_s if self.rate.per_s > 0 else math.inf

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


def retry_after(wait_s: float) -> int:
    """A ``Retry-After`` value (whole seconds, at least 1, capped at a day) for a wait."""
    if not math.isfinite(wait_s):
        return 86_400
    return max(1, min(86_400, math.ceil(wait_s)))
