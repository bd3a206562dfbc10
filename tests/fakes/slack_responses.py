"""What Slack does with an app's answers to slash commands and interactions.

The immediate answer to a slash command (the HTTP response, or the Socket Mode ack's
``payload``, within 3 seconds):

* an empty 200 shows nothing;
* a plain-text body shows as an ephemeral message to the person;
* a JSON body (``Content-Type: application/json``) is a message whose ``response_type``
  decides who sees it: ``ephemeral`` (the default) or ``in_channel``, which also shares
  the command the person typed (``{"response_type": "in_channel"}`` alone shares just
  the command);
* any other status, or no answer in time, shows Slack's notice to the person instead:
  ``/analyze failed with the error "operation_timeout"``.

Posts to a ``response_url`` take the same fields; an ``in_channel`` one does not share the
command again. ``replace_original`` / ``delete_original`` act on the message the URL
belongs to: the clicked message for an interaction, and for a slash command the latest
message its answers produced (ephemeral ones included; visibility cannot change). A URL
works at most 5 times within 30 minutes of the command.

Sources: Slack's slash command guide (slackhq/slack-api-docs, "Responding to a
command", "Delayed responses and multiple responses"), ``operation_timeout`` as reported
by users (integrations/slack#352). Unconfirmed: the code Slack shows for a non-200
answer (``http_service_error`` here), ``dispatch_failed`` for an unreachable app, and
Slack's answer to a used-up or expired URL (HTTP 404 ``expired_url`` here).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from tests.fakes.slack_blocks import rich_text_for
from tests.fakes.slack_models import JSON, CommandReply, Edit, Ephemeral, Message, ResponseUrlPost
from tests.fakes.slack_web_api import ApiError, MessageContent, WebApi, new_client_msg_id, text_arg
from tests.fakes.slack_workspace import Workspace

MAX_RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME = 30 * 60.0
NON_200_ERROR = "http_service_error"
TIMEOUT_ERROR = "operation_timeout"
UNREACHABLE_ERROR = "dispatch_failed"
EXPIRED_URL = "expired_url"


@dataclass
class ResponseUrlTarget:
    """A ``response_url`` the fake handed out: where its posts land and how often it was used."""

    url: str
    channel_id: str
    user_id: str
    issued_at: float
    message_ts: str | None = None
    original: Message | Ephemeral | None = None
    uses: int = 0
    expired: bool = False

    def usable(self, now: float) -> bool:
        fresh = now - self.issued_at <= RESPONSE_URL_LIFETIME
        return fresh and not self.expired and self.uses < MAX_RESPONSE_URL_USES


def parse_command_answer(http_status: int, body: str, content_type: str) -> tuple[JSON | None, str | None]:
    """(message, error) for the app's HTTP answer to a slash command."""
    if http_status != 200:
        return None, NON_200_ERROR
    if not body.strip():
        return None, None
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed, None
    return {"text": body}, None


