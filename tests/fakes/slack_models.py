"""The state of the fake Slack, as plain dataclasses a test can read.

Everything here is data: who exists, which conversations there are, what was posted,
which files are hosted, and the records of what reached the fake (API calls, downloads,
uploads, response_url posts). The behaviour lives in ``slack_workspace`` (queries and
rendering) and ``slack_web_api`` (the Web API methods).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

JSON = dict[str, Any]

#: 2025-11-26 00:00:00 UTC, the second every fake timestamp counts from.
BASE_EPOCH = 1_764_115_200

TASK_STATUSES = ("pending", "in_progress", "complete", "error")

#: ``pretty_type`` of snippets whose name is not just the capitalised type (real payloads)
SNIPPET_PRETTY_TYPES = {"text": "Plain Text"}


class TsClock:
    """Hands out unique, strictly increasing Slack timestamps: "1764115200.000100", …"""

    def __init__(self, start: int = BASE_EPOCH) -> None:
        self._micros = start * 1_000_000

    def next(self) -> str:
        self._micros += 100
        seconds, micros = divmod(self._micros, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def now_seconds(self) -> int:
        """The whole second of the latest timestamp (used for ``created`` fields)."""
        return self._micros // 1_000_000


def ts_key(ts: str) -> tuple[int, int]:
    """A Slack timestamp as a sortable (seconds, microseconds) pair (floats lose digits)."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds), int(fraction.ljust(6, "0")[:6] or 0)


# --------------------------------------------------------------------------- people


GuestKind = Literal["multi_channel", "single_channel"]


@dataclass
class User:
    """A member of the workspace (or, with a different ``team_id``, a Slack Connect user).

    ``guest`` makes a guest account: Slack marks multi-channel guests ``is_restricted``
    and single-channel guests ``is_restricted`` and ``is_ultra_restricted``. An
    ``enterprise_id`` (an Enterprise Grid org) adds ``enterprise_user`` to ``users.info``.
    """

    id: str
    name: str
    team_id: str
    is_bot: bool = False
    real_name: str = ""
    display_name: str = ""
    bot_id: str | None = None
    guest: GuestKind | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None

    @property
    def is_restricted(self) -> bool:
        return self.guest is not None

    @property
    def is_ultra_restricted(self) -> bool:
        return self.guest == "single_channel"

    def to_api(self, *, is_stranger: bool) -> JSON:
        """The ``user`` object of ``users.info``."""
        real_name = self.real_name or self.name.capitalize()
        profile: JSON = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": self.display_name or self.name,
            "display_name_normalized": self.display_name or self.name,
            "team": self.team_id,
            "image_48": f"https://avatars.example/{self.id}_48.png",
        }
        if self.bot_id:
            profile["bot_id"] = self.bot_id
        user: JSON = {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": False,
            "real_name": real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": BASE_EPOCH,
        }
        if self.enterprise_id:
            user["enterprise_user"] = self._enterprise_user()
        if is_stranger:
            user["is_stranger"] = True
        return user

    def event_profile(self) -> JSON:
        """The ``user_profile`` Slack embeds in the message events of a person from another
        organisation (the bot cannot assume it can look them up): name fields, avatar,
        their ``team`` and guest flags, as captured payloads show it."""
        real_name = self.real_name or self.name.capitalize()
        return {
            "avatar_hash": hashlib.sha1(self.id.encode()).hexdigest()[:12],
            "image_72": f"https://avatars.example/{self.id}_72.png",
            "first_name": real_name.split(" ")[0],
            "real_name": real_name,
            "display_name": self.display_name or self.name,
            "team": self.team_id,
            "name": self.name,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
        }

    def _enterprise_user(self) -> JSON:
        return {
            "id": self.id,
            "enterprise_id": self.enterprise_id,
            "enterprise_name": self.enterprise_name or "",
            "is_admin": False,
            "is_owner": False,
            "teams": [self.team_id],
        }


@dataclass
class Channel:
    """A conversation: public or private channel, or a DM (``is_im``, id starting with "D")."""

    id: str
    name: str
    is_im: bool = False
    is_private: bool = False
    is_ext_shared: bool = False
    members: set[str] = field(default_factory=set)
    im_user: str | None = None  # the person on the other side of a DM

    @property
    def channel_type(self) -> Literal["im", "group", "channel"]:
        """The ``channel_type`` of message events in this conversation."""
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"


# --------------------------------------------------------------------------- messages


