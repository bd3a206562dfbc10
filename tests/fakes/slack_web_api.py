"""The Web API methods of the fake Slack, with real argument names, shapes and errors.

``WebApi.call(method, params, token)`` returns the JSON body of a successful call or
raises ``ApiError``; the HTTP layer (``slack.FakeSlack``) turns either into a response.
Arguments arrive already merged from the query string and the body; values are strings
for form/query encodings and native JSON values for JSON bodies, so every reader below
accepts both.

Error codes follow Slack's method reference. Where Slack's behaviour was not documented
the choice is marked "unconfirmed" in the docstring.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tests.fakes.slack_blocks import BlocksRejected, parse_blocks, validate_blocks, validate_home_view
from tests.fakes.slack_contract import ArgumentsRejected, check_arguments, note_unserved, record_blocks_rejection
from tests.fakes.slack_models import (
    JSON,
    TASK_STATUSES,
    AssistantThread,
    Channel,
    Edit,
    Ephemeral,
    Message,
    SlackFile,
    StreamState,
    StreamTask,
)
from tests.fakes.slack_workspace import Workspace

TokenKind = Literal["bot", "app"]
Handler = Callable[[JSON], JSON]

MAX_TEXT = 40_000
MAX_MARKDOWN_PER_CALL = 12_000
MAX_ALT_TXT = 1000
MAX_LOADING_MESSAGES = 10
MAX_SUGGESTED_PROMPTS = 4
#: docs: reference/methods/chat.appendStream, task_update / plan_update chunks — a task's
#: ``details`` and ``output`` and a plan's ``title`` are at most 256 characters each. Slack's
#: error for a longer one is unconfirmed: ``invalid_chunks``, like any malformed chunk.
MAX_CHUNK_FIELD = 256
#: Slack closes a stream about five minutes after ``chat.startStream``, however busy it is;
#: ``chat.appendStream``/``chat.stopStream`` then answer ``message_not_in_streaming_state``
#: and only ``chat.update`` of the same ts changes the message (python-slack-sdk#1859, whose
#: fix #1880 made ``ChatStream.ts`` public for that fallback). Slack's reference doesn't give
#: the number: five minutes is what the SDK maintainers and bot authors report.
STREAM_LIFETIME_S = 300.0
TS_PATTERN = re.compile(r"^\d+(\.\d+)?$")
EMOJI_NAME = re.compile(r"^[a-z0-9_+\-']+(::skin-tone-[2-6])?$")
MESSAGE_OPTIONS = (
    "unfurl_links",
    "unfurl_media",
    "mrkdwn",
    "parse",
    "link_names",
    "username",
    "icon_emoji",
    "icon_url",
)
JSON_ARGUMENTS = ("blocks", "attachments", "files", "metadata", "chunks", "prompts", "loading_messages", "view")
#: docs: reference/methods/views.publish — view_too_large: "the provided view is greater than 250kb"
MAX_VIEW_BYTES = 250_000


class ApiError(Exception):
    """A call Slack would answer with ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> JSON:
        return {"ok": False, "error": self.error, **self.extra}


def missing(name: str) -> ApiError:
    return ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {name}"]})


@dataclass
class MessageContent:
    text: str
    blocks: list[JSON] | None
    attachments: list[JSON] | None


