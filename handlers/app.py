"""Builds the Bolt app: the Slack edge, with each listener module registered on it."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp

from bot.analyst import Analyst
from bot.settings import Settings
from handlers.listeners import actions, assistant, commands, files, home, mentions, messages, reactions
from handlers.slack.surface import SlackSurface

# The assistant middleware goes first: it claims assistant-thread messages before `message`;
# the catch-all acknowledgement of interactions goes last.
LISTENER_MODULES = (assistant, mentions, messages, files, commands, reactions, home, actions)


def create_app(settings: Settings, analyst: Analyst, surface: SlackSurface) -> AsyncApp:
    """An AsyncApp whose listeners hand requests to ``analyst`` and return at once."""
    verify = settings.slack_signing_secret is not None
    app = AsyncApp(
        client=surface.client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=verify,
        logger=logging.getLogger("slack_bolt"),
    )
    for module in LISTENER_MODULES:
        module.register(app, analyst, surface)
    return app
