"""``message`` events: DMs to the bot, file shares that mention it, and file shares to remember.

Slack sometimes delivers a mention sent with a file only as a ``message`` event with
subtype ``file_share``; that becomes the same request as the ``app_mention`` would (the
analyst runs it once). Anything a person sends the bot in a DM is a question. File
shares in channels are remembered so ``/analyze`` can find "the file I just shared".
Every other message is acknowledged and ignored, so Slack never sees an unhandled event.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.analyst import Analyst
from handlers.listeners.submit import submitting
from handlers.slack.payloads import request_from_message, shares_in_message
from handlers.slack.surface import SlackSurface


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    submit = submitting(request_from_message, analyst)

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        team_id = context.team_id or str(body.get("team_id", ""))
        analyst.note_shares(shares_in_message(event, team_id=team_id, bot_user_id=context.bot_user_id))
        await submit(event, body, context)
