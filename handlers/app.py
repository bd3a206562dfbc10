"""Builds the Bolt app: the Slack edge, with each listener module registered on it."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.service import AnalystService
from bot.settings import Settings
from handlers import actions, assistant, commands, files, mentions, messages, reactions

# The assistant middleware goes first: it claims assistant-thread messages before `message`;
# the catch-all acknowledgement of interactions goes last.
LISTENER_MODULES = (assistant, mentions, messages, files, commands, reactions, actions)


def create_app(settings: Settings, service: AnalystService, client: AsyncWebClient) -> AsyncApp:
    """An AsyncApp whose listeners hand requests to ``service`` and return at once."""
    verify = settings.slack_signing_secret is not None
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=verify,
        logger=logging.getLogger("slack_bolt"),
    )
    for module in LISTENER_MODULES:
        module.register(app, service)
    return app
