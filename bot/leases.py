"""Leases: which process carries out a run, and which holds a thread, shared through the database.

Every process has an owner id, ``<host>:<pid>:<random>``, made when its store is created. A run
it admits or takes over carries that id and a lease (``ANALYST_LEASE_S``) the process renews
while it lives; a thread's lock (one analysis at a time per thread) is a lease row too. Another
process takes a run or a lock only once its lease has expired — or at once when the owner is a
process on the same host that no longer exists (a crash before a restart on one machine) — by
one compare-and-set in the database, so exactly one of several racing processes wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)

#: How often a process waiting for a thread another process holds looks again (seconds). A
#: release in this process wakes its waiters at once (the in-process lock under the row).
THREAD_LOCK_POLL_S = 0.25

#: The owner ids of stores open in this process (a store of this pid that isn't open is gone).
_OPEN_HERE: set[str] = set()


def make_owner() -> str:
    """A new owner id for this process: ``<host>:<pid>:<random>``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def opened(owner: str) -> None:
    _OPEN_HERE.add(owner)


def closed(owner: str) -> None:
    _OPEN_HERE.discard(owner)


def renew_every(lease_s: float) -> float:
    """How often the lease loop runs: a third of the lease, at most every second."""
    return min(lease_s / 3, 1.0)


def owner_is_gone(owner: str | None) -> bool:
    """True if ``owner`` was a process on this host that has exited (or a store of this process
    that was closed). Owners on other hosts, or not parseable, are never presumed gone: only
    their lease's expiry frees what they hold."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _OPEN_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process with that id exists (another user's)
        return False
    return False


def takeable(owner: str | None, lease_until: str | None, now: str) -> bool:
    """Whether a run or lock with this owner and lease may be taken by another process at ``now``."""
    return owner is None or lease_until is None or lease_until < now or owner_is_gone(owner)


class ThreadLocks:
    """One analysis at a time per thread, across processes: an in-process lock per thread (so
    this process's waiters wake the moment it is released) over a lease row in the database
    (so another process's waiters find it held, and poll until it is released or expires)."""

    def __init__(self, store: Store, lease_s: float) -> None:
        self.store = store
        self.lease_s = lease_s
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def hold(self, key: str, *, run_id: int | None = None) -> AsyncIterator[None]:
        local = self._local.get(key)
        if local is None:
            local = self._local[key] = asyncio.Lock()
        async with local:
            await self._acquire(key, run_id)
            try:
                yield
            finally:
                await asyncio.shield(self.store.release_thread_lock(key))

    async def _acquire(self, key: str, run_id: int | None) -> None:
        told = False
        while True:
            if await self.store.take_thread_lock(key, run_id=run_id, lease_s=self.lease_s):
                return
            holder = await self.store.thread_lock_holder(key)
            if owner_is_gone(holder) and await self.store.take_thread_lock(
                key, run_id=run_id, lease_s=self.lease_s, gone_owner=holder
            ):
                return
            if not told:
                log.info("waiting for thread %s: another process is analysing in it (%s)", key, holder)
                told = True
            await asyncio.sleep(THREAD_LOCK_POLL_S)
