"""Interactions with the bot's messages (``block_actions``): acknowledged, whatever they are.

Slack shows the person an error when an interaction is not answered with HTTP 200 within
3 seconds (docs: interactivity/handling-user-interaction — "you must send an
acknowledgement response"); Bolt answers 404 to an interaction no listener matches. The
bot acts on no interaction yet, so every action is acknowledged here. Registered last:
a listener for specific actions registered before it handles those instead.
"""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.analyst import Analyst
from handlers.slack.surface import SlackSurface

EVERY_ACTION = re.compile(".*")


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    @app.action(EVERY_ACTION)
    async def acknowledge(ack: AsyncAck) -> None:
        await ack()
