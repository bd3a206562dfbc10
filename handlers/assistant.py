"""The assistant pane: suggested prompts when a thread opens; each message analysed.

Bolt's ``AsyncAssistant`` routes assistant-thread events here. A person's message (with
or without files) goes to the same service as a mention; its progress shows in the
pane's status line and in the thread.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant, AsyncBoltContext
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts

from bot.prompts import ASSISTANT_GREETING, SUGGESTED_PROMPTS
from bot.service import AnalystService
from bot.slack_payloads import request_from_assistant_message


def register(app: AsyncApp, service: AnalystService) -> None:
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def on_thread_started(say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        await say(ASSISTANT_GREETING)
        await set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS))

    @assistant.user_message
    async def on_user_message(payload: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        request = request_from_assistant_message(
            payload,
            team_id=context.team_id or str(body.get("team_id", "")),
            bot_user_id=context.bot_user_id,
            event_id=body.get("event_id"),
        )
        if request is not None:
            service.submit(request)

    app.use(assistant)
