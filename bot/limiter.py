"""The adaptive limiter: how many analyses this process runs at once, and when API calls may start.

**Why AIMD on the width, not a token bucket.** A token bucket spends a known cost per item, but
an analysis is a handful of Messages calls of unknown size (code runs, ``pause_turn``
continuations, replayed history), and the budget is the organisation's, shared with every other
process and app on the key — only the API's own headers tell what is left. AIMD needs neither:
it adjusts the one thing this process controls, how many analyses run at once (the *width*), from
what every response says (:mod:`bot.ratelimits`):

- it starts generous (:data:`START_WIDTH`), never goes above the ceiling (``ANALYST_MAX_CONCURRENT``
  when set, else :data:`ADAPTIVE_MAX_WIDTH`) nor below 1;
- **multiplicative decrease**: a 429/529 halves the width in use (:data:`BACK_OFF`); a response
  with less than :data:`LOW_HEADROOM` left of any limit cuts it by a quarter (:data:`EASE_OFF`).
  At most once per :data:`NARROW_COOLDOWN_S`, and not again while more analyses run than the width
  allows (the last cut hasn't taken effect yet), so a burst of responses doesn't collapse it to 1;
- a refusal with ``retry-after`` also **pauses** every new API call of the process (:meth:`gate`)
  until that time has passed;
- **additive increase**: an accepted call with healthy headroom (at least :data:`HEALTHY_HEADROOM`
  left, or none reported) widens the width, but only while it is used in full (idle, it does not
  grow): by 1 per call until the first cut — a fast ramp from the start, TCP's slow start — then
  by 1/width per call, about one more analysis per round of calls. Between low and healthy it holds.

Narrowing never cancels an analysis that holds a slot; widening wakes the queue at once. Waiters
are served in arrival order. One still waiting after :data:`TELL_AFTER_S` is told its place (a
burst that the widening width absorbs within a moment posts no queue notes that are stale as
they land), and told again when it changed enough (:func:`should_retell`), so 200 people queued
cause a few updates each, not one per departure.
The arithmetic is in plain functions; the clock and the sleep are injectable.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.ratelimits import Headroom, parse_headroom, retry_after

START_WIDTH = 64  # analyses per process at start (and after a restart)
ADAPTIVE_MAX_WIDTH = 256  # the most the width grows to without ANALYST_MAX_CONCURRENT
BACK_OFF = 0.5  # the width kept after a 429/529
EASE_OFF = 0.75  # the width kept when a limit runs low
LOW_HEADROOM = 0.10  # less than this fraction left of any limit: narrow
HEALTHY_HEADROOM = 0.5  # at least this left of every limit: may widen
NARROW_COOLDOWN_S = 2.0  # at most one cut per this many seconds
TELL_AFTER_S = 2.0  # a waiter is first told its place once it has waited this long
CLOSE_PLACE = 3  # a waiter this close to the front is told every move
RETELL_SHRINK = 0.2  # further back, it is told again once its place shrank by this fraction

Reading = Literal["low", "tight", "healthy"]
OnWait = Callable[[int], Awaitable[None]]


def reading(headroom: Headroom) -> Reading:
    """How a response's headroom counts: ``low`` (narrow), ``tight`` (hold), ``healthy`` (may widen).
    A response that reported no limits counts as healthy: a success is a success."""
    lowest = headroom.lowest
    if lowest is None or lowest >= HEALTHY_HEADROOM:
        return "healthy"
    return "low" if lowest < LOW_HEADROOM else "tight"


def narrowed(width: float, in_use: int, factor: float) -> float:
    """Multiplicative decrease: ``factor`` of what is in use (never more than the width), at least 1."""
    return float(max(1, math.floor(min(width, max(in_use, 1)) * factor)))


def widened(width: float, most: int, *, slow_start: bool) -> float:
    """Additive increase after one healthy call: +1 in slow start, else +1/width; at most ``most``."""
    return min(float(most), width + (1.0 if slow_start else 1.0 / width))


def should_retell(told: int, place: int) -> bool:
    """Whether a waiter last told it is ``told``-th in line should hear that it is now ``place``-th:
    always near the front, further back only once its place shrank by :data:`RETELL_SHRINK`."""
    if place >= told:
        return False
    return place <= CLOSE_PLACE or told - place >= told * RETELL_SHRINK


@dataclass(eq=False)
class _Waiter:
    told: int  # the place it was last told
    listening: bool  # it is told its place (it has an on_wait, and has waited long enough)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # granted, or its place changed enough
    granted: bool = False


class Limiter:
    """At most :attr:`slots` analyses at a time, the rest waiting in arrival order; the width adapts
    to Anthropic's rate limits (a :class:`bot.ratelimits.Pacer` for the engine)."""

    def __init__(
        self,
        ceiling: int | None = None,
        *,
        start: int = START_WIDTH,
        tell_after: float = TELL_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.ceiling = ceiling  # ANALYST_MAX_CONCURRENT, None when adaptive
        self.most = ceiling if ceiling is not None else ADAPTIVE_MAX_WIDTH
        self.tell_after = tell_after
        self.clock = clock
        self._sleep = sleep
        self._width = float(max(1, min(start, self.most)))
        self._slow_start = True
        self._narrowed_at = -math.inf
        self.paused_until = -math.inf
        self.headroom = Headroom()  # the last headroom a response reported
        self.running = 0
        self._waiting: deque[_Waiter] = deque()

    @property
    def slots(self) -> int:
        """The width now: how many analyses may run at once."""
        return math.floor(self._width)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def paused_s(self) -> float:
        """Seconds left of a pause a refusal began (0 when API calls may start)."""
        return max(0.0, self.paused_until - self.clock())

    def report(self) -> dict[str, Any]:
        """The limiter's state, for ``/healthz``."""
        return {
            "running": self.running,
            "waiting": self.waiting,
            "slots": self.slots,
            "ceiling": self.ceiling,
            "max": self.most,
            "paused_s": round(self.paused_s, 3),
            "headroom": {name: round(left, 3) for name, left in self.headroom.remaining.items()},
        }

    # -- the queue ---------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, on_wait: OnWait | None = None) -> AsyncIterator[None]:
        """Hold a slot for the block. If it has to wait longer than :attr:`tell_after`,
        ``on_wait(place)`` is awaited then, and again whenever its place in line changed enough
        (:func:`should_retell`)."""
        if self.running < self.slots and not self._waiting:
            self.running += 1
        else:
            await self._wait_in_line(on_wait)
        try:
            yield
        finally:
            self._release()

    async def _wait_in_line(self, on_wait: OnWait | None) -> None:
        waiter = _Waiter(told=len(self._waiting) + 1, listening=False)
        self._waiting.append(waiter)
        timer: asyncio.TimerHandle | None = None
        try:
            if on_wait is not None and self.tell_after <= 0:
                waiter.listening = True
                await on_wait(waiter.told)
            elif on_wait is not None:
                timer = asyncio.get_running_loop().call_later(self.tell_after, waiter.wake.set)
            while not waiter.granted:
                await waiter.wake.wait()
                waiter.wake.clear()
                if on_wait is None or waiter.granted:
                    continue
                place = self._waiting.index(waiter) + 1
                if not waiter.listening:  # waited long enough: told for the first time
                    waiter.listening, waiter.told = True, place
                    await on_wait(place)
                elif should_retell(waiter.told, place):
                    waiter.told = place
                    await on_wait(place)
        except BaseException:
            if waiter.granted:
                self._release()  # handed a slot it won't use: pass it on
            else:
                self._waiting.remove(waiter)
                self._moved()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _release(self) -> None:
        self.running -= 1
        self._grant()

    def _grant(self) -> None:
        """Hand free slots to the front of the line."""
        served = False
        while self._waiting and self.running < self.slots:
            waiter = self._waiting.popleft()
            waiter.granted = True
            waiter.wake.set()
            self.running += 1
            served = True
        if served:
            self._moved()

    def _moved(self) -> None:
        """The line moved up: wake the waiters whose new place is worth telling."""
        for place, waiter in enumerate(self._waiting, start=1):
            if waiter.listening and should_retell(waiter.told, place):
                waiter.wake.set()

    # -- what the API says (bot.ratelimits.Pacer) -------------------------------------------

    async def gate(self) -> None:
        """Return once a new API call may start: after any pause a refusal began."""
        while (left := self.paused_until - self.clock()) > 0:
            await self._sleep(left)

    def accepted(self, headers: Mapping[str, str]) -> None:
        """A call was accepted: narrow if a limit runs low, widen if all is healthy and the width is used."""
        headroom = parse_headroom(headers)
        if headroom.remaining:
            self.headroom = headroom
        verdict = reading(headroom)
        if verdict == "low":
            self._narrow(EASE_OFF)
        elif verdict == "healthy" and self.running >= self.slots and self._width < self.most:
            self._width = widened(self._width, self.most, slow_start=self._slow_start)
            self._grant()

    def refused(self, headers: Mapping[str, str]) -> None:
        """A call was refused (429/529): pause new calls for its ``retry-after``, and narrow."""
        wait = retry_after(headers)
        if wait:
            self.paused_until = max(self.paused_until, self.clock() + wait)
        self._narrow(BACK_OFF)

    def _narrow(self, factor: float) -> None:
        now = self.clock()
        if now - self._narrowed_at < NARROW_COOLDOWN_S or self.running > self.slots:
            return  # cut moments ago, or the last cut hasn't taken effect yet
        self._narrowed_at = now
        self._slow_start = False
        self._width = narrowed(self._width, self.running, factor)
