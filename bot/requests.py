"""What a person asked for, independent of how the request reached the bot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SlackFile:
    """A file shared in Slack, as far as the event told us about it."""

    id: str
    name: str = ""
    mimetype: str = ""
    filetype: str = ""
    size: int | None = None
    url_private_download: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the event carried enough to download it without ``files.info``."""
        return bool(self.name and self.url_private_download and self.size is not None)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SlackFile:
        size = payload.get("size")
        return cls(
            id=str(payload["id"]),
            name=str(payload.get("name") or payload.get("title") or ""),
            mimetype=str(payload.get("mimetype") or ""),
            filetype=str(payload.get("filetype") or ""),
            size=int(size) if isinstance(size, int | float) else None,
            url_private_download=payload.get("url_private_download") or payload.get("url_private"),
        )


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
    files: tuple[SlackFile, ...] = ()
    source: str = "mention"
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
        data["files"] = tuple(SlackFile(**f) for f in data.get("files") or ())
        return cls(**data)

    @property
    def dedupe_key(self) -> str:
        """One analysis per Slack message, however many events announce it."""
        return f"message:{self.channel_id}:{self.message_ts}"