class Responses:
    """Slash command answers and ``response_url`` posts, applied to the workspace."""

    def __init__(self, workspace: Workspace, api: WebApi, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ws = workspace
        self.api = api
        self._clock = clock
        #: every POST to a response_url, in order (refused ones too)
        self.posts: list[ResponseUrlPost] = []
        #: every slash command answer, in order
        self.command_replies: list[CommandReply] = []
        self._targets: dict[str, ResponseUrlTarget] = {}

    # ----------------------------------------------------------------- response_url lifecycle

    def issue(self, base_url: str, channel_id: str, user_id: str, *, message_ts: str | None = None) -> str:
        key = uuid.uuid4().hex
        url = f"{base_url}/response-url/{key}"
        self._targets[key] = ResponseUrlTarget(url, channel_id, user_id, self._clock(), message_ts)
        return url

    def knows(self, key: str) -> bool:
        return key in self._targets

    def expire(self, url: str) -> None:
        """Age ``url`` past its 30 minutes."""
        self._target_for(url).expired = True

    def _target_for(self, url: str) -> ResponseUrlTarget:
        target = self._targets.get(url.rstrip("/").rsplit("/", 1)[-1])
        if target is None:
            raise KeyError(f"{url} is not a response_url of this fake")
        return target

    # ----------------------------------------------------------------- posts to a response_url

    def post(self, key: str, payload: JSON) -> tuple[int, str]:
        """Apply a POST to the response_url ``key``; returns (HTTP status, body)."""
        target = self._targets[key]
        record = ResponseUrlPost(target.url, payload, target.channel_id, target.user_id)
        self.posts.append(record)
        if not target.usable(self._clock()):
            record.http_status, record.error = 404, EXPIRED_URL
            return 404, EXPIRED_URL
        target.uses += 1
        try:
            self._apply(target, payload)
        except ApiError as error:
            record.http_status, record.error = 400, error.error
            return 400, error.error
        return 200, "ok"

    def _apply(self, target: ResponseUrlTarget, payload: JSON) -> None:
        original = self._original(target)
        if payload.get("delete_original"):
            if original is not None:
                original.deleted = True
            return
        content = self.api.message_content(payload)
        if payload.get("replace_original") and original is not None:
            replace(original, content, at=self.ws.clock.next())
            return
        thread_ts = self.api.thread_for_post(self.ws.channels[target.channel_id], text_arg(payload, "thread_ts"))
        posted: Message | Ephemeral
        if payload.get("response_type") == "in_channel":
            posted = self._post_in_channel(target.channel_id, content, thread_ts)
        else:
            posted = self._ephemeral(target, content, thread_ts=thread_ts, source="response_url")
        if target.message_ts is None:  # a command's URL follows its latest message; an interaction's stays put
            target.original = posted

    def _original(self, target: ResponseUrlTarget) -> Message | Ephemeral | None:
        if target.original is None and target.message_ts is not None:
            ts = target.message_ts
            target.original = self.ws.find_message(target.channel_id, ts) or self.ws.find_ephemeral(
                target.channel_id, ts
            )
        if target.original is None or target.original.deleted:
            return None
        return target.original

    # ----------------------------------------------------------------- the immediate answer to a command

    def answer_command(
        self,
        fields: Mapping[str, str],
        *,
        via: Literal["http", "socket"],
        http_status: int,
        body: str = "",
        payload: JSON | None = None,
        error: str | None = None,
    ) -> CommandReply:
        """Record and show the app's answer to the slash command ``fields``."""
        reply = CommandReply(
            command=fields["command"],
            text=fields.get("text", ""),
            user_id=fields["user_id"],
            channel_id=fields["channel_id"],
            response_url=fields["response_url"],
            via=via,
            http_status=http_status,
            body=body,
            payload=payload,
            error=error,
        )
        self.command_replies.append(reply)
        target = self._target_for(reply.response_url)
        if reply.error is None and payload is not None:
            try:
                self._show_answer(reply, target, payload)
            except ApiError as refused:
                reply.error = refused.error
        if reply.error is not None:
            notice = f'{reply.command} failed with the error "{reply.error}"'
            reply.shown = self._ephemeral(target, MessageContent(notice, None, None), source="slackbot")
        elif reply.shown is not None:
            target.original = reply.shown
        return reply

    def _show_answer(self, reply: CommandReply, target: ResponseUrlTarget, payload: JSON) -> None:
        has_content = any(payload.get(key) for key in ("text", "blocks", "attachments"))
        content = self.api.message_content(payload) if has_content else None
        if reply.response_type == "in_channel":
            reply.echo = self._echo_command(reply)
            if content is not None:
                reply.shown = self._post_in_channel(reply.channel_id, content, None)
        elif content is not None:
            reply.shown = self._ephemeral(target, content, source="command")

    def _echo_command(self, reply: CommandReply) -> Message:
        """The command as the person typed it, shared in the channel (unconfirmed shape:
        a plain message from them)."""
        typed = f"{reply.command} {reply.text}".strip()
        person = self.ws.users.get(reply.user_id)
        return self.ws.add_message(
            Message(
                channel=reply.channel_id,
                ts=self.ws.clock.next(),
                text=typed,
                user=reply.user_id,
                team=person.team_id if person else self.ws.team_id,
                blocks=rich_text_for(typed),
                client_msg_id=new_client_msg_id(),
            )
        )

    # ----------------------------------------------------------------- showing messages

    def _post_in_channel(self, channel_id: str, content: MessageContent, thread_ts: str | None) -> Message:
        message = self.api.bot_message(
            channel_id, content.text, thread_ts=thread_ts, requested_thread_ts=None, blocks=content.blocks
        )
        message.attachments = content.attachments
        return self.ws.add_message(message)

    def _ephemeral(
        self, target: ResponseUrlTarget, content: MessageContent, *, source: str, thread_ts: str | None = None
    ) -> Ephemeral:
        ephemeral = Ephemeral(
            channel=target.channel_id,
            user=target.user_id,
            ts=self.ws.clock.next(),
            text=content.text,
            blocks=content.blocks,
            thread_ts=thread_ts,
            source=source,
        )
        self.ws.ephemerals.append(ephemeral)
        return ephemeral


def replace(original: Message | Ephemeral, content: MessageContent, *, at: str) -> None:
    """``replace_original``: new text and blocks, the old ones kept in ``edits``."""
    original.edits.append(Edit(at, original.text, original.blocks, content.text, content.blocks))
    original.text, original.blocks = content.text, content.blocks
