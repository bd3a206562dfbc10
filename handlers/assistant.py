"""The assistant pane: suggested prompts when a thread opens; each message analysed.

Bolt's ``AsyncAssistant`` routes assistant-thread events here. A person's message (with
or without files) goes to the same service as a mention; its progress shows in the
pane's status line and in the thread.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts

from bot.prompts import ASSISTANT_GREETING, SUGGESTED_PROMPTS
from bot.service import AnalystService
from bot.slack_payloads import request_from_assistant_message
from handlers.submit import submitting


def register(app: AsyncApp, service: AnalystService) -> None:
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def on_thread_started(say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        await say(ASSISTANT_GREETING)
        await set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS))

    assistant.user_message(submitting(request_from_assistant_message, service))

    app.use(assistant)
