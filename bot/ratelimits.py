"""What Anthropic's responses say about the organisation's rate limits, and who is told.

docs: api/rate-limits — every Messages response carries, for each of ``requests``, ``tokens``,
``input-tokens`` and ``output-tokens``, the headers ``anthropic-ratelimit-<limit>-limit`` (the
most allowed in the period), ``-remaining`` (what is left now) and ``-reset`` (RFC 3339, when it
is fully replenished); a 429 also carries ``retry-after``: "the number of seconds to wait until
you can retry the request. Earlier retries will fail."

Pure functions turn the headers into a :class:`Headroom` and a wait; the engine reports every
response to a :class:`Pacer` (the limiter, :mod:`bot.limiter`) and passes its gate before each
call, without knowing what the pacer does with either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

#: The limits the API reports, as they appear in ``anthropic-ratelimit-<limit>-…``.
LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
HEADER_PREFIX = "anthropic-ratelimit-"


@dataclass(frozen=True)
class Headroom:
    """What is left of each limit a response reported, as a fraction of the limit (0–1)."""

    remaining: Mapping[str, float] = field(default_factory=dict)

    @property
    def lowest(self) -> float | None:
        """The fraction left of the scarcest limit; None when the response reported none."""
        return min(self.remaining.values()) if self.remaining else None


def _count(value: str | None) -> float | None:
    """A header's non-negative number, or None when it is missing or garbage."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def parse_headroom(headers: Mapping[str, str]) -> Headroom:
    """The headroom a response's headers report. A limit whose ``-limit`` or ``-remaining`` is
    missing, not a number, negative or a zero limit is left out, never guessed."""
    lowered = _lowered(headers)
    remaining: dict[str, float] = {}
    for name in LIMITS:
        limit = _count(lowered.get(f"{HEADER_PREFIX}{name}-limit"))
        left = _count(lowered.get(f"{HEADER_PREFIX}{name}-remaining"))
        if limit and left is not None:
            remaining[name] = min(left / limit, 1.0)
    return Headroom(remaining)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait before trying again, or None if it didn't say.

    ``retry-after`` is in seconds (docs: api/rate-limits); the SDKs also read ``retry-after-ms``.
    When both are present the longer wins, so the bot never retries sooner than either allows.
    Garbage values are ignored.
    """
    lowered = _lowered(headers)
    waits = [
        seconds * scale
        for header, scale in (("retry-after", 1.0), ("retry-after-ms", 0.001))
        if (seconds := _count(lowered.get(header))) is not None
    ]
    return max(waits) if waits else None


class Pacer(Protocol):
    """Paces the API calls of a whole process (the engine's view of :class:`bot.limiter.Limiter`)."""

    async def gate(self) -> None:
        """Return once a new API call may start (after any pause a refusal began)."""
        ...

    def accepted(self, headers: Mapping[str, str]) -> None:
        """A call was accepted; ``headers`` are its response's."""
        ...

    def refused(self, headers: Mapping[str, str]) -> None:
        """A call was refused as rate-limited or overloaded (429/529); ``headers`` are the refusal's."""
        ...


class Unpaced:
    """No pacing: for one-off uses of the engine (``slack-analyst ask``, ``doctor --live``)."""

    async def gate(self) -> None:
        return None

    def accepted(self, headers: Mapping[str, str]) -> None:
        return None

    def refused(self, headers: Mapping[str, str]) -> None:
        return None
