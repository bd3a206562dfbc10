"""Retention: files deleted from the Files API after their TTL, history after its days, and
everything of one person's on request (`/analyze forget`, :func:`forget_user`).

Driven entirely from the ``files`` and ``threads`` tables, so it survives restarts: a
sweep after a restart picks up whatever the last process left. Idempotent: a file that
is already gone at Anthropic is simply recorded as deleted. Several processes may sweep one
database at once: each file is claimed in the database before it is deleted, so exactly one of
them deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anthropic

from bot.files_api import FilesApi
from bot.settings import Settings
from bot.store import ConversationStore, Store, utc_iso

log = logging.getLogger(__name__)

EVENT_KEYS_DAYS = 7.0  # how long dedupe keys are kept (Slack retries within minutes)
DELETE_CLAIM_STALE_S = 300  # a sweep's claim on deleting one file (one API call) is stale after this
STALE_CLAIMS_DAYS = 1.0  # claims left by a crashed process are forgotten after this


@dataclass(frozen=True)
class SweepReport:
    files_deleted: int = 0
    files_already_gone: int = 0
    files_failed: int = 0
    conversations_deleted: int = 0


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        conversations: ConversationStore,
        files_api: FilesApi,
        *,
        on_sweep: Callable[[SweepReport], None] | None = None,
    ) -> None:
        self.on_sweep = on_sweep  # told of every sweep's report (bot.metrics)
        self.settings = settings
        self.store = store
        self.conversations = conversations
        self.files_api = files_api
        self.sweeps = 0
        self.swept = asyncio.Event()  # set after every sweep (for whoever wants to know)

    async def sweep_once(self) -> SweepReport:
        now = self.store.clock()
        outcomes: Counter[str] = Counter()
        for row in await self.store.files_created_before(utc_iso(now - self.settings.file_ttl_hours * 3600)):
            outcome = await self._delete_claimed(row["id"])
            if outcome is not None:
                outcomes[outcome] += 1
        deleted, gone, failed = outcomes["deleted"], outcomes["gone"], outcomes["failed"]
        conversations = await self.conversations.delete_idle_since(utc_iso(now - self.settings.history_days * 86400))
        await self.store.prune(
            events_before=utc_iso(now - EVENT_KEYS_DAYS * 86400),
            shares_before=utc_iso(now - self.settings.recent_files_hours * 3600),
            posts_before=utc_iso(now - self.settings.history_days * 86400),
            claims_before=utc_iso(now - STALE_CLAIMS_DAYS * 86400),
        )
        report = SweepReport(deleted, gone, failed, conversations)
        if deleted or gone or failed or conversations:
            log.info("retention sweep: %s", report)
        if self.on_sweep is not None:
            self.on_sweep(report)
        self.sweeps += 1
        self.swept.set()
        return report

    async def _delete_claimed(self, file_id: str) -> Literal["deleted", "gone", "failed"] | None:
        """Delete the file at Anthropic if this process wins its claim and it is still live; None
        when another process is deleting it, or already has (several replicas sweep at once)."""
        key = f"delete:{file_id}"
        if not await self.store.take_claim(key, stale_after=DELETE_CLAIM_STALE_S):
            return None
        try:
            if not await self.store.file_is_live(file_id):
                return None
            return await self.files_api.delete(file_id)
        finally:
            await self.store.release_claim(key)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``ANALYST_SWEEP_INTERVAL_S`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.sweep_once()
            except (anthropic.APIError, OSError) as error:
                log.warning("retention sweep failed; will try again: %r", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.sweep_interval_s)


async def forget_user(store: Store, conversations: ConversationStore, files_api: FilesApi, user_id: str) -> str:
    """Delete the person's files at Anthropic and their conversations; say what went."""
    deleted_uploads = deleted_outputs = failed = 0
    for row in await store.live_files_of_user(user_id):
        if await files_api.delete(row["id"]) == "failed":
            failed += 1
            continue
        if row["origin"] == "upload":
            deleted_uploads += 1
        else:
            deleted_outputs += 1
    forgotten = await conversations.delete_for_user(user_id)
    parts = [
        f"{deleted_uploads} file{'s' if deleted_uploads != 1 else ''} you shared",
        f"{deleted_outputs} file{'s' if deleted_outputs != 1 else ''} your analyses produced",
    ]
    text = (
        f"Deleted from Anthropic's Files API: {parts[0]} and {parts[1]}. "
        f"Forgot the history of {forgotten} conversation{'s' if forgotten != 1 else ''} you started."
    )
    if failed:
        text += f" {failed} file{'s' if failed != 1 else ''} could not be deleted just now; run this again later."
    return text + " Messages already posted in Slack stay; delete them in Slack if you need to."
