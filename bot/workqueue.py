"""A process-wide cap on analyses running at once, with a fair queue behind it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager


class WorkQueue:
    """At most ``slots`` holders at a time; the rest wait in arrival order."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def slot(self, on_wait: Callable[[int], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Hold a slot for the block; ``on_wait(position)`` is awaited if we have to queue."""
        if self.running < self.slots and not self._waiting:
            self.running += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(future)
            try:
                if on_wait is not None:
                    await on_wait(len(self._waiting))
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._release()  # we were handed a slot but won't use it
                else:
                    self._waiting.remove(future)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """Hand the slot to the next in line, or free it."""
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.running -= 1
