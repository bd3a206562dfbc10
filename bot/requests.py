"""What a person asked for, independent of how the request reached the bot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.schema import RunSource


@dataclass(frozen=True)
class SharedFile:
    """A file someone shared, as far as the surface told us about it (the fields follow
    Slack's file object, the one surface today)."""

    id: str
    name: str = ""
    mimetype: str = ""
    filetype: str = ""
    size: int | None = None
    url_private_download: str | None = None
    owner: str = ""  # who uploaded it (the file object's ``user``)
    # Conversations the file is known to be shared in: the channel of the message that carried
    # it, and the ``shares``/``channels``/``groups``/``ims`` of its ``files.info``.
    shared_in: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether we know enough to download it without ``files.info``."""
        return bool(self.name and self.url_private_download and self.size is not None)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], *, shared_in: tuple[str, ...] = ()) -> SharedFile:
        """A file object as Slack sends it (in an event, or from ``files.info``).

        ``shared_in`` adds conversations known from elsewhere: the channel of the message
        that carried the file in an event, whose file objects don't list their shares.
        """
        size = payload.get("size")
        return cls(
            id=str(payload["id"]),
            name=str(payload.get("name") or payload.get("title") or ""),
            mimetype=str(payload.get("mimetype") or ""),
            filetype=str(payload.get("filetype") or ""),
            size=int(size) if isinstance(size, int | float) else None,
            url_private_download=payload.get("url_private_download") or payload.get("url_private"),
            owner=str(payload.get("user") or ""),
            shared_in=tuple(dict.fromkeys((*shared_in, *conversations_sharing(payload)))),
        )


def conversations_sharing(file: dict[str, Any]) -> list[str]:
    """Every conversation a Slack file object says the file is shared in.

    Slack's file object (docs: api.slack.com/types/file) lists them twice: ``shares``,
    ``{"public": {channel: [...]}, "private": {channel: [...]}}``, and the older flat
    ``channels`` (public), ``groups`` (private) and ``ims`` (DMs). Both are read.
    """
    found: list[str] = []
    shares = file.get("shares")
    if isinstance(shares, dict):
        for scope in ("public", "private"):
            by_channel = shares.get(scope)
            if isinstance(by_channel, dict):
                found.extend(str(channel) for channel in by_channel)
    for key in ("channels", "groups", "ims"):
        listed = file.get(key)
        if isinstance(listed, list):
            found.extend(str(channel) for channel in listed if channel)
    return found


@dataclass(frozen=True)
class AnalysisRequest:
    """One question for the analyst, with the files that came with it.

    ``message_ts`` is the message that asked; ``thread_ts`` is the thread every reply goes
    into (the message itself, unless it was already inside a thread).
    """

    team_id: str
    channel_id: str
    user_id: str
    message_ts: str
    thread_ts: str
    text: str
    files: tuple[SharedFile, ...] = ()
    source: RunSource = "mention"
    event_id: str | None = None
    user_team: str | None = None  # the person's own workspace (differs for Slack Connect guests)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        """Everything needed to run the request again (after a restart)."""
        data = asdict(self)
        data.pop("extra", None)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> AnalysisRequest:
        data = json.loads(text)
        data["files"] = tuple(
            SharedFile(**{**f, "shared_in": tuple(f.get("shared_in") or ())}) for f in data.get("files") or ()
        )
        return cls(**data)

    @property
    def dedupe_key(self) -> str:
        """One analysis per Slack message, however many events announce it."""
        return f"message:{self.channel_id}:{self.message_ts}"


@dataclass(frozen=True)
class Share:
    """A person shared a file in a channel (remembered for ``/analyze`` without a link)."""

    team_id: str
    channel_id: str
    user_id: str
    file_id: str