@dataclass
class Edit:
    """One ``chat.update`` of a message: what it said before and after, and when."""

    at: str
    old_text: str
    old_blocks: list[JSON] | None
    new_text: str
    new_blocks: list[JSON] | None


@dataclass
class StreamTask:
    """A task card of a streamed message: its latest state and every update it received."""

    id: str
    title: str
    status: str
    details: str | None = None
    output: str | None = None
    sources: list[JSON] = field(default_factory=list)  # url source elements: the pages it used
    history: list[JSON] = field(default_factory=list)


@dataclass
class StreamState:
    """What ``chat.startStream`` / ``appendStream`` / ``stopStream`` built up on a message.

    ``segments`` keeps the order things appeared in: ``("text", markdown)``,
    ``("task", task_id)`` (where the task card first appeared) and ``("blocks", json)``.
    """

    recipient_user_id: str | None = None
    recipient_team_id: str | None = None
    task_display_mode: str = "timeline"
    markdown: str = ""
    tasks: dict[str, StreamTask] = field(default_factory=dict)
    plan_title: str | None = None
    final_blocks: list[JSON] | None = None
    chunks: list[JSON] = field(default_factory=list)  # every chunk received, in order
    segments: list[tuple[str, Any]] = field(default_factory=list)
    streaming: bool = True
    stopped_by: Literal["app", "timeout"] | None = None
    started_at: float = 0.0  # ``Workspace.seconds`` at chat.startStream
    #: a ``chat.update`` replaced what the stream showed (the message reads as its new text/blocks)
    replaced: bool = False

    @property
    def state(self) -> Literal["streaming", "stopped"]:
        return "streaming" if self.streaming else "stopped"


@dataclass
class Message:
    """A message in a conversation, by a person or by the bot.

    Deleted messages keep their content (``deleted`` is set) so a test can still inspect
    them; the thread views leave them out.
    """

    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    team: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    blocks: list[JSON] | None = None
    attachments: list[JSON] | None = None
    files: list[JSON] = field(default_factory=list)
    upload: bool = False
    client_msg_id: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    deleted: bool = False
    metadata: JSON | None = None
    stream: StreamState | None = None
    reply_broadcast: bool = False
    #: the ``thread_ts`` the poster asked for; differs from ``thread_ts`` when Slack
    #: posted the reply at the channel root because that thread did not exist.
    requested_thread_ts: str | None = None
    options: JSON = field(default_factory=dict)  # unfurl_links, unfurl_media, mrkdwn, …
    #: on the root of an assistant thread once titled: ``{title, title_blocks, artifacts}``
    assistant_app_thread: JSON | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def by_bot(self) -> bool:
        return self.bot_id is not None

    def to_api(self) -> JSON:
        """The message as the Web API returns it (without thread counters)."""
        if self.deleted:
            return self._tombstone()
        body: JSON = {"type": "message", "ts": self.ts, "text": self.text}
        if self.subtype:
            body["subtype"] = self.subtype
        if self.user:
            body["user"] = self.user
        if self.team:
            body["team"] = self.team
        if self.bot_id:
            body["bot_id"] = self.bot_id
            body["app_id"] = self.app_id
            body["bot_profile"] = {"id": self.bot_id, "app_id": self.app_id, "deleted": False, "team_id": self.team}
        if self.client_msg_id:
            body["client_msg_id"] = self.client_msg_id
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.attachments:
            body["attachments"] = self.attachments
        if self.files:
            body.update(files=self.files, upload=self.upload, display_as_bot=False)
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        if self.edits:
            body["edited"] = {"user": self.user, "ts": self.edits[-1].at}
        if self.reactions:
            body["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)} for name, users in self.reactions.items()
            ]
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.assistant_app_thread is not None:
            body["assistant_app_thread"] = self.assistant_app_thread
        return body

    def _tombstone(self) -> JSON:
        return {
            "type": "message",
            "subtype": "tombstone",
            "text": "This message was deleted.",
            "user": "USLACKBOT",
            "hidden": True,
            "ts": self.ts,
            "thread_ts": self.thread_ts or self.ts,
        }


@dataclass
class Ephemeral:
    """A message only ``user`` sees.

    ``source`` says where it came from: ``chat.postEphemeral``, ``response_url``,
    ``command`` (the immediate answer to a slash command) or ``slackbot`` (Slack's own
    error notice when a slash command failed). A ``response_url`` may replace or delete
    it: ``edits`` keeps what it said before, ``deleted`` hides it.
    """

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[JSON] | None = None
    thread_ts: str | None = None
    source: str = "chat.postEphemeral"
    deleted: bool = False
    edits: list[Edit] = field(default_factory=list)