class WebApi:
    """The methods of the Web API, over one ``Workspace``."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        bot_token: str,
        app_token: str,
        base_url: Callable[[], str],
    ) -> None:
        self.ws = workspace
        self.bot_token = bot_token
        self.app_token = app_token
        self._base_url = base_url
        self.issued_socket_tickets: list[str] = []
        self.current_method = ""  # the method being run, for conformance records
        self.methods: dict[str, tuple[Handler, TokenKind]] = {
            "auth.test": (self.auth_test, "bot"),
            "chat.postMessage": (self.chat_post_message, "bot"),
            "chat.update": (self.chat_update, "bot"),
            "chat.delete": (self.chat_delete, "bot"),
            "chat.postEphemeral": (self.chat_post_ephemeral, "bot"),
            "chat.getPermalink": (self.chat_get_permalink, "bot"),
            "chat.startStream": (self.chat_start_stream, "bot"),
            "chat.appendStream": (self.chat_append_stream, "bot"),
            "chat.stopStream": (self.chat_stop_stream, "bot"),
            "reactions.add": (self.reactions_add, "bot"),
            "reactions.remove": (self.reactions_remove, "bot"),
            "files.info": (self.files_info, "bot"),
            "files.delete": (self.files_delete, "bot"),
            "files.getUploadURLExternal": (self.files_get_upload_url_external, "bot"),
            "files.completeUploadExternal": (self.files_complete_upload_external, "bot"),
            "conversations.replies": (self.conversations_replies, "bot"),
            "users.info": (self.users_info, "bot"),
            "views.publish": (self.views_publish, "bot"),
            "assistant.threads.setStatus": (self.assistant_threads_set_status, "bot"),
            "assistant.threads.setSuggestedPrompts": (self.assistant_threads_set_suggested_prompts, "bot"),
            "assistant.threads.setTitle": (self.assistant_threads_set_title, "bot"),
            "views.open": (self.views_open, "bot"),
            "apps.connections.open": (self.apps_connections_open, "app"),
        }
        # Interactivity: trigger ids issued with interactions (→ the person who clicked), those
        # already used, and the views opened with them (by view id).
        self.issued_triggers: dict[str, str] = {}
        self.exchanged_triggers: set[str] = set()
        self.views: dict[str, JSON] = {}

    # ----------------------------------------------------------------- dispatch

    def call(self, method: str, params: JSON, token: str | None) -> JSON:
        """Run ``method``; raises ``ApiError`` exactly where Slack answers ``ok: false``."""
        entry = self.methods.get(method)
        if entry is None:
            note_unserved(method)
            raise ApiError("unknown_method", req_method=method)
        handler, kind = entry
        self._authenticate(token, kind)
        try:
            check_arguments(method, params)  # conformance with slack_sdk's signature (slack_contract)
        except ArgumentsRejected as rejected:
            raise ApiError(rejected.error, response_metadata={"messages": rejected.problems}) from None
        self.current_method = method
        try:
            return handler(params)
        finally:
            self.current_method = ""

    def _authenticate(self, token: str | None, kind: TokenKind) -> None:
        if not token:
            raise ApiError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise ApiError("invalid_auth")
        if token != (self.bot_token if kind == "bot" else self.app_token):
            raise ApiError("not_allowed_token_type")

    # ----------------------------------------------------------------- auth & apps

    def auth_test(self, p: JSON) -> JSON:
        return {
            "ok": True,
            "url": f"https://{self.ws.team_domain}.slack.com/",
            "team": self.ws.team_name,
            "user": self.ws.bot_name,
            "team_id": self.ws.team_id,
            "user_id": self.ws.bot_user_id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    def apps_connections_open(self, p: JSON) -> JSON:
        ticket = secrets.token_hex(8)
        self.issued_socket_tickets.append(ticket)
        ws_base = self._base_url().replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/socket-mode?ticket={ticket}&app_id={self.ws.app_id}"}

    # ----------------------------------------------------------------- chat

    def views_open(self, p: JSON) -> JSON:
        """``views.open``: a modal for the person whose interaction issued ``trigger_id``.

        docs: reference/methods/views.open — a trigger_id is exchanged once (``exchanged_trigger_id``)
        and only within 3 seconds (``expired_trigger_id``); one Slack never issued is
        ``invalid_trigger_id``. The view is checked as Slack checks a modal: its title, submit and
        close are plain_text of at most 24 characters, private_metadata at most 3000 characters,
        callback_id at most 255, and at most 100 blocks (docs: reference/views/modal-views).
        """
        trigger = text_arg(p, "trigger_id")
        if not trigger:
            raise missing("trigger_id")
        if trigger in self.exchanged_triggers:
            raise ApiError("exchanged_trigger_id")
        user = self.issued_triggers.pop(trigger, None)
        if user is None:
            raise ApiError("invalid_trigger_id")
        view = json_arg(p, "view", error="invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise ApiError("invalid_arguments")
        for key in ("title", "submit", "close"):
            text = view.get(key)
            if key == "title" and text is None:
                raise ApiError("invalid_arguments")
            if text is not None and (
                not isinstance(text, dict)
                or text.get("type") != "plain_text"
                or not 0 < len(str(text.get("text"))) <= 24
            ):
                raise ApiError("invalid_arguments")
        if len(str(view.get("private_metadata") or "")) > 3000 or len(str(view.get("callback_id") or "")) > 255:
            raise ApiError("invalid_arguments")
        blocks = self._blocks({"blocks": view.get("blocks") or []}, too_many_error="invalid_arguments")
        self.exchanged_triggers.add(trigger)
        opened = {**view, "id": f"V{len(self.views) + 1:08d}", "blocks": blocks, "user": user, "state": {"values": {}}}
        self.views[opened["id"]] = opened
        return {"ok": True, "view": opened}

    def chat_post_message(self, p: JSON) -> JSON:
        """``chat.postMessage``.

        A ``thread_ts`` that names no message in the channel does not fail: Slack posts
        the message at the channel root and the response's message has no ``thread_ts``
        (reported in slack-go/slack#1571 and others). A reply's ts threads under its parent.
        """
        channel = self._postable_channel(p)
        content = self.message_content(p)
        requested = text_arg(p, "thread_ts")
        thread_ts = self.thread_for_post(channel, requested)
        message = self._post_bot_message(
            channel,
            content,
            thread_ts=thread_ts,
            requested_thread_ts=requested,
            metadata=self._metadata(p),
            reply_broadcast=bool_arg(p, "reply_broadcast") and thread_ts is not None,
            options={k: p[k] for k in MESSAGE_OPTIONS if k in p},
        )
        return {"ok": True, "channel": channel.id, "ts": message.ts, "message": self.ws.message_api(message)}

    def chat_update(self, p: JSON) -> JSON:
        channel = self._postable_channel(p)
        message = self._bot_owned_message(channel, text_arg(p, "ts"), not_owned="cant_update_message")
        content = self.message_content(p)
        message.edits.append(
            Edit(
                at=self.ws.clock.next(),
                old_text=message.text,
                old_blocks=message.blocks,
                new_text=content.text,
                new_blocks=content.blocks,
            )
        )
        message.text, message.blocks = content.text, content.blocks
        if message.stream is not None:
            # What the stream showed gives way to the update (the python-slack-sdk#1880 fallback).
            message.stream.replaced = True
        if content.attachments is not None:
            message.attachments = content.attachments
        if "metadata" in p:
            message.metadata = self._metadata(p)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": self.ws.message_api(message),
        }

    def chat_delete(self, p: JSON) -> JSON:
        channel = self._postable_channel(p)
        message = self._bot_owned_message(channel, text_arg(p, "ts"), not_owned="cant_delete_message")
        message.deleted = True
        return {"ok": True, "channel": channel.id, "ts": message.ts}

    def chat_post_ephemeral(self, p: JSON) -> JSON:
        channel = self._postable_channel(p)
        user = text_arg(p, "user")
        if not user or user not in channel.members:
            raise ApiError("user_not_in_channel")
        content = self.message_content(p)
        thread_ts = text_arg(p, "thread_ts")
        ephemeral = Ephemeral(
            channel=channel.id,
            user=user,
            ts=self.ws.clock.next(),
            text=content.text,
            blocks=content.blocks,
            thread_ts=self.ws.thread_root(channel.id, thread_ts) if thread_ts else None,
        )
        self.ws.ephemerals.append(ephemeral)
        return {"ok": True, "message_ts": ephemeral.ts}

    def chat_get_permalink(self, p: JSON) -> JSON:
        channel = self._readable_channel(text_arg(p, "channel"))
        ts = text_arg(p, "message_ts") or ""
        message = self.ws.live_message(channel.id, ts)
        if message is None:
            raise ApiError("message_not_found")
        link = f"https://{self.ws.team_domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    # ----------------------------------------------------------------- chat streaming

    def chat_start_stream(self, p: JSON) -> JSON:
        """``chat.startStream``: a streaming reply in an existing thread.

        Outside DMs Slack requires ``recipient_team_id`` then ``recipient_user_id``
        (``missing_recipient_team_id`` / ``missing_recipient_user_id``). The team must be the
        recipient's own — docs: reference/methods/chat.startStream, "the encoded ID of the team
        the user receiving the streaming text belongs to" (for a Slack Connect person, their
        organisation's team, not the workspace's); another team is ``invalid_arguments``
        (unconfirmed: the reference names no error for it). A ``thread_ts`` naming no message
        fails with ``invalid_thread_ts`` (unconfirmed: Slack's reference lists no error for it).
        """
        channel = self._postable_channel(p)
        requested = text_arg(p, "thread_ts")
        if not requested:
            raise missing("thread_ts")
        if not TS_PATTERN.match(requested):
            raise ApiError("invalid_thread_ts")
        thread_ts = self.ws.thread_root(channel.id, requested)
        if thread_ts is None:
            raise ApiError("invalid_thread_ts")
        stream = StreamState(
            task_display_mode=text_arg(p, "task_display_mode") or "timeline", started_at=self.ws.seconds
        )
        if stream.task_display_mode not in ("timeline", "plan"):
            raise ApiError("invalid_arguments")
        if not channel.is_im:
            stream.recipient_team_id = text_arg(p, "recipient_team_id")
            stream.recipient_user_id = text_arg(p, "recipient_user_id")
            if not stream.recipient_team_id:
                raise ApiError("missing_recipient_team_id")
            if not stream.recipient_user_id:
                raise ApiError("missing_recipient_user_id")
            if stream.recipient_user_id not in self.ws.users:
                raise ApiError("user_not_found")
            if stream.recipient_team_id != self.ws.users[stream.recipient_user_id].team_id:
                raise ApiError(
                    "invalid_arguments",
                    response_metadata={"messages": ["[ERROR] recipient_team_id is not the recipient's team"]},
                )
        apply_chunks(stream, self._chunks(p))
        message = self.ws.add_message(
            self.bot_message(channel.id, stream.markdown, thread_ts=thread_ts, requested_thread_ts=requested)
        )
        message.stream = stream
        return {"ok": True, "channel": channel.id, "ts": message.ts}

    def chat_append_stream(self, p: JSON) -> JSON:
        channel = self._postable_channel(p)
        message, stream = self._streaming_message(channel, text_arg(p, "ts"))
        chunks = self._chunks(p)
        if not chunks:
            raise ApiError("no_text")
        apply_chunks(stream, chunks)
        message.text = stream.markdown
        return {"ok": True, "channel": channel.id, "ts": message.ts}

    def chat_stop_stream(self, p: JSON) -> JSON:
        channel = self._postable_channel(p)
        message, stream = self._streaming_message(channel, text_arg(p, "ts"))
        chunks = self._chunks(p)
        blocks = self._blocks(p, too_many_error="msg_blocks_too_many")
        metadata = self._metadata(p)
        apply_chunks(stream, chunks)
        stream.final_blocks = blocks
        stream.streaming = False
        stream.stopped_by = "app"
        message.text = stream.markdown
        if metadata is not None:
            message.metadata = metadata
        return {"ok": True, "channel": channel.id, "ts": message.ts, "message": self.ws.message_api(message)}

    def _streaming_message(self, channel: Channel, ts: str | None) -> tuple[Message, StreamState]:
        message = self.ws.live_message(channel.id, ts or "")
        if message is None:
            raise ApiError("message_not_found")
        if message.bot_id != self.ws.bot_id:
            raise ApiError("message_not_owned_by_app")
        stream = message.stream
        if stream is not None and stream.streaming and self.ws.seconds - stream.started_at >= STREAM_LIFETIME_S:
            stream.streaming, stream.stopped_by = False, "timeout"
        if stream is None or not stream.streaming:
            raise ApiError("message_not_in_streaming_state")
        return message, stream

    def _chunks(self, p: JSON) -> list[JSON]:
        """The chunks of a stream call (``markdown_text`` first), validated.

        More than 12,000 characters of markdown in one call fails with ``msg_too_long``
        (unconfirmed: Slack documents the limit but not the error code).
        """
        chunks: list[JSON] = []
        if markdown := text_arg(p, "markdown_text"):
            chunks.append({"type": "markdown_text", "text": markdown})
        raw = json_arg(p, "chunks", error="invalid_chunks")
        if raw is not None:
            if not isinstance(raw, list):
                raise ApiError("invalid_chunks")
            chunks.extend(validate_chunk(chunk) for chunk in raw)
        total = sum(len(c["text"]) for c in chunks if c["type"] == "markdown_text")
        if total > MAX_MARKDOWN_PER_CALL:
            raise ApiError("msg_too_long")
        return chunks

    # ----------------------------------------------------------------- reactions

    def reactions_add(self, p: JSON) -> JSON:
        message, name = self._reaction_target(p)
        users = message.reactions.setdefault(name, [])
        if self.ws.bot_user_id in users:
            raise ApiError("already_reacted")
        users.append(self.ws.bot_user_id)
        return {"ok": True}

    def reactions_remove(self, p: JSON) -> JSON:
        message, name = self._reaction_target(p)
        users = message.reactions.get(name, [])
        if self.ws.bot_user_id not in users:
            raise ApiError("no_reaction")
        users.remove(self.ws.bot_user_id)
        if not users:
            del message.reactions[name]
        return {"ok": True}

    def _reaction_target(self, p: JSON) -> tuple[Message, str]:
        channel = self._readable_channel(text_arg(p, "channel"))
        name = text_arg(p, "name") or ""
        if not EMOJI_NAME.match(name):
            raise ApiError("invalid_name")
        ts = text_arg(p, "timestamp")
        if not ts:
            raise ApiError("no_item_specified")
        message = self.ws.live_message(channel.id, ts)
        if message is None:
            raise ApiError("message_not_found")
        return message, name

    # ----------------------------------------------------------------- files

    def files_info(self, p: JSON) -> JSON:
        """``files.info``. A file shared only where the bot cannot read (a private channel
        or DM it is not in) is ``file_not_found`` to it (unconfirmed: Slack's reference does
        not say which error an inaccessible file gives); a deleted one is ``file_deleted``
        (in the method's documented errors)."""
        file = self._visible_file(p)
        if file.state == "deleted":
            raise ApiError("file_deleted")
        return {"ok": True, "file": self.ws.file_api(file), "comments": [], "response_metadata": {"next_cursor": ""}}

    def files_delete(self, p: JSON) -> JSON:
        """``files.delete``: the bot may delete the files it uploaded.

        Errors as in Slack's reference: ``file_not_found`` (unknown, not visible to the
        bot, or an upload never completed — the last is unconfirmed), ``file_deleted``
        (deleted already), ``cant_delete_file`` (someone else's file). The file's messages
        keep a tombstone in its place (``Workspace.delete_file``).
        """
        file = self._visible_file(p)
        if file.state == "deleted":
            raise ApiError("file_deleted")
        if file.user != self.ws.bot_user_id:
            raise ApiError("cant_delete_file")
        self.ws.delete_file(file, by=self.ws.bot_user_id, via="files.delete")
        return {"ok": True}

    def _visible_file(self, p: JSON) -> SlackFile:
        """The completed (or deleted) file ``file`` names, if the bot can see it."""
        file_id = text_arg(p, "file")
        if not file_id:
            raise missing("file")
        file = self.ws.files.get(file_id)
        if file is None or file.state not in ("complete", "deleted") or not self.ws.bot_can_see_file(file):
            raise ApiError("file_not_found")
        return file

    def files_get_upload_url_external(self, p: JSON) -> JSON:
        """``files.getUploadURLExternal``: a pending file and the URL to POST its bytes to.

        Missing ``filename``/``length`` or a negative length → ``invalid_arguments``;
        a length of 0 → ``missing_argument`` (as Slack's reference says).
        """
        filename = text_arg(p, "filename")
        if not filename:
            raise missing("filename")
        length = int_arg(p, "length")
        if length == 0:
            raise ApiError("missing_argument")
        if length < 0:
            raise ApiError("invalid_arguments")
        alt_txt = text_arg(p, "alt_txt")
        if alt_txt and len(alt_txt) > MAX_ALT_TXT:
            raise ApiError("alt_txt_too_large")
        file = self.ws.new_file(name=filename, user=self.ws.bot_user_id)
        file.state = "pending"
        file.expected_length = length
        file.upload_ticket = secrets.token_urlsafe(12)
        file.alt_txt = alt_txt
        file.snippet_type = text_arg(p, "snippet_type")
        self.ws.files[file.id] = file
        return {"ok": True, "upload_url": f"{self._base_url()}/upload/v1/{file.upload_ticket}", "file_id": file.id}

    def files_complete_upload_external(self, p: JSON) -> JSON:
        """``files.completeUploadExternal``: finish uploads, optionally sharing them.

        Ids that are unknown, not uploaded yet, or already completed → ``file_not_found``
        ("Could not find the file from the upload ticket"). With ``channel_id`` (or
        ``channels``) ONE message carrying all the files is posted per channel, in
        ``thread_ts``'s thread; without, the files stay private.
        """
        entries = self._upload_entries(p)
        files = [self._uploaded_file(entry) for entry in entries]
        channels = self._share_targets(p)
        requested = text_arg(p, "thread_ts")
        if requested and len(channels) > 1:
            raise ApiError("invalid_arguments")
        initial_comment = text_arg(p, "initial_comment") or ""
        blocks = None if initial_comment else self._blocks(p)
        for file, entry in zip(files, entries, strict=True):
            file.title = str(entry.get("title") or file.name)
            file.state = "complete"
        for channel in channels:
            thread_ts = self.thread_for_post(channel, requested)
            message = self.bot_message(
                channel.id, initial_comment, thread_ts=thread_ts, requested_thread_ts=requested, blocks=blocks
            )
            for file in files:
                self.ws.share_file(file, message)
            message.files = [self.ws.file_api(file) for file in files]
            message.upload = True
            self.ws.add_message(message)
        return {"ok": True, "files": [self.ws.file_api(file) for file in files]}

    def _upload_entries(self, p: JSON) -> list[JSON]:
        entries = json_arg(p, "files", error="invalid_arguments")
        if entries is None:
            raise missing("files")
        if not isinstance(entries, list) or not entries:
            raise ApiError("invalid_arguments")
        if not all(isinstance(entry, dict) and entry.get("id") for entry in entries):
            raise ApiError("invalid_arguments")
        return entries

    def _uploaded_file(self, entry: JSON) -> SlackFile:
        file = self.ws.files.get(str(entry["id"]))
        if file is None or file.state != "uploaded":
            raise ApiError("file_not_found")
        return file

    def _share_targets(self, p: JSON) -> list[Channel]:
        ids = [text_arg(p, "channel_id") or ""]
        ids += (text_arg(p, "channels") or "").split(",")
        return [self._postable_channel({"channel": channel_id}) for channel_id in dict.fromkeys(filter(None, ids))]

    # ----------------------------------------------------------------- conversations & users

    def conversations_replies(self, p: JSON) -> JSON:
        channel = self._member_channel(text_arg(p, "channel"))
        root = self.ws.thread_root(channel.id, text_arg(p, "ts") or "")
        if root is None:
            raise ApiError("thread_not_found")
        thread = self.ws.thread(channel.id, root, include_deleted=True)
        shown = [m for m in thread if not m.deleted or m.ts == root]  # a deleted root shows as a tombstone
        return paginate([self._listed(m, p) for m in shown], p)

    def _listed(self, message: Message, p: JSON) -> JSON:
        """A message in a history/replies listing: ``metadata`` only with ``include_all_metadata``."""
        body = self.ws.message_api(message)
        if not bool_arg(p, "include_all_metadata"):
            body.pop("metadata", None)
        return body

    def users_info(self, p: JSON) -> JSON:
        user = self.ws.users.get(text_arg(p, "user") or "")
        if user is None:
            raise ApiError("user_not_found")
        return {"ok": True, "user": user.to_api(is_stranger=self.ws.is_stranger(user.id))}

    # ----------------------------------------------------------------- assistant threads

    def assistant_threads_set_status(self, p: JSON) -> JSON:
        """``assistant.threads.setStatus``: in a DM, or (since Slack let ``chat:write`` apps
        show loading states in channels) in any thread the bot can post in. Slack clears the
        status when the app replies in the thread; an empty ``status`` clears it too."""
        thread = self._assistant_thread(p, dm_only=False)
        status = text_arg(p, "status")
        if status is None:
            raise missing("status")
        # docs: reference/methods/assistant.threads.setStatus — loading_messages: "The list of
        # messages to rotate through as a loading indicator. Maximum of 10 messages."
        loading = json_arg(p, "loading_messages", error="invalid_arguments")
        if loading is not None and (
            not isinstance(loading, list)
            or len(loading) > MAX_LOADING_MESSAGES
            or not all(isinstance(m, str) and m.strip() for m in loading)
        ):
            raise ApiError("invalid_arguments")
        thread.set_status(status, loading)
        return {"ok": True}

    def assistant_threads_set_suggested_prompts(self, p: JSON) -> JSON:
        """At most four prompts of ``{title, message}`` (limit from Slack's reference; the
        error for more is unconfirmed). Without ``thread_ts`` the prompts go to the latest
        message of the DM, as the reference says."""
        thread = self._assistant_thread(p, dm_only=True, thread_required=False)
        prompts = json_arg(p, "prompts", error="invalid_arguments")
        if prompts is None:
            raise missing("prompts")
        valid = isinstance(prompts, list) and 0 < len(prompts) <= MAX_SUGGESTED_PROMPTS
        if not valid or not all(isinstance(x, dict) and x.get("title") and x.get("message") for x in prompts):
            raise ApiError("invalid_arguments")
        thread.prompts = prompts
        thread.prompts_title = text_arg(p, "title")
        return {"ok": True}

    def assistant_threads_set_title(self, p: JSON) -> JSON:
        """The title shows on the thread's root (``assistant_app_thread.title``)."""
        thread = self._assistant_thread(p, dm_only=True)
        title = text_arg(p, "title")
        if not title:
            raise missing("title")
        thread.title = title
        root = self.ws.find_message(thread.channel_id, thread.thread_ts)
        if root is not None and root.subtype == "assistant_app_thread":
            root.assistant_app_thread = {"title": title, "title_blocks": [], "artifacts": []}
        return {"ok": True}

    def _assistant_thread(self, p: JSON, *, dm_only: bool, thread_required: bool = True) -> AssistantThread:
        """The thread an ``assistant.threads.*`` call names.

        ``channel_not_found`` (detail "Invalid channel_id") for a conversation the bot is
        not in, and, for the DM-only methods, for anything but a DM with the bot
        (unconfirmed: Slack documents no other error for it); ``invalid_thread_ts``
        (detail "Thread not found") for a thread that does not exist.
        """
        channel_id = text_arg(p, "channel_id")
        if not channel_id:
            raise missing("channel_id")
        channel = self.ws.channels.get(channel_id)
        if channel is None or self.ws.bot_user_id not in channel.members or (dm_only and not channel.is_im):
            raise ApiError("channel_not_found", detail="Invalid channel_id")
        requested = text_arg(p, "thread_ts")
        if not requested and thread_required:
            raise missing("thread_ts")
        root = self.ws.thread_root(channel.id, requested) if requested else self._latest_root(channel)
        if root is None:
            raise ApiError("invalid_thread_ts", detail="Thread not found")
        return self.ws.assistant_thread(channel.id, root)

    def _latest_root(self, channel: Channel) -> str | None:
        top = self.ws.top_level(channel.id)
        return self.ws.thread_root(channel.id, top[-1].ts) if top else None

    # ----------------------------------------------------------------- views

    def views_publish(self, p: JSON) -> JSON:
        """``views.publish``: a person's Home tab (docs: reference/methods/views.publish).

        ``not_enabled`` when the app's Home tab is off (manifest.yml); ``view_too_large`` past
        250 kB; a malformed view or blocks are ``invalid_arguments`` with Slack's messages; a
        ``hash`` other than the current view's is ``hash_conflict``. A ``user_id`` that names
        no person in the workspace is ``user_not_found`` (unconfirmed: the reference lists no
        error for it).
        """
        user_id = text_arg(p, "user_id")
        if not user_id:
            raise missing("user_id")
        person = self.ws.users.get(user_id)
        if person is None or person.is_bot:
            raise ApiError("user_not_found")
        if not self.ws.home_tab_enabled:
            raise ApiError("not_enabled")
        raw = p.get("view")
        if raw is None or raw == "":
            raise missing("view")
        encoded = raw if isinstance(raw, bytes) else raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
        if len(encoded) > MAX_VIEW_BYTES:
            raise ApiError("view_too_large")
        view = json_arg(p, "view", error="invalid_arguments")
        try:
            validate_home_view(view)
        except BlocksRejected as rejected:
            record_blocks_rejection(rejected.messages, method="views.publish")
            raise ApiError(rejected.error, response_metadata={"messages": rejected.messages}) from None
        requested_hash = text_arg(p, "hash")
        current = self.ws.home_views.get(user_id)
        if requested_hash and (current is None or current["hash"] != requested_hash):
            raise ApiError("hash_conflict")
        return {"ok": True, "view": self.ws.publish_home(user_id, view)}

    # ----------------------------------------------------------------- shared helpers

    def _readable_channel(self, channel_id: str | None) -> Channel:
        """A conversation the bot can see: public channels, and those it is a member of."""
        channel = self.ws.channels.get(channel_id or "")
        if channel is None or not self.ws.bot_can_read(channel):
            raise ApiError("channel_not_found")
        return channel

    def _member_channel(self, channel_id: str | None) -> Channel:
        channel = self._readable_channel(channel_id)
        if self.ws.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        return channel

    def _postable_channel(self, p: JSON) -> Channel:
        return self._member_channel(text_arg(p, "channel"))

    def thread_for_post(self, channel: Channel, requested: str | None) -> str | None:
        if not requested:
            return None
        if not TS_PATTERN.match(requested) or float(requested) == 0:
            raise ApiError("invalid_thread_ts")
        return self.ws.thread_root(channel.id, requested)

    def _bot_owned_message(self, channel: Channel, ts: str | None, *, not_owned: str) -> Message:
        message = self.ws.live_message(channel.id, ts or "")
        if message is None:
            raise ApiError("message_not_found")
        if message.bot_id != self.ws.bot_id:
            raise ApiError(not_owned)
        return message

    def message_content(self, p: JSON) -> MessageContent:
        """``text``/``blocks``/``markdown_text``/``attachments`` of a message, validated."""
        text = text_arg(p, "text") or ""
        markdown = text_arg(p, "markdown_text")
        blocks = self._blocks(p)
        attachments = json_arg(p, "attachments", error="invalid_attachments")
        if markdown:
            if text or blocks:
                raise ApiError("markdown_text_conflict")
            if len(markdown) > MAX_MARKDOWN_PER_CALL:
                raise ApiError("msg_too_long")
            text, blocks = markdown, [{"type": "markdown", "text": markdown}]
        if not text and not blocks and not attachments:
            raise ApiError("no_text")
        if len(text) > MAX_TEXT:
            raise ApiError("msg_too_long")
        return MessageContent(text=text, blocks=blocks, attachments=attachments)

    def _blocks(self, p: JSON, *, too_many_error: str = "invalid_blocks") -> list[JSON] | None:
        try:
            blocks = parse_blocks(p.get("blocks"))
            if blocks is not None:
                validate_blocks(blocks, too_many_error=too_many_error)
        except BlocksRejected as rejected:
            record_blocks_rejection(rejected.messages, method=self.current_method or "response_url")
            raise ApiError(rejected.error, response_metadata={"messages": rejected.messages}) from None
        return blocks

    def _metadata(self, p: JSON) -> JSON | None:
        metadata = json_arg(p, "metadata", error="invalid_metadata_format")
        if metadata is None:
            return None
        if not isinstance(metadata, dict) or "event_type" not in metadata or "event_payload" not in metadata:
            raise ApiError("invalid_metadata_format")
        return metadata

    def bot_message(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None,
        requested_thread_ts: str | None,
        blocks: list[JSON] | None = None,
    ) -> Message:
        return Message(
            channel=channel,
            ts=self.ws.clock.next(),
            text=text,
            user=self.ws.bot_user_id,
            team=self.ws.team_id,
            bot_id=self.ws.bot_id,
            app_id=self.ws.app_id,
            thread_ts=thread_ts,
            blocks=blocks,
            requested_thread_ts=requested_thread_ts,
        )

    def _post_bot_message(
        self,
        channel: Channel,
        content: MessageContent,
        *,
        thread_ts: str | None,
        requested_thread_ts: str | None,
        metadata: JSON | None,
        reply_broadcast: bool,
        options: JSON,
    ) -> Message:
        message = self.bot_message(
            channel.id,
            content.text,
            thread_ts=thread_ts,
            requested_thread_ts=requested_thread_ts,
            blocks=content.blocks,
        )
        message.attachments = content.attachments
        message.metadata = metadata
        message.reply_broadcast = reply_broadcast
        message.options = options
        return self.ws.add_message(message)


# --------------------------------------------------------------------------- streaming chunks


def validate_chunk(chunk: Any) -> JSON:
    """One streaming chunk, or ``invalid_chunks`` (``invalid_blocks`` for a bad blocks chunk)."""
    if not isinstance(chunk, dict):
        raise ApiError("invalid_chunks")
    kind = chunk.get("type")
    if kind == "markdown_text" and isinstance(chunk.get("text"), str):
        return chunk
    if kind == "plan_update" and isinstance(chunk.get("title"), str):
        if len(chunk["title"]) > MAX_CHUNK_FIELD:
            raise ApiError("invalid_chunks")
        return chunk
    if kind == "task_update":
        if not chunk.get("id") or not isinstance(chunk.get("title"), str) or chunk.get("status") not in TASK_STATUSES:
            raise ApiError("invalid_chunks")
        for name in ("details", "output"):
            value = chunk.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > MAX_CHUNK_FIELD):
                raise ApiError("invalid_chunks")
        if "sources" in chunk and not _valid_sources(chunk["sources"]):
            raise ApiError("invalid_chunks")
        return chunk
    if kind == "blocks" and isinstance(chunk.get("blocks"), list):
        try:
            validate_blocks(chunk["blocks"], name="chunks/blocks", too_many_error="msg_blocks_too_many")
        except BlocksRejected as rejected:
            record_blocks_rejection(rejected.messages, method="stream chunk")
            raise ApiError(rejected.error, response_metadata={"messages": rejected.messages}) from None
        return chunk
    raise ApiError("invalid_chunks")


def _valid_sources(sources: Any) -> bool:
    """A task_update's ``sources``: url source elements.

    docs: reference/block-kit/block-elements/url-source-element — ``type`` "is always url",
    ``url`` and ``text`` (display text) are required strings. Slack names no count or length
    limit, nor the error: ``invalid_chunks``, like any malformed chunk.
    """
    return isinstance(sources, list) and all(
        isinstance(source, dict)
        and source.get("type") == "url"
        and isinstance(source.get("url"), str)
        and source["url"]
        and isinstance(source.get("text"), str)
        and source["text"]
        for source in sources
    )


def apply_chunks(stream: StreamState, chunks: list[JSON]) -> None:
    """Fold validated chunks into a stream: text accumulates, tasks update in place."""
    for chunk in chunks:
        stream.chunks.append(chunk)
        kind = chunk["type"]
        if kind == "markdown_text":
            stream.markdown += chunk["text"]
            if stream.segments and stream.segments[-1][0] == "text":
                stream.segments[-1] = ("text", stream.segments[-1][1] + chunk["text"])
            else:
                stream.segments.append(("text", chunk["text"]))
        elif kind == "task_update":
            _apply_task_update(stream, chunk)
        elif kind == "plan_update":
            stream.plan_title = chunk["title"]
        else:
            stream.segments.append(("blocks", chunk["blocks"]))


def _apply_task_update(stream: StreamState, chunk: JSON) -> None:
    task_id = str(chunk["id"])
    task = stream.tasks.get(task_id)
    if task is None:
        task = stream.tasks[task_id] = StreamTask(id=task_id, title=chunk["title"], status=chunk["status"])
        stream.segments.append(("task", task_id))
    task.title, task.status = chunk["title"], chunk["status"]
    task.details = chunk.get("details", task.details)
    task.output = chunk.get("output", task.output)
    task.sources = chunk.get("sources", task.sources)
    task.history.append(dict(chunk))


# --------------------------------------------------------------------------- argument readers


def text_arg(p: JSON, name: str) -> str | None:
    value = p.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def bool_arg(p: JSON, name: str) -> bool:
    value = p.get(name)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def int_arg(p: JSON, name: str) -> int:
    value = p.get(name)
    if value is None or value == "":
        raise missing(name)
    if isinstance(value, bool):
        raise ApiError("invalid_arguments")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError("invalid_arguments") from None


def json_arg(p: JSON, name: str, *, error: str) -> Any:
    """A JSON-valued argument: a string in forms, a native value in JSON bodies."""
    value = p.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(error) from None
    return value


def decode_json_arguments(params: JSON) -> JSON:
    """Params with JSON-string arguments (blocks, files, …) decoded where they parse.

    Used for the ``calls`` record so tests see the same shapes whatever the encoding.
    """
    decoded = dict(params)
    for name in JSON_ARGUMENTS:
        value = decoded.get(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                decoded[name] = json.loads(value)
    return decoded


def paginate(messages: list[JSON], p: JSON) -> JSON:
    """``messages`` with Slack's cursor pagination (``limit``, ``cursor``, ``has_more``)."""
    limit = int(text_arg(p, "limit") or 100) or 100
    cursor = text_arg(p, "cursor") or ""
    start = int(cursor.removeprefix("next_ts_")) if cursor.startswith("next_ts_") else 0
    page = messages[start : start + limit]
    has_more = start + limit < len(messages)
    next_cursor = f"next_ts_{start + limit}" if has_more else ""
    return {"ok": True, "messages": page, "has_more": has_more, "response_metadata": {"next_cursor": next_cursor}}


def new_client_msg_id() -> str:
    return str(uuid.uuid4())
