"""``reaction_added``: :x: on one of the bot's replies deletes that analysis's replies."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.analyst import Analyst
from handlers.slack.surface import SlackSurface


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    @app.event("reaction_added")
    async def on_reaction_added(event: dict[str, Any], context: AsyncBoltContext) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message" or event.get("item_user") != context.bot_user_id:
            return
        analyst.react(
            channel_id=str(item.get("channel", "")),
            ts=str(item.get("ts", "")),
            user_id=str(event.get("user", "")),
            reaction=str(event.get("reaction", "")),
        )

    @app.event("reaction_removed")
    async def on_reaction_removed() -> None:
        """Acknowledged; removing a reaction changes nothing."""
