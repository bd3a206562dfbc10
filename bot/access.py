"""Who may use the analyst, and where. Pure functions.

``ANALYST_ALLOWED_USERS`` and ``ANALYST_ALLOWED_CHANNELS`` (empty = everyone,
everywhere) restrict it; direct messages are governed by the user list only. People
from other organisations (Slack Connect) are refused unless ``ANALYST_ALLOW_EXTERNAL``.
Admins pass the allow-lists (but not the external rule).
"""

from __future__ import annotations

from bot.requests import SharedFile
from bot.settings import Settings

NOT_YOURS_TO_ANALYSE = (
    "I can only analyse files shared in this conversation, or files you uploaded yourself. "
    "Share the file here (or ask its owner to), then ask again."
)


def is_direct_message(channel_id: str) -> bool:
    return channel_id.startswith("D")


def access_refusal(settings: Settings, *, user_id: str, channel_id: str, external: bool | None) -> str | None:
    """Why this person may not use the analyst here, or None if they may.

    ``external`` is None when Slack couldn't say which organisation the person is in.
    """
    if external is None and not settings.allow_external:
        return "I couldn't confirm that you're a member of this workspace just now. Try again in a minute."
    if external and not settings.allow_external:
        return (
            "I can only analyse data for people in this workspace, so I can't help with requests from other "
            "organisations (Slack Connect)."
        )
    if user_id in settings.admins:
        return None
    if settings.allowed_users and user_id not in settings.allowed_users:
        return (
            "The analyst isn't enabled for you yet. Ask whoever runs it in your workspace to add you to its "
            "allowed users."
        )
    if settings.allowed_channels and not is_direct_message(channel_id) and channel_id not in settings.allowed_channels:
        return (
            "The analyst isn't enabled in this channel. Ask in a channel where it is, send it a direct message, "
            "or ask whoever runs it to allow this channel."
        )
    return None


def may_analyse_file(file: SharedFile, *, asker: str, conversation_id: str) -> bool:
    """The rule for every file the bot reads on someone's behalf.

    The bot's token sees every conversation the bot is in, which is more than any one
    person sees; so a file is analysed for ``asker`` in ``conversation_id`` only if they
    uploaded it, or it is shared in that very conversation (where everyone who will read
    the answer can open it too). Guessing or forwarding a file link is never enough.
    Decided from the file's own metadata (``user`` and its shares), so no extra scope.
    """
    return (bool(asker) and file.owner == asker) or conversation_id in file.shared_in
