"""``app_mention``: someone @mentions the bot, usually with a file and a question."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.service import AnalystService
from bot.slack_payloads import request_from_mention


def register(app: AsyncApp, service: AnalystService) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        request = request_from_mention(
            event,
            team_id=context.team_id or str(body.get("team_id", "")),
            bot_user_id=context.bot_user_id,
            event_id=body.get("event_id"),
        )
        if request is not None:
            service.submit(request)
