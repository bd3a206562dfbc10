"""What ``/healthz`` reports: the database, the connection to the surface, the limiter."""

from __future__ import annotations

import logging
from typing import Any

from bot.limiter import Limiter
from bot.store import Store

log = logging.getLogger(__name__)


async def database_ok(store: Store) -> bool:
    """True if the database answers a trivial query."""
    unanswered: tuple[type[BaseException], ...] = (*store.database.errors, RuntimeError, OSError)  # Runtime: closed
    try:
        await store.database.fetchone("SELECT 1 AS one")
    except unanswered as error:
        log.warning("health check: the database does not answer: %r", error)
        return False
    return True


async def health(store: Store, limiter: Limiter, *, connected: bool, mode: str) -> tuple[bool, dict[str, Any]]:
    """(ok, the report): ok when the database answers and the surface is connected."""
    database = await database_ok(store)
    ok = database and connected
    report = {
        "ok": ok,
        "database": {"ok": database},
        "slack": {"ok": connected, "mode": mode},
        "limiter": limiter.report(),
    }
    return ok, report