# --------------------------------------------------------------------------- files


@dataclass
class SlackFile:
    """A file Slack hosts: shared by a person (``host_file``) or uploaded by the bot.

    ``state`` follows the external upload flow: ``pending`` (URL issued), ``uploaded``
    (bytes received), ``complete`` (``files.completeUploadExternal`` done, or hosted by a
    test); ``deleted`` files are gone. An upload with ``snippet_type`` is a snippet
    (``mode: snippet``, ``filetype`` the snippet type, ``editable``), as text snippets
    show in real payloads.
    """

    id: str
    name: str
    title: str
    mimetype: str
    filetype: str
    user: str
    user_team: str
    created: int
    content: bytes | None = None
    claimed_size: int | None = None  # what Slack says the size is, when a test lies
    state: Literal["pending", "uploaded", "complete", "deleted"] = "complete"
    expected_length: int | None = None
    upload_ticket: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    shares: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, message ts, channel_type)

    @property
    def size(self) -> int:
        if self.claimed_size is not None:
            return self.claimed_size
        return len(self.content or b"")

    def private_path(self, team_id: str, *, download: bool = False) -> str:
        """The path of ``url_private`` (or ``url_private_download``) on the fake."""
        middle = "/download" if download else ""
        return f"/files-pri/{team_id}-{self.id}{middle}/{quote(self.name, safe='')}"

    def to_api(self, *, base_url: str, team_id: str, team_domain: str) -> JSON:
        """The file object of event payloads and ``files.info``."""
        body: JSON = {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title,
            "mimetype": self.mimetype,
            "filetype": self.filetype,
            "pretty_type": self.filetype.upper(),
            "user": self.user,
            "user_team": self.user_team,
            "editable": False,
            "size": self.size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": any(kind == "channel" for _, _, kind in self.shares),
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": base_url + self.private_path(team_id),
            "url_private_download": base_url + self.private_path(team_id, download=True),
            "permalink": self.permalink(team_domain),
            "permalink_public": f"https://slack-files.com/{team_id}-{self.id}-{self.public_secret}",
            "has_rich_preview": False,
            "file_access": "visible",
            # docs: api.slack.com/types/file — where the file is shared, twice over: ``shares``
            # (public/private, channel → the messages that share it) and the flat lists.
            "shares": self._shares(),
            "channels": self._shared_in("channel"),
            "groups": self._shared_in("group"),
            "ims": self._shared_in("im"),
        }
        if self.alt_txt:
            body["alt_txt"] = self.alt_txt
        if self.snippet_type:
            pretty = SNIPPET_PRETTY_TYPES.get(self.snippet_type, self.snippet_type.capitalize())
            body.update(mode="snippet", filetype=self.snippet_type, pretty_type=pretty, editable=True)
        return body

    def permalink(self, team_domain: str) -> str:
        """``https://<domain>.slack.com/files/<user>/<file id>/<slug>``, the link people paste.

        The slug is the file name lower-cased with anything but letters, digits, ``.``, ``-``
        and ``_`` turned into ``_`` ("Q3 Sales.csv" → ``q3_sales.csv``), as seen in real links.
        """
        return f"https://{team_domain}.slack.com/files/{self.user}/{self.id}/{file_slug(self.name)}"

    @property
    def public_secret(self) -> str:
        """The secret part of ``permalink_public`` (stable per file)."""
        return hashlib.sha1(f"{self.id}/{self.name}".encode()).hexdigest()[:10]

    def _shares(self) -> JSON:
        shares: JSON = {}
        for channel, ts, kind in self.shares:
            scope = "public" if kind == "channel" else "private"
            shares.setdefault(scope, {}).setdefault(channel, []).append({"ts": ts})
        return shares

    def _shared_in(self, kind: str) -> list[str]:
        return sorted({channel for channel, _, channel_kind in self.shares if channel_kind == kind})

    def tombstone(self) -> JSON:
        """What a message that shared this file carries once it is deleted (real payloads:
        ``{"id", "mode": "tombstone"}``, without name, title or URLs)."""
        return {"id": self.id, "mode": "tombstone"}

    def stub(self) -> JSON:
        """The bare file object Slack Connect events carry: fetch the rest with ``files.info``."""
        return {
            "id": self.id,
            "mode": "file_access",
            "file_access": "check_file_info",
            "created": 0,
            "timestamp": 0,
            "user": "",
        }


def file_slug(name: str) -> str:
    """The file-name part of a file's permalink."""
    return re.sub(r"[^a-z0-9._-]", "_", name.lower())


