"""Slack event payloads → :class:`AnalysisRequest`. Pure functions, no Bolt.

A mention sent together with a file reaches the bot as an ``app_mention`` event, as a
``message`` event with subtype ``file_share``, or as both: each of them maps to the same
request (same channel and ts), and the service runs it once.
"""

from __future__ import annotations

from typing import Any

from bot.requests import AnalysisRequest, SlackFile
from bot.sanitize import mentions_user

# Message subtypes that are edits, deletions, joins and the like: never questions.
_IGNORED_SUBTYPES = frozenset(
    {
        "bot_message",
        "message_changed",
        "message_deleted",
        "message_replied",
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "thread_broadcast",
        "tombstone",
        "ekm_access_denied",
        "assistant_app_thread",
    }
)


def is_from_a_bot(event: dict[str, Any], bot_user_id: str | None = None) -> bool:
    """Messages from this bot or any other bot are never analysed."""
    return bool(
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") == "bot_message"
        or (bot_user_id and event.get("user") == bot_user_id)
    )


def files_of(event: dict[str, Any]) -> tuple[SlackFile, ...]:
    return tuple(SlackFile.from_payload(f) for f in event.get("files") or () if isinstance(f, dict) and f.get("id"))


def _request(event: dict[str, Any], *, team_id: str, source: str, event_id: str | None) -> AnalysisRequest | None:
    user = event.get("user")
    channel = event.get("channel")
    ts = event.get("ts")
    if not (user and channel and ts):
        return None
    return AnalysisRequest(
        team_id=str(event.get("team") or team_id),
        channel_id=str(channel),
        user_id=str(user),
        message_ts=str(ts),
        thread_ts=str(event.get("thread_ts") or ts),
        text=str(event.get("text") or ""),
        files=files_of(event),
        source=source,
        event_id=event_id,
    )


def request_from_mention(
    event: dict[str, Any], *, team_id: str, bot_user_id: str | None, event_id: str | None = None
) -> AnalysisRequest | None:
    """An ``app_mention`` event → request (None for a bot's message)."""
    if is_from_a_bot(event, bot_user_id):
        return None
    return _request(event, team_id=team_id, source="mention", event_id=event_id)


def request_from_message(
    event: dict[str, Any], *, team_id: str, bot_user_id: str | None, event_id: str | None = None
) -> AnalysisRequest | None:
    """A ``message`` event → request, when it is a file share that mentions the bot.

    Plain channel messages are not for the bot (mentions arrive as ``app_mention``).
    """
    if is_from_a_bot(event, bot_user_id) or not bot_user_id:
        return None
    subtype = event.get("subtype")
    if subtype in _IGNORED_SUBTYPES or subtype != "file_share":
        return None
    if not mentions_user(str(event.get("text") or ""), bot_user_id):
        return None
    return _request(event, team_id=team_id, source="mention", event_id=event_id)
