"""The assistant pane: suggested prompts when a thread opens; each message analysed.

Bolt's ``AsyncAssistant`` routes assistant-thread events here. A person's message (with
or without files) goes to the same analyst as a mention; its progress shows in the
pane's status line and in the thread.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts

from bot.analyst import Analyst
from bot.prompts import ASSISTANT_GREETING, SUGGESTED_PROMPTS
from handlers.listeners.submit import submitting
from handlers.slack.payloads import request_from_assistant_message
from handlers.slack.surface import SlackSurface


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def on_thread_started(say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        await say(ASSISTANT_GREETING)
        await set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS))

    assistant.user_message(submitting(request_from_assistant_message, analyst))

    app.use(assistant)
