"""Rate limits of the web chat's endpoints: token buckets, one per key (a visitor, an IP).

A bucket holds `burst` tokens and refills `rate` a second; a request takes one, and when
none is left it is answered 429 with the seconds until the next (Retry-After). Buckets are
per process: behind several processes a visitor gets each process's allowance, which still
bounds what one browser can make the bot do.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class Buckets:
    """Token buckets by key; the least recently used are forgotten past `keep` keys."""

    def __init__(self, burst: int, rate: float, *, keep: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("a bucket needs a burst of at least 1 and a positive rate")
        self.burst, self.rate, self.keep, self.clock = burst, rate, keep, clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 when one was there, else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        while len(self._buckets) > self.keep:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        """A Retry-After header's whole seconds, at least 1."""
        return str(max(1, math.ceil(seconds)))
