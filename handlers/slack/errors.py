"""Slack's failures, in words for the person who asked. Pure functions."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.errors import Problem

SLACK_ERRORS = {
    "ratelimited": ("Slack is rate-limiting the bot. Try again in a minute.", True),
    "not_in_channel": ("I'm not a member of this channel. Invite me with `/invite @Analyst`.", False),
    "channel_not_found": ("I can't see this channel. Invite me with `/invite @Analyst`.", False),
    "file_not_found": ("Slack says that file no longer exists. Share it again.", False),
    "missing_scope": (
        "The bot lacks a Slack permission it needs; ask whoever runs it to reinstall it.",
        False,
    ),
    "invalid_auth": (
        "The bot's Slack token was rejected; ask whoever runs it to check SLACK_BOT_TOKEN.",
        False,
    ),
    "not_authed": ("The bot's Slack token is missing; ask whoever runs it to check SLACK_BOT_TOKEN.", False),
}


def describe_slack_error(error_code: str) -> Problem:
    message, retryable = SLACK_ERRORS.get(
        error_code, (f"Slack returned an error (`{error_code}`). Try again in a minute.", True)
    )
    return Problem(message, retryable, f"slack: {error_code}")


def slack_error_code(error: BaseException) -> str:
    """Slack's error code for a failed call, else a short name for the failure."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or "unknown")
    return type(error).__name__


def describe_slack_failure(error: BaseException) -> Problem | None:
    """A failure of a Slack call or download, for the asker; None when it wasn't Slack's."""
    if isinstance(error, SlackApiError):
        return describe_slack_error(slack_error_code(error))
    if isinstance(error, SlackRequestError):
        return Problem("I couldn't reach Slack just now. Try again in a minute.", True, f"slack: {error!r}")
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        return Problem(
            "I couldn't download the file from Slack (network error). Try again.", True, f"download: {error!r}"
        )
    return None
