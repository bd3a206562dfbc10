"""``app_mention``: someone @mentions the bot, usually with a file and a question."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.service import AnalystService
from bot.slack_payloads import request_from_mention
from handlers.submit import submitting


def register(app: AsyncApp, service: AnalystService) -> None:
    app.event("app_mention")(submitting(request_from_mention, service))
