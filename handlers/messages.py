"""``message`` events: file shares that mention the bot; everything else is acknowledged.

Slack sometimes delivers a mention sent with a file only as a ``message`` event with
subtype ``file_share``; that becomes the same request as the ``app_mention`` would (the
service runs it once). Every other message is acknowledged and ignored, so Slack never
sees an unhandled event.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.service import AnalystService
from bot.slack_payloads import request_from_message


def register(app: AsyncApp, service: AnalystService) -> None:
    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        request = request_from_message(
            event,
            team_id=context.team_id or str(body.get("team_id", "")),
            bot_user_id=context.bot_user_id,
            event_id=body.get("event_id"),
        )
        if request is not None:
            service.submit(request)
