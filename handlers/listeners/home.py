"""``app_home_opened``: the person opened the bot's Home tab; publish it, fresh from the store.

Acknowledged at once; the figures are read and the view published in the background.
Opening the Messages tab (``tab: messages``) sends the same event and needs nothing.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.analyst import Analyst
from handlers.slack.home import show_home
from handlers.slack.surface import SlackSurface


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    @app.event("app_home_opened")
    async def on_app_home_opened(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        user_id = str(event.get("user") or "")
        if event.get("tab") != "home" or not user_id:
            return
        team_id = context.team_id or str(body.get("team_id", ""))
        analyst.spawn(
            show_home(analyst, surface.client, user_id=user_id, team_id=team_id, bot_user_id=surface.bot_user_id),
            name=f"home {user_id}",
        )
