"""``app_mention``: someone @mentions the bot, usually with a file and a question."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.analyst import Analyst
from handlers.listeners.submit import submitting
from handlers.slack.payloads import request_from_mention
from handlers.slack.surface import SlackSurface


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    app.event("app_mention")(submitting(request_from_mention, analyst))
