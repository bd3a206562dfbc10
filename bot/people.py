"""Names of the people in a workspace, looked up once each (``users.info``)."""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class People:
    def __init__(self, slack: AsyncWebClient) -> None:
        self.slack = slack
        self._names: dict[str, str] = {}

    async def name(self, user_id: str) -> str:
        """Display name, else real name, else handle; "" if Slack won't say."""
        if user_id not in self._names:
            try:
                user = (await self.slack.users_info(user=user_id)).get("user") or {}
            except SlackApiError as error:
                log.info("users.info %s failed: %s", user_id, error.response.get("error"))
                return ""
            profile = user.get("profile") or {}
            self._names[user_id] = str(
                profile.get("display_name") or profile.get("real_name") or user.get("name") or ""
            )
        return self._names[user_id]

    async def names_in(self, text: str, *, skip: str | None = None) -> dict[str, str]:
        """Names of the people ``text`` mentions (except ``skip``, the bot itself)."""
        names: dict[str, str] = {}
        for user_id in set(_MENTION.findall(text)) - {skip}:
            name = await self.name(user_id)
            if name:
                names[user_id] = name
        return names
