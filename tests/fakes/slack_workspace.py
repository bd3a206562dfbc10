"""The workspace the fake Slack serves: people, conversations, messages, files.

``Workspace`` holds the state (dataclasses from ``slack_models``) and answers the
questions both the Web API and the tests ask of it: which message is the root of a
thread, what a thread looks like, what a person reads in a message.
"""

from __future__ import annotations

import itertools
import mimetypes
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Literal

from tests.fakes.slack_blocks import render_blocks
from tests.fakes.slack_models import (
    JSON,
    AssistantThread,
    Channel,
    Ephemeral,
    FileDeletion,
    Message,
    SlackFile,
    StreamState,
    StreamTask,
    TsClock,
    User,
)

TASK_ICONS = {"pending": "○", "in_progress": "◐", "complete": "✓", "error": "✗"}

#: filetype Slack reports for common extensions (where it differs from the extension)
FILETYPES = {"txt": "text", "md": "markdown", "py": "python", "jpeg": "jpg", "yml": "yaml"}
EXTRA_MIMETYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".md": "text/markdown",
}


class Workspace:
    """Everything the fake Slack remembers."""

    def __init__(
        self,
        *,
        team_id: str,
        team_name: str,
        team_domain: str,
        bot_user_id: str,
        bot_id: str,
        bot_name: str,
        app_id: str,
        base_url: Callable[[], str],
        home_tab_enabled: bool = True,
    ) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self._base_url = base_url
        self.clock = TsClock()
        #: Slack's notion of elapsed time in seconds, for what expires (chat streams): tests
        #: move it on with ``FakeSlack.advance``; no real waiting
        self.seconds = 0.0
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[Message]] = {}
        self._by_ts: dict[tuple[str, str], Message] = {}  # (channel, ts) → message: found without a scan
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, SlackFile] = {}
        self.assistant_threads: dict[tuple[str, str], AssistantThread] = {}
        self.file_deletions: list[FileDeletion] = []
        self._file_numbers = itertools.count(1)
        #: whether the installed app's Home tab is on (manifest.yml's features.app_home.home_tab_enabled)
        self.home_tab_enabled = home_tab_enabled
        #: the Home tab each person sees: the view last published for them (``views.publish``)
        self.home_views: dict[str, JSON] = {}
        self._view_numbers = itertools.count(1)

    # ----------------------------------------------------------------- Home tabs

    def publish_home(self, user_id: str, view: JSON) -> JSON:
        """Store ``view`` as ``user_id``'s Home tab; returns the view object Slack answers with
        (docs: reference/methods/views.publish, the response's ``view``). The view keeps its id
        across publishes and gets a new ``hash`` each time."""
        current = self.home_views.get(user_id)
        view_id = current["id"] if current else f"V0HOME{next(self._view_numbers):04d}"
        published = {
            "id": view_id,
            "team_id": self.team_id,
            "type": "home",
            "close": None,
            "submit": None,
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{self.clock.next()}.{view_id}",
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.home_views[user_id] = published
        return published

    # ----------------------------------------------------------------- people & conversations

    def add_user(self, user: User) -> User:
        self.users[user.id] = user
        return user

    def add_channel(self, channel: Channel) -> Channel:
        self.channels[channel.id] = channel
        self.messages.setdefault(channel.id, [])
        return channel

    def is_external(self, user_id: str) -> bool:
        user = self.users.get(user_id)
        return user is not None and user.team_id != self.team_id

    def open_dm(self, user_id: str) -> tuple[Channel, bool]:
        """The bot's DM with a person, created if needed; returns (channel, created).

        A new DM is "D" + the user id without its first letter ("U0ALICE" → "D0ALICE"),
        and is externally shared when the person is from another organisation.
        """
        existing = self.dm_with(user_id)
        if existing is not None:
            return existing, False
        channel_id = f"D{user_id[1:]}"
        while channel_id in self.channels:
            channel_id += "X"
        channel = Channel(
            id=channel_id,
            name="",
            is_im=True,
            is_private=True,
            is_ext_shared=self.is_external(user_id),
            members={user_id, self.bot_user_id},
            im_user=user_id,
        )
        return self.add_channel(channel), True

    def dm_with(self, user_id: str) -> Channel | None:
        """The bot's DM with ``user_id``, if one exists."""
        dms = (c for c in self.channels.values() if c.is_im and c.im_user == user_id)
        return next((c for c in dms if self.bot_user_id in c.members), None)

    def bot_can_read(self, channel: Channel) -> bool:
        """Public channels, and conversations the bot is a member of."""
        return self.bot_user_id in channel.members or not (channel.is_im or channel.is_private)

    def is_stranger(self, user_id: str) -> bool:
        """External, and in no conversation the bot is in (how Slack sets ``is_stranger``)."""
        if not self.is_external(user_id):
            return False
        return not any(user_id in c.members and self.bot_user_id in c.members for c in self.channels.values())

    # ----------------------------------------------------------------- messages

    def add_message(self, message: Message) -> Message:
        """Record a posted message. A reply by the app clears its thread's status, as in Slack."""
        self.messages.setdefault(message.channel, []).append(message)
        self._by_ts.setdefault((message.channel, message.ts), message)
        if message.bot_id == self.bot_id and message.thread_ts:
            thread = self.assistant_threads.get((message.channel, message.thread_ts))
            if thread is not None:
                thread.clear_for_reply(message.ts)
        return message

    def find_message(self, channel: str, ts: str) -> Message | None:
        """The message with ``ts`` in ``channel``, deleted or not."""
        return self._by_ts.get((channel, ts))

    def find_ephemeral(self, channel: str, ts: str) -> Ephemeral | None:
        return next((e for e in self.ephemerals if e.channel == channel and e.ts == ts), None)

    def live_message(self, channel: str, ts: str) -> Message | None:
        message = self.find_message(channel, ts)
        return None if message is None or message.deleted else message

    def thread_root(self, channel: str, ts: str) -> str | None:
        """The root ts of the thread ``ts`` belongs to, or None if no such thread exists.

        A reply's ts leads to its parent. A deleted root still anchors its thread while it
        has live replies (Slack shows "This message was deleted.").
        """
        message = self.find_message(channel, ts)
        if message is None:
            return None
        root = message.thread_ts or message.ts
        if message.deleted and not any(not reply.deleted for reply in self.replies(channel, root)):
            return None
        return root

    def replies(self, channel: str, root_ts: str) -> list[Message]:
        return [m for m in self.messages.get(channel, []) if m.thread_ts == root_ts and m.ts != root_ts]

    def thread(self, channel: str, root_ts: str, *, include_deleted: bool = False) -> list[Message]:
        """Root and replies of a thread, oldest first."""
        found = [m for m in self.messages.get(channel, []) if m.ts == root_ts or m.thread_ts == root_ts]
        return [m for m in found if include_deleted or not m.deleted]

    def top_level(self, channel: str) -> list[Message]:
        """What the channel itself shows: live messages outside threads, plus broadcast replies."""
        return [m for m in self.messages.get(channel, []) if not m.deleted and (not m.is_reply or m.reply_broadcast)]

    def message_api(self, message: Message) -> JSON:
        """A message as the Web API returns it, with thread counters on a thread's root."""
        body = message.to_api()
        if message.is_reply:
            root = self.find_message(message.channel, message.thread_ts or "")
            if root is not None and root.user:
                body["parent_user_id"] = root.user
            return body
        replies = [r for r in self.replies(message.channel, message.ts) if not r.deleted]
        if replies:
            users = list(dict.fromkeys(r.user for r in replies if r.user))
            body.update(
                thread_ts=message.ts,
                reply_count=len(replies),
                reply_users_count=len(users),
                latest_reply=replies[-1].ts,
                reply_users=users,
                is_locked=False,
                subscribed=False,
            )
        return body

    # ----------------------------------------------------------------- files

    def new_file(self, *, name: str, user: str, mimetype: str | None = None, filetype: str | None = None) -> SlackFile:
        guessed_mimetype, guessed_filetype = guess_types(name)
        owner = self.users.get(user)
        created = self.clock.now_seconds()
        return SlackFile(
            id=f"F0{next(self._file_numbers):09d}",
            name=name,
            title=name,
            mimetype=mimetype or guessed_mimetype,
            filetype=filetype or guessed_filetype,
            user=user,
            user_team=owner.team_id if owner else self.team_id,
            created=created,
        )

    def file_api(self, file: SlackFile) -> JSON:
        return file.to_api(base_url=self._base_url(), team_id=self.team_id, team_domain=self.team_domain)

    def bot_can_see_file(self, file: SlackFile) -> bool:
        """Files the bot uploaded or that are shared where it can read; a hosted file not
        shared anywhere yet counts as visible (tests host files before posting them)."""
        if file.user == self.bot_user_id or not file.shares:
            return True
        return any(self.bot_can_read(self.channels[channel]) for channel, _, _ in file.shares)

    def file_by_ticket(self, ticket: str) -> SlackFile | None:
        return next((f for f in self.files.values() if f.upload_ticket == ticket), None)

    def share_file(self, file: SlackFile, message: Message) -> None:
        channel = self.channels[message.channel]
        file.shares.append((channel.id, message.ts, channel.channel_type))

    def delete_file(self, file: SlackFile, *, by: str, via: Literal["files.delete", "person"]) -> FileDeletion:
        """Delete ``file``: ``files.info`` now answers ``file_deleted``, downloads stop, and
        every message that shared it carries the tombstone ``{"id", "mode": "tombstone"}``
        in its place. The messages themselves stay (people read "This file was deleted.").
        """
        file.state = "deleted"
        deletion = FileDeletion(file_id=file.id, user=by, via=via, at=self.clock.next())
        for channel_id, ts, _ in file.shares:
            message = self.find_message(channel_id, ts)
            if message is None:
                continue
            message.files = [file.tombstone() if f.get("id") == file.id else f for f in message.files]
            deletion.messages.append((channel_id, ts))
        self.file_deletions.append(deletion)
        return deletion

    # ----------------------------------------------------------------- assistant threads

    def assistant_thread(self, channel_id: str, thread_ts: str) -> AssistantThread:
        key = (channel_id, thread_ts)
        if key not in self.assistant_threads:
            self.assistant_threads[key] = AssistantThread(channel_id, thread_ts)
        return self.assistant_threads[key]

    # ----------------------------------------------------------------- what a person sees

    def visible_text(self, message: Message | Ephemeral) -> str:
        """What a person reads: the streamed content, else the blocks, else the text; then files.

        Raw Slack markup (``<@U123>``, ``<url|label>``) is left as is.
        """
        if message.deleted:
            return ""
        if isinstance(message, Ephemeral):
            return render_blocks(message.blocks) if message.blocks else message.text
        if message.stream is not None and not message.stream.replaced:
            body = render_stream(message.stream)
        elif message.blocks:
            body = render_blocks(message.blocks)
        else:
            body = message.text
        file_lines = [_file_line(f) for f in message.files]
        return "\n".join(part for part in [body, *file_lines] if part)


#: what Slack shows where a deleted file was (seen in clients and reported in issues)
DELETED_FILE_TEXT = "This file was deleted."


def _file_line(file: JSON) -> str:
    if file.get("mode") == "tombstone":
        return DELETED_FILE_TEXT
    return f"[file: {file.get('title') or file.get('name') or file.get('id')}]"


def render_stream(stream: StreamState) -> str:
    """A streamed message as it reads: text and task cards in order, then the final blocks.

    In ``plan`` mode every task card sits in one plan, where the first task appeared.
    """
    parts: list[str] = []
    plan_shown = False
    if stream.plan_title and (stream.task_display_mode != "plan" or not stream.tasks):
        parts.append(stream.plan_title)
    for kind, value in stream.segments:
        if kind == "text":
            parts.append(value)
        elif kind == "blocks":
            parts.append(render_blocks(value))
        elif stream.task_display_mode != "plan":
            parts.append(render_task(stream.tasks[value]))
        elif not plan_shown:
            plan_shown = True
            plan = [render_task(task) for task in stream.tasks.values()]
            parts.append("\n".join([stream.plan_title, *plan] if stream.plan_title else plan))
    if stream.final_blocks:
        parts.append(render_blocks(stream.final_blocks))
    return _join_segments(parts)


def render_task(task: StreamTask) -> str:
    lines = [f"{TASK_ICONS.get(task.status, '?')} {task.title}"]
    lines.extend(f"  {extra}" for extra in (task.details, task.output) if extra)
    lines.extend(f"  ↗ {source['text']} <{source['url']}>" for source in task.sources)
    return "\n".join(lines)


def _join_segments(parts: list[str]) -> str:
    """Consecutive streamed text pieces join directly; anything else goes on its own line."""
    text = ""
    for part in parts:
        if not part:
            continue
        if text and not text.endswith("\n") and not part.startswith("\n"):
            text += "\n"
        text += part
    return text


def guess_types(name: str) -> tuple[str, str]:
    """(mimetype, filetype) as Slack would report them for a file called ``name``."""
    suffix = PurePosixPath(name).suffix.lower()
    mimetype = EXTRA_MIMETYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    extension = suffix.lstrip(".")
    return mimetype, FILETYPES.get(extension, extension or "binary")
