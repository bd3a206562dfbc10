"""``message`` events: file shares that mention the bot; everything else is acknowledged.

Slack sometimes delivers a mention sent with a file only as a ``message`` event with
subtype ``file_share``; that becomes the same request as the ``app_mention`` would (the
service runs it once). Every other message is acknowledged and ignored, so Slack never
sees an unhandled event.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.service import AnalystService
from bot.slack_payloads import request_from_message
from handlers.submit import submitting


def register(app: AsyncApp, service: AnalystService) -> None:
    app.event("message")(submitting(request_from_message, service))
