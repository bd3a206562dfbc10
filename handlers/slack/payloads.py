"""Slack event payloads → :class:`AnalysisRequest`. Pure functions, no Bolt.

A mention sent together with a file reaches the bot as an ``app_mention`` event, as a
``message`` event with subtype ``file_share``, or as both: each of them maps to the same
request (same channel and ts), and the service runs it once.
"""

from __future__ import annotations

from typing import Any

from bot.requests import AnalysisRequest, Share, SharedFile
from bot.sanitize import mentions_user
from bot.schema import RunSource


def is_from_a_bot(event: dict[str, Any], bot_user_id: str | None = None) -> bool:
    """Messages from this bot or any other bot are never analysed."""
    return bool(
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") == "bot_message"
        or (bot_user_id and event.get("user") == bot_user_id)
    )


def files_of(event: dict[str, Any]) -> tuple[SharedFile, ...]:
    """The files a message carries. Slack delivers a message's files only to conversations
    the message is in, so each is shared in the event's channel (the file rule relies on it)."""
    channel = event.get("channel")
    here = (str(channel),) if channel else ()
    return tuple(
        SharedFile.from_payload(f, shared_in=here)
        for f in event.get("files") or ()
        if isinstance(f, dict) and f.get("id")
    )


def _request(event: dict[str, Any], *, team_id: str, source: RunSource, event_id: str | None) -> AnalysisRequest | None:
    user = event.get("user")
    channel = event.get("channel")
    ts = event.get("ts")
    if not (user and channel and ts):
        return None
    user_team = event.get("user_team") or (event.get("user_profile") or {}).get("team") or event.get("team")
    return AnalysisRequest(
        team_id=team_id or str(event.get("team") or ""),
        channel_id=str(channel),
        user_id=str(user),
        message_ts=str(ts),
        thread_ts=str(event.get("thread_ts") or ts),
        text=str(event.get("text") or ""),
        files=files_of(event),
        source=source,
        event_id=event_id,
        user_team=str(user_team) if user_team else None,
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
    """A ``message`` event → request: anything a person sends the bot in a DM, or a file
    share in a channel that mentions the bot.

    Other channel messages are not for the bot (mentions arrive as ``app_mention``).
    """
    if is_from_a_bot(event, bot_user_id) or not bot_user_id:
        return None
    subtype = event.get("subtype")
    if subtype not in (None, "file_share"):
        return None
    if event.get("channel_type") == "im":
        return _request(event, team_id=team_id, source="dm", event_id=event_id)
    if subtype != "file_share" or not mentions_user(str(event.get("text") or ""), bot_user_id):
        return None
    return _request(event, team_id=team_id, source="mention", event_id=event_id)


def request_from_assistant_message(
    event: dict[str, Any], *, team_id: str, bot_user_id: str | None, event_id: str | None = None
) -> AnalysisRequest | None:
    """A person's message in an assistant-pane thread → request."""
    if is_from_a_bot(event, bot_user_id) or event.get("subtype") not in (None, "file_share"):
        return None
    return _request(event, team_id=team_id, source="assistant", event_id=event_id)


def shares_in_message(event: dict[str, Any], *, team_id: str, bot_user_id: str | None) -> list[Share]:
    """The files a person shared with a ``message`` event (subtype ``file_share``)."""
    if event.get("subtype") != "file_share" or is_from_a_bot(event, bot_user_id):
        return []
    user, channel = event.get("user"), event.get("channel")
    if not (user and channel):
        return []
    return [Share(team_id, str(channel), str(user), f.id) for f in files_of(event)]


def share_from_file_shared(event: dict[str, Any], *, team_id: str, bot_user_id: str | None) -> Share | None:
    """A ``file_shared`` event → the share it announces."""
    user, channel, file_id = event.get("user_id"), event.get("channel_id"), event.get("file_id")
    if not (user and channel and file_id) or user == bot_user_id:
        return None
    return Share(team_id, str(channel), str(user), str(file_id))
