"""Admission: whether a request becomes a run, as one typed outcome.

In order: the request is claimed (a message announced by two events is analysed once),
the asker checked against the access rules, the question cleaned, and, unless there is
nothing to analyse (a how-to then), a run admitted against the quotas in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

from bot import ledger
from bot.access import access_refusal
from bot.requests import AnalysisRequest
from bot.sanitize import CleanText, clean_question
from bot.settings import Settings
from bot.store import Conversation, ConversationStore, Store, thread_key
from bot.surface import Surface

log = logging.getLogger(__name__)

HOW_TO = (
    "Hi! I'm a data analyst. Share a data file (CSV, Excel, JSON, Parquet, …) in a message that "
    "mentions me, with your question — for example _“@Analyst what drives churn here?”_ — and I'll "
    "run the analysis and post the findings, charts and code in the thread."
)
FOLLOW_UP_HOW_TO = (
    "Ask me a follow-up about this data — for example _“now split that by country”_ — or attach another "
    "file to add it to the conversation."
)


@dataclass(frozen=True)
class Admitted:
    """A run in the ledger, queued."""

    run_id: int
    question: CleanText
    conversation: Conversation | None  # the thread's conversation so far, if any


@dataclass(frozen=True)
class Refused:
    """Not analysed; ``message`` is for the asker alone."""

    message: str
    by: Literal["access", "quota"]
    limit: str | None = None  # the quota's setting, when ``by`` is "quota"


@dataclass(frozen=True)
class Duplicate:
    """Already handled (a second event for the same message, or a redelivery)."""


@dataclass(frozen=True)
class HowTo:
    """Nothing to analyse: ``text`` says how to ask."""

    text: str


Admission = Admitted | Refused | Duplicate | HowTo


class Gate:
    def __init__(self, settings: Settings, store: Store, conversations: ConversationStore, surface: Surface) -> None:
        self.settings = settings
        self.store = store
        self.conversations = conversations
        self.surface = surface

    async def claim(self, request: AnalysisRequest) -> bool:
        """True the first time this request is seen: neither its Slack event id (a retry) nor its
        message (the same mention as an ``app_mention`` and a ``message`` event) was claimed before."""
        if request.event_id is None:
            return await self.store.claim(request.dedupe_key)
        return await self.store.claim(f"event:{request.event_id}", request.dedupe_key)

    async def is_external(self, request: AnalysisRequest) -> bool | None:
        """Whether the asker belongs to another organisation (None: Slack won't say); a lookup
        (``users.info``) the first time a person asks, so callers start it early."""
        surface = self.surface
        return await surface.people.is_external(
            request.user_id, team_id=surface.team_id or request.team_id, user_team=request.user_team
        )

    async def access(
        self, request: AnalysisRequest, *, external: Awaitable[bool | None] | None = None
    ) -> Refused | None:
        """The refusal of a request whose asker or channel the access rules leave out, else None.
        Every way a request becomes a run passes here first, deferred ones included.
        ``external`` is :meth:`is_external` for it, if the caller started it already."""
        refusal = access_refusal(
            self.settings,
            user_id=request.user_id,
            channel_id=request.channel_id,
            external=await (self.is_external(request) if external is None else external),
        )
        if refusal is None:
            return None
        log.info("refused %s from %s in %s: %s", request.dedupe_key, request.user_id, request.channel_id, refusal)
        return Refused(f":no_entry_sign: {refusal}", by="access")

    async def admit(self, request: AnalysisRequest, *, external: Awaitable[bool | None] | None = None) -> Admission:
        """The outcome for a claimed request (the caller holds the thread's lock);
        ``external`` is :meth:`is_external` for it, if the caller started it already."""
        if (refused := await self.access(request, external=external)) is not None:
            return refused
        # The names of people the question mentions (Slack lookups) and the thread's
        # conversation (the database) are fetched together.
        question, conversation = await asyncio.gather(
            self.question(request), self.conversations.get(thread_key(request.channel_id, request.thread_ts))
        )
        if not request.files and not question.text:
            return HowTo(HOW_TO if conversation is None else FOLLOW_UP_HOW_TO)
        run_id, over_quota = await ledger.admit(self.store, self.settings, request, question.text)
        if over_quota is not None:
            log.info("run %s refused: %s", run_id, over_quota.limit)
            return Refused(f":hourglass: {over_quota.message}", by="quota", limit=over_quota.limit)
        return Admitted(run_id, question, conversation)

    async def question(self, request: AnalysisRequest) -> CleanText:
        """The request's text as plain question text (mentions of people by name)."""
        bot_user_id = self.surface.bot_user_id
        return clean_question(
            request.text,
            bot_user_id=bot_user_id,
            user_names=await self.surface.people.names_in(request.text, skip=bot_user_id),
            max_chars=self.settings.max_question_chars,
        )