# --------------------------------------------------------------------------- assistant threads


@dataclass
class AssistantThread:
    """An assistant thread: what the bot set on it with ``assistant.threads.*``, and, for a
    thread a person opened in the assistant pane, who opened it and the context they are in.

    ``status`` is what shows now: Slack clears it when the app replies in the thread
    (``cleared_by`` is then that reply's ts) or when the app sets an empty status.
    ``statuses`` keeps every status the app set, in order.
    """

    channel_id: str
    thread_ts: str
    status: str = ""
    loading_messages: list[str] | None = None
    status_history: list[str] = field(default_factory=list)
    prompts: list[JSON] = field(default_factory=list)
    prompts_title: str | None = None
    title: str | None = None
    user_id: str | None = None
    context: JSON = field(default_factory=dict)
    context_history: list[JSON] = field(default_factory=list)
    cleared_by: str | None = None

    @property
    def statuses(self) -> list[str]:
        """Every status the app set, in order ("" for an explicit clear)."""
        return self.status_history

    def set_status(self, status: str, loading_messages: list[str] | None) -> None:
        self.status = status
        self.loading_messages = loading_messages if status else None
        self.status_history.append(status)
        self.cleared_by = None

    def clear_for_reply(self, reply_ts: str) -> None:
        """The app replied in the thread: Slack takes the status away."""
        if self.status:
            self.status = ""
            self.loading_messages = None
            self.cleared_by = reply_ts

    def change_context(self, context: JSON) -> None:
        self.context = context
        self.context_history.append(context)


# --------------------------------------------------------------------------- records


@dataclass
class ApiCall:
    """One Web API request that reached the fake (recorded even when it failed)."""

    method: str
    params: JSON
    token: str | None
    http_status: int = 200
    response: JSON | None = None  # None for HTML/empty fault responses
    connection: object = None  # the client's end of the TCP connection it came over (host, port)

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("error")

    def summary(self) -> str:
        outcome = "ok" if self.ok else f"error={self.error or self.http_status}"
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.method}({args}) -> {outcome}"


@dataclass
class Download:
    """A GET of a hosted file's ``url_private``/``url_private_download``."""

    file_id: str
    path: str
    token: str | None
    authorized: bool
    status: int


@dataclass
class Upload:
    """A POST of file bytes to an upload URL from ``files.getUploadURLExternal``."""

    file_id: str | None
    ticket: str
    received: int
    expected: int | None
    accepted: bool
    reason: str = ""


@dataclass
class FileDeletion:
    """A file that was deleted: by the bot (``files.delete``) or by a person (``delete_file``).

    ``messages`` are the (channel, ts) of the messages that carried it, where it now
    shows as a tombstone.
    """

    file_id: str
    user: str
    via: Literal["files.delete", "person"]
    at: str
    messages: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ResponseUrlPost:
    """A POST to a ``response_url`` the fake handed out (slash command or interaction).

    ``http_status``/``error`` record how the fake answered: 200 and None when Slack took
    it, 404 and ``expired_url`` after five uses or thirty minutes.
    """

    url: str
    payload: JSON
    channel_id: str
    user_id: str
    http_status: int = 200
    error: str | None = None


@dataclass
class CommandReply:
    """What Slack made of the app's immediate answer to a slash command.

    ``http_status`` is the app's HTTP status (0 when no answer came: timeout or no
    connection), ``body`` its raw body and ``payload`` the message it stands for (a JSON
    body, or ``{"text": body}`` for plain text; None for an empty 200). ``shown`` is what
    the person saw: an ``Ephemeral`` (the default), a bot ``Message`` in the channel
    (``response_type: in_channel``, which also shares the typed command as ``echo``), or
    None. ``error`` is the error Slack reported to the person ("operation_timeout", …).
    """

    command: str
    text: str
    user_id: str
    channel_id: str
    response_url: str
    via: Literal["http", "socket"]
    http_status: int
    body: str = ""
    payload: JSON | None = None
    shown: Message | Ephemeral | None = None
    echo: Message | None = None
    error: str | None = None

    @property
    def response_type(self) -> str:
        return str((self.payload or {}).get("response_type") or "ephemeral")


@dataclass
class Fault:
    """A failure ``fail_next`` queued for a method (or for "upload"/"download").

    ``mode`` (uploads only): "drop" closes the connection without an answer, "stall"
    never answers (the client's timeout ends the wait).
    """

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    mode: Literal["answer", "drop", "stall"] = "answer"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
