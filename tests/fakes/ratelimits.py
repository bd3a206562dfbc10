"""The organisation's rate limits, as the fake Anthropic enforces and reports them.

docs: api/rate-limits —
- every Messages response carries ``anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-
  {limit,remaining,reset}``: the most allowed in the period, what is left, and when it is fully
  replenished (RFC 3339); the ``tokens`` ones "display the values for the most restrictive limit
  currently in effect";
- past a limit the API answers 429 ``rate_limit_error`` with ``retry-after``, "the number of seconds
  to wait until you can retry the request. Earlier retries will fail.";
- for most models only uncached input tokens (``input_tokens`` + ``cache_creation_input_tokens``)
  count toward the input-token limit.

The real API replenishes continuously (a token bucket); the fake refills a fixed window all at once
when it ends — simpler, and harsher on a client, which must wait the whole ``retry-after``. The
defaults are generous (no test reaches them); :meth:`~tests.fakes.anthropic.FakeAnthropic.rate_limit`
sets a small budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HEADER_PREFIX = "anthropic-ratelimit-"


@dataclass(frozen=True)
class RateLimits:
    """What the organisation may use per window (a minute, unless a test shortens it)."""

    requests: int = 50_000
    input_tokens: int = 100_000_000
    output_tokens: int = 20_000_000
    window_s: float = 60.0


class RateWindow:
    """The current window of :class:`RateLimits`: what is used, what is left, when it refills."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.started = clock()
        self.used = {"requests": 0, "input-tokens": 0, "output-tokens": 0}

    def _limit(self, name: str) -> int:
        return {
            "requests": self.limits.requests,
            "input-tokens": self.limits.input_tokens,
            "output-tokens": self.limits.output_tokens,
        }[name]

    def _roll(self) -> None:
        """A window that has ended is refilled; the next begins now."""
        now = self.clock()
        if now >= self.started + self.limits.window_s:
            self.started = now
            self.used = dict.fromkeys(self.used, 0)

    def remaining(self, name: str) -> int:
        self._roll()
        return max(0, self._limit(name) - self.used[name])

    def exhausted(self) -> str | None:
        """The first limit with nothing left (its 429 message names it), or None."""
        return next((name for name in self.used if self.remaining(name) == 0), None)

    def retry_after(self) -> int:
        """Whole seconds until the window refills (the real API sends whole seconds), at least 1."""
        return max(1, math.ceil(self.started + self.limits.window_s - self.clock()))

    def charge(self, name: str, amount: int) -> None:
        self._roll()
        self.used[name] += amount

    def headers(self) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers of a response sent now."""
        self._roll()
        reset = datetime.now(UTC) + timedelta(seconds=self.started + self.limits.window_s - self.clock())
        stamp = reset.isoformat(timespec="seconds").replace("+00:00", "Z")
        values = {name: (self._limit(name), self.remaining(name)) for name in self.used}
        # "tokens": the most restrictive of the token limits now.
        values["tokens"] = min(values["input-tokens"], values["output-tokens"], key=lambda lr: lr[1] / lr[0])
        headers = {}
        for name, (limit, left) in values.items():
            headers[f"{HEADER_PREFIX}{name}-limit"] = str(limit)
            headers[f"{HEADER_PREFIX}{name}-remaining"] = str(left)
            headers[f"{HEADER_PREFIX}{name}-reset"] = stamp
        return headers
