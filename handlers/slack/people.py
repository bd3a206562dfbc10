"""The people in a workspace, looked up once each (``users.info``): names, and whether
they belong to another organisation."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class People:
    def __init__(self, slack: AsyncWebClient) -> None:
        self.slack = slack
        self._users: dict[str, dict[str, Any]] = {}

    async def _user(self, user_id: str) -> dict[str, Any] | None:
        if user_id not in self._users:
            try:
                self._users[user_id] = (await self.slack.users_info(user=user_id)).get("user") or {}
            except SlackApiError as error:
                log.info("users.info %s failed: %s", user_id, error.response.get("error"))
                return None
        return self._users[user_id]

    async def name(self, user_id: str) -> str:
        """Display name, else real name, else handle; "" if Slack won't say."""
        user = await self._user(user_id) or {}
        profile = user.get("profile") or {}
        return str(profile.get("display_name") or profile.get("real_name") or user.get("name") or "")

    async def names_in(self, text: str, *, skip: str | None = None) -> dict[str, str]:
        """Names of the people ``text`` mentions (except ``skip``, the bot itself)."""
        names: dict[str, str] = {}
        for user_id in set(_MENTION.findall(text)) - {skip}:
            name = await self.name(user_id)
            if name:
                names[user_id] = name
        return names

    async def is_external(self, user_id: str, *, team_id: str, user_team: str | None = None) -> bool | None:
        """Whether the person belongs to another organisation (a Slack Connect guest).

        The event says so when it carries the person's team; otherwise ``users.info``
        does. None when Slack won't say (the caller then refuses: fail closed).
        """
        if user_team and user_team != team_id:
            return True
        user = await self._user(user_id)
        if user is None:
            return None
        return bool(user.get("is_stranger")) or bool(user.get("team_id") and user.get("team_id") != team_id)
