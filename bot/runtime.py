"""Opens and closes everything a running bot needs: store, clients, HTTP session, service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

from bot.clients import anthropic_client, slack_client
from bot.service import AnalystService
from bot.settings import Settings
from bot.store import Store

DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)


@asynccontextmanager
async def open_service(
    settings: Settings, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[AnalystService]:
    """An :class:`AnalystService` ready for requests; everything is closed on exit."""
    async with (
        Store(settings.db_path, clock=clock) as store,
        aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as http,
    ):
        slack = slack_client(settings)
        claude = anthropic_client(settings)
        service = AnalystService(settings, store, slack, claude, http)
        try:
            yield service
        finally:
            await claude.close()
