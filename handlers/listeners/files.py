"""``file_shared``: remembered, so ``/analyze`` can use the file a person just shared."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.analyst import Analyst
from handlers.slack.payloads import share_from_file_shared
from handlers.slack.surface import SlackSurface


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    @app.event("file_shared")
    async def on_file_shared(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        share = share_from_file_shared(
            event, team_id=context.team_id or str(body.get("team_id", "")), bot_user_id=context.bot_user_id
        )
        if share is not None:
            analyst.note_shares([share])
