"""A stateful, strict, loopback fake of Slack for driving the bot's real Slack clients.

``FakeSlack`` is an aiohttp application served on 127.0.0.1 (port 0) inside the test's
event loop. Point slack-sdk at ``slack.api_url`` and the bot's real ``AsyncWebClient``,
file downloads, ``files_upload_v2`` and Socket Mode client all talk to it::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        message, envelope = slack.mention_event("C0DATA", "U0ALICE", "what's in this?")
        await slack.deliver_http(bot_url, envelope)
        await slack.wait_for(lambda: len(slack.thread("C0DATA", message["ts"])) > 1)

It serves:

* the Web API under ``/api/<method>`` (``slack_web_api``), rejecting malformed calls
  with Slack's own errors, and recording every call in ``calls``;
* hosted files at ``/files-pri/<team>-<id>/<name>`` (``/download/`` variant), which
  answer a missing or wrong token with Slack's HTML login page (HTTP 200);
* the upload URLs of ``files.getUploadURLExternal`` and the ``response_url`` of slash
  commands and interactions;
* Socket Mode at ``/socket-mode``.

It delivers events, slash commands and interactions to the bot (signed like Slack) and
offers the views a person would have (``thread``, ``visible_to``, ``visible_text``,
``ephemerals``, ``command_replies``). Event builders cover mentions, channel and DM
messages, file shares, ``file_shared``, ``file_deleted``, reactions
(``reaction_added_event`` / ``reaction_removed_event``) and the assistant pane of AI apps
(``assistant_thread_started_event`` and friends). People from another organisation
(``add_user(..., team_id=...)``) post in channels shared with it
(``add_channel(..., is_ext_shared=True)``); their events carry what Slack Connect events
carry (``user_team``, ``source_team``, ``user_profile``, ``is_ext_shared_channel``).
Tests synchronise with ``wait_for``, which re-checks its predicate after every change.
All state changes happen synchronously inside one event loop, so any number of
concurrent deliveries and API calls see consistent state and unique timestamps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Literal
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.fakes.slack_blocks import render_blocks, rich_text_for
from tests.fakes.slack_events import (
    LOGIN_PAGE_HTML,
    app_home_opened_event,
    app_mention_event,
    assistant_message_event,
    assistant_thread_event,
    connect_fields,
    event_envelope,
    file_deleted_event,
    file_shared_event,
    message_event,
    reaction_event,
    signature,
)
from tests.fakes.slack_http import (
    bearer,
    fault_response,
    read_api_request,
    stream_file,
    upload_body,
    upload_problem,
)
from tests.fakes.slack_manifest import manifest_bot_events, manifest_bot_scopes, manifest_home_tab_enabled
from tests.fakes.slack_models import (
    JSON,
    ApiCall,
    AssistantThread,
    Channel,
    CommandReply,
    Download,
    Ephemeral,
    Fault,
    FileDeletion,
    GuestKind,
    Message,
    ResponseUrlPost,
    SlackFile,
    Upload,
    User,
    ts_key,
)
from tests.fakes.slack_responses import TIMEOUT_ERROR, UNREACHABLE_ERROR, Responses, parse_command_answer
from tests.fakes.slack_socket import DEFAULT_ACK_TIMEOUT, SocketModeServer
from tests.fakes.slack_web_api import EMOJI_NAME, ApiError, WebApi, decode_json_arguments, new_client_msg_id
from tests.fakes.slack_workspace import Workspace

__all__ = [
    "ApiCall",
    "AssistantThread",
    "Channel",
    "CommandReply",
    "Download",
    "Ephemeral",
    "FakeSlack",
    "FileDeletion",
    "Message",
    "ResponseUrlPost",
    "SlackFile",
    "Upload",
    "User",
]

MAX_REQUEST_BYTES = 1024**3
SLACK_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
#: how long Slack waits for the answer to a slash command
COMMAND_ACK_TIMEOUT = 3.0
#: the root message Slack creates for a new assistant thread (as seen in captured payloads)
ASSISTANT_THREAD_ROOT_TEXT = "New Assistant Thread"


class FakeSlack:
    """A fake Slack workspace with a real HTTP/WebSocket surface on 127.0.0.1."""

    def __init__(
        self,
        *,
        team_id: str = "T0TEAM",
        team_name: str = "Acme",
        team_domain: str = "acme",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        bot_name: str = "analyst",
        app_id: str = "A0APP",
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        signing_secret: str = "test-signing-secret",
        verification_token: str = "fake-verification-token",
        granted_scopes: Iterable[str] | None = None,
    ) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        #: the bot token's scopes, reported in ``x-oauth-scopes`` (default: manifest.yml's bot scopes)
        self.granted_scopes: set[str] = set(manifest_bot_scopes() if granted_scopes is None else granted_scopes)
        self.workspace = Workspace(
            team_id=team_id,
            team_name=team_name,
            team_domain=team_domain,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            bot_name=bot_name,
            app_id=app_id,
            base_url=lambda: self.base_url,
            home_tab_enabled=manifest_home_tab_enabled(),
        )
        self.api = WebApi(self.workspace, bot_token=bot_token, app_token=app_token, base_url=lambda: self.base_url)
        #: every Web API request, in arrival order (failed ones too)
        self.calls: list[ApiCall] = []
        self.downloads: list[Download] = []
        self.uploads: list[Upload] = []
        self._answers = Responses(self.workspace, self.api)
        #: posts to response_urls (slash commands, interactions), refused ones too
        self.responses: list[ResponseUrlPost] = self._answers.posts
        #: what Slack made of the bot's immediate answers to slash commands
        self.command_replies: list[CommandReply] = self._answers.command_replies
        self.socket = SocketModeServer(app_id=app_id, tickets=self.api.issued_socket_tickets, on_change=self._changed)
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._stopping = asyncio.Event()  # releases stalled uploads
        self._waiters: set[asyncio.Future[None]] = set()
        self._event_numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._seed(bot_name)

    def _seed(self, bot_name: str) -> None:
        self.add_user(self.bot_user_id, bot_name, is_bot=True)
        self.add_user("U0ALICE", "alice")
        self.add_user("U0BOB", "bob")
        self.add_channel("C0DATA", "data")

    # ================================================================= lifecycle

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> FakeSlack:
        """Serve on 127.0.0.1 on a free port, in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeSlack is already running")
        self._runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Close Socket Mode connections and the HTTP client, then stop serving."""
        self._stopping.set()
        await self.socket.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{ticket}", self._handle_upload)
        app.router.add_get("/files-pri/{team_file}/{name}", self._handle_file)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._handle_file)
        app.router.add_post("/response-url/{key}", self._handle_response_url)
        app.router.add_get("/socket-mode", self.socket.handle)
        return app

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not running: use `async with FakeSlack()` or `await start()`")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: the bot's SLACK_API_URL (slack-sdk appends method names)."""
        return f"{self.base_url}/api/"

    # ================================================================= workspace setup

    def add_user(
        self,
        id: str,
        name: str,
        *,
        is_bot: bool = False,
        team_id: str | None = None,
        real_name: str = "",
        guest: GuestKind | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
    ) -> User:
        """A person (or bot).

        A ``team_id`` other than the workspace's makes a Slack Connect user (``is_stranger``
        in ``users.info`` until they share a conversation with the bot); ``guest`` a
        multi- or single-channel guest (``is_restricted`` / ``is_ultra_restricted``);
        ``enterprise_id`` a user of an Enterprise Grid org (``enterprise_user``).
        """
        user = User(
            id=id,
            name=name,
            team_id=team_id or self.team_id,
            is_bot=is_bot,
            real_name=real_name,
            bot_id=self.bot_id if id == self.bot_user_id else None,
            guest=guest,
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name,
        )
        self.workspace.add_user(user)
        self._changed()
        return user

    def add_channel(
        self,
        id: str,
        name: str,
        *,
        is_im: bool = False,
        is_private: bool = False,
        is_ext_shared: bool = False,
        members: list[str] | None = None,
        bot_is_member: bool = True,
    ) -> Channel:
        """A conversation. DMs (``is_im``) have ids starting with "D" and name their person in
        ``members``; channels default to every local person as a member (a channel shared
        with other organisations, ``is_ext_shared``, to every person, external ones too).
        The bot joins unless ``bot_is_member=False``.

        People from another organisation can only be in a shared channel: naming one as a
        member of an unshared channel is a ValueError (a DM with them is shared anyway).
        """
        if is_im != id.startswith("D"):
            raise ValueError(f"{id}: DM ids start with 'D', and only DMs' do")
        if members is None:
            if is_im:
                raise ValueError(f"DM {id} needs members=[<the person's user id>]")
            members = [
                u.id
                for u in self.workspace.users.values()
                if not u.is_bot and (is_ext_shared or u.team_id == self.team_id)
            ]
        outsiders = [m for m in members if self.workspace.is_external(m)]
        if outsiders and not is_ext_shared:
            if not is_im:
                raise ValueError(
                    f"{', '.join(outsiders)} belong to another organisation: "
                    f"only a channel shared with it can have them (add_channel({id!r}, ..., is_ext_shared=True))"
                )
            is_ext_shared = True
        channel = Channel(
            id=id,
            name=name,
            is_im=is_im,
            is_private=is_private or is_im,
            is_ext_shared=is_ext_shared,
            members=set(members) | ({self.bot_user_id} if bot_is_member else set()),
            im_user=next((m for m in members if m != self.bot_user_id), None) if is_im else None,
        )
        self.workspace.add_channel(channel)
        self._changed()
        return channel

    def open_dm(self, user: str) -> str:
        """The id of the bot's DM with ``user`` ("D…"), opened if it does not exist yet."""
        if user not in self.workspace.users or user == self.bot_user_id:
            raise ValueError(f"no person {user} to open a DM with: add_user() first")
        channel, created = self.workspace.open_dm(user)
        if created:
            self._changed()
        return channel.id

    def host_file(
        self,
        *,
        name: str,
        content: bytes,
        mimetype: str | None = None,
        filetype: str | None = None,
        user: str = "U0ALICE",
        size: int | None = None,
        title: str | None = None,
    ) -> JSON:
        """Host a file a person shared; returns its file object as events carry it.

        ``size`` overrides the size Slack reports (e.g. claim 150 MB without allocating it);
        downloads always serve ``content``.
        """
        file = self.workspace.new_file(name=name, user=user, mimetype=mimetype, filetype=filetype)
        file.title = title or name
        file.content = content
        file.claimed_size = size
        self.workspace.files[file.id] = file
        self._changed()
        return self.workspace.file_api(file)

    def delete_file(self, file_id: str) -> FileDeletion:
        """The person who shared the file deleted it: ``files.info`` answers ``file_deleted``,
        downloads stop, and the messages that carried it show a tombstone (as after the
        bot's ``files.delete``). Recorded in ``file_deletions``."""
        file = self.workspace.files[file_id]
        if file.state == "deleted":
            raise ValueError(f"file {file_id} is already deleted")
        deletion = self.workspace.delete_file(file, by=file.user, via="person")
        self._changed()
        return deletion

    @property
    def file_deletions(self) -> list[FileDeletion]:
        """Every file deletion, in order: the bot's ``files.delete`` calls and ``delete_file``."""
        return self.workspace.file_deletions

    def post_user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        files: list[JSON] | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
    ) -> JSON:
        """A person posts into ``channel`` (in ``thread_ts``'s thread); returns the message
        as the Web API shows it, plus ``channel``. ``files`` are ``host_file`` objects.
        """
        conversation = self._channel(channel)
        person = self.workspace.users.get(user)
        if person is None:
            raise ValueError(f"unknown user {user}: add_user() first")
        if user not in conversation.members:
            raise ValueError(f"{user} is not a member of {channel}")
        root = None
        if thread_ts is not None:
            root = self.workspace.thread_root(channel, thread_ts)
            if root is None:
                raise ValueError(f"no thread {thread_ts} in {channel}")
        message = Message(
            channel=channel,
            ts=self.workspace.clock.next(),
            text=text,
            user=user,
            team=person.team_id,
            thread_ts=root,
            subtype=subtype,
            blocks=rich_text_for(text),
            client_msg_id=new_client_msg_id(),
        )
        for file_object in files or []:
            file = self.workspace.files[file_object["id"]]
            self.workspace.share_file(file, message)
            message.files.append(self.workspace.file_api(file))
        message.upload = bool(message.files)
        self.workspace.add_message(message)
        self._changed()
        return {**self.workspace.message_api(message), "channel": channel}

    # ================================================================= events to the bot

    def event_callback(self, event: JSON, *, event_id: str | None = None, event_time: int | None = None) -> JSON:
        """The Events API envelope (``type: event_callback``) around ``event``."""
        channel = self.workspace.channels.get(_event_channel(event))
        return event_envelope(
            event,
            team_id=self.team_id,
            api_app_id=self.app_id,
            bot_user_id=self.bot_user_id,
            verification_token=self.verification_token,
            event_id=event_id or f"Ev0FAKE{next(self._event_numbers):05d}",
            event_time=event_time if event_time is not None else int(time.time()),
            is_ext_shared_channel=bool(channel and channel.is_ext_shared),
        )

    def mention_event(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        files: list[JSON] | None = None,
        thread_ts: str | None = None,
        file_access: Literal["visible", "check_file_info"] = "visible",
    ) -> tuple[JSON, JSON]:
        """A person mentions the bot: records the message, returns (message, envelope).

        ``<@BOT>`` is prepended to ``text`` unless it already mentions the bot.
        """
        mention = f"<@{self.bot_user_id}>"
        if mention not in text:
            text = f"{mention} {text}"
        message = self.post_user_message(channel, user, text, files=files, thread_ts=thread_ts)
        event = app_mention_event(self._as_event_message(message, file_access), channel=channel)
        return message, self.event_callback(self._with_connect_fields(event, channel, user))

    def file_share_message_event(
        self,
        channel: str,
        user: str,
        text: str = "",
        *,
        files: list[JSON],
        thread_ts: str | None = None,
        file_access: Literal["visible", "check_file_info"] = "visible",
    ) -> tuple[JSON, JSON]:
        """A person shares files: the ``message`` event with ``subtype: file_share``.

        ``file_access="check_file_info"`` sends the bare file objects Slack Connect events
        carry (id only; the bot must call ``files.info``).
        """
        message = self.post_user_message(channel, user, text, files=files, thread_ts=thread_ts, subtype="file_share")
        event = message_event(
            self._as_event_message(message, file_access),
            channel=channel,
            channel_type=self._channel(channel).channel_type,
            subtype="file_share",
        )
        return message, self.event_callback(self._with_connect_fields(event, channel, user))

    def message_event(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> tuple[JSON, JSON]:
        """A plain ``message`` event (e.g. a DM to the bot): records it, returns (message, envelope)."""
        message = self.post_user_message(channel, user, text, thread_ts=thread_ts)
        event = message_event(message, channel=channel, channel_type=self._channel(channel).channel_type)
        return message, self.event_callback(self._with_connect_fields(event, channel, user))

    def dm_message_event(
        self, user: str, text: str, *, files: list[JSON] | None = None, thread_ts: str | None = None
    ) -> tuple[JSON, JSON]:
        """A person writes to the bot in their DM (opened if needed): records the message,
        returns (message, envelope). With ``files`` (``host_file`` objects) it is the
        ``file_share`` message Slack sends; ``channel_type`` is "im"."""
        channel = self.open_dm(user)
        subtype = "file_share" if files else None
        message = self.post_user_message(channel, user, text, files=files, thread_ts=thread_ts, subtype=subtype)
        event = message_event(message, channel=channel, channel_type="im", subtype=subtype)
        return message, self.event_callback(self._with_connect_fields(event, channel, user))

    # ----------------------------------------------------------------- the assistant pane (AI apps)

    def assistant_thread_started_event(self, user: str, *, context_channel: str | None = None) -> tuple[str, str, JSON]:
        """A person opens the app's assistant pane: returns (thread_ts, dm channel, envelope).

        Like Slack, this creates the thread's root in the person's DM with the bot: a
        message from the bot user with ``subtype: assistant_app_thread`` (which Bolt and
        the bot skip). ``context_channel`` is the channel they are looking at; the context
        always names the team (``enterprise_id`` None: the workspace is not a Grid org).
        """
        channel = self.open_dm(user)
        root = self.workspace.add_message(
            Message(
                channel=channel,
                ts=self.workspace.clock.next(),
                text=ASSISTANT_THREAD_ROOT_TEXT,
                user=self.bot_user_id,
                team=self.team_id,
                subtype="assistant_app_thread",
            )
        )
        thread = self.workspace.assistant_thread(channel, root.ts)
        thread.user_id = user
        thread.change_context(self._assistant_context(context_channel))
        return root.ts, channel, self._assistant_thread_envelope("assistant_thread_started", channel, root.ts)

    def assistant_thread_context_changed_event(
        self, channel: str, thread_ts: str, *, context_channel: str | None
    ) -> JSON:
        """The person moved to another channel while the assistant pane is open."""
        thread = self._started_assistant_thread(channel, thread_ts)
        thread.change_context(self._assistant_context(context_channel))
        return self._assistant_thread_envelope("assistant_thread_context_changed", channel, thread_ts)

    def assistant_user_message_event(
        self, channel: str, user: str, text: str, *, thread_ts: str, files: list[JSON] | None = None
    ) -> tuple[JSON, JSON]:
        """The person writes in an assistant thread: records the reply, returns (message,
        envelope). The event is a ``message.im`` reply (``file_share`` with ``files``)
        that Bolt's ``Assistant`` routes to its ``user_message`` listener."""
        thread = self._started_assistant_thread(channel, thread_ts)
        if thread.user_id != user:
            raise ValueError(f"assistant thread {channel}/{thread_ts} belongs to {thread.user_id}, not {user}")
        subtype = "file_share" if files else None
        message = self.post_user_message(channel, user, text, files=files, thread_ts=thread_ts, subtype=subtype)
        event = assistant_message_event(message, channel=channel, subtype=subtype)
        return message, self.event_callback(self._with_connect_fields(event, channel, user))

    def _started_assistant_thread(self, channel: str, thread_ts: str) -> AssistantThread:
        thread = self.workspace.assistant_threads.get((channel, thread_ts))
        if thread is None or thread.user_id is None:
            raise ValueError(f"no assistant thread {channel}/{thread_ts}: assistant_thread_started_event() first")
        return thread

    def _assistant_context(self, context_channel: str | None) -> JSON:
        context: JSON = {"team_id": self.team_id, "enterprise_id": None}
        if context_channel is not None:
            self._channel(context_channel)
            context = {"channel_id": context_channel, **context}
        return context

    def _assistant_thread_envelope(
        self,
        kind: Literal["assistant_thread_started", "assistant_thread_context_changed"],
        channel: str,
        thread_ts: str,
    ) -> JSON:
        thread = self._started_assistant_thread(channel, thread_ts)
        event = assistant_thread_event(
            kind,
            user_id=str(thread.user_id),
            channel_id=channel,
            thread_ts=thread_ts,
            context=dict(thread.context),
            event_ts=self.workspace.clock.next(),
        )
        return self.event_callback(event)

    # ----------------------------------------------------------------- reactions

    def reaction_added_event(self, user: str, channel: str, ts: str, reaction: str) -> JSON:
        """A person reacts to a message: records the reaction (as their ``reactions.add``
        would) and returns the ``reaction_added`` envelope.

        ``reaction`` is the emoji name without colons; ``item_user`` is the message's
        author. ValueError where Slack would refuse the person (not in the channel, no such
        message, already reacted with that emoji).
        """
        message = self._reaction_target(user, channel, ts, reaction)
        users = message.reactions.setdefault(reaction, [])
        if user in users:
            raise ValueError(f"{user} already reacted :{reaction}: to {channel}/{ts} (already_reacted)")
        users.append(user)
        self._changed()
        return self._reaction_envelope("reaction_added", user, message, reaction)

    def reaction_removed_event(self, user: str, channel: str, ts: str, reaction: str) -> JSON:
        """A person takes their reaction back: removes it and returns the
        ``reaction_removed`` envelope (ValueError if they had not reacted so)."""
        message = self._reaction_target(user, channel, ts, reaction)
        users = message.reactions.get(reaction, [])
        if user not in users:
            raise ValueError(f"{user} has no :{reaction}: on {channel}/{ts} (no_reaction)")
        users.remove(user)
        if not users:
            del message.reactions[reaction]
        self._changed()
        return self._reaction_envelope("reaction_removed", user, message, reaction)

    def _reaction_target(self, user: str, channel: str, ts: str, reaction: str) -> Message:
        conversation = self._channel(channel)
        if user not in self.workspace.users:
            raise ValueError(f"unknown user {user}: add_user() first")
        if user not in conversation.members:
            raise ValueError(f"{user} is not a member of {channel}")
        if not EMOJI_NAME.match(reaction):
            raise ValueError(f"{reaction!r} is not an emoji name (no colons: 'thumbsup', not ':thumbsup:')")
        message = self.workspace.live_message(channel, ts)
        if message is None:
            raise ValueError(f"no message {ts} in {channel}")
        return message

    def _reaction_envelope(
        self, kind: Literal["reaction_added", "reaction_removed"], user: str, message: Message, reaction: str
    ) -> JSON:
        event = reaction_event(
            kind,
            user=user,
            reaction=reaction,
            channel=message.channel,
            ts=message.ts,
            item_user=message.user,
            event_ts=self.workspace.clock.next(),
        )
        return self.event_callback(event)

    # ----------------------------------------------------------------- App Home

    def app_home_opened_event(self, user: str, *, tab: Literal["home", "messages"] = "home") -> JSON:
        """A person opens the app's Home (``tab``): the ``app_home_opened`` envelope, in their
        DM with the app (opened if needed), carrying the Home tab they see now, if any.

        ValueError where Slack would send nothing: an unknown person, or an app whose
        manifest does not subscribe to ``app_home_opened``.
        """
        if user not in self.workspace.users or self.workspace.users[user].is_bot:
            raise ValueError(f"unknown user {user}: add_user() first")
        if "app_home_opened" not in manifest_bot_events():
            raise ValueError("manifest.yml does not subscribe to app_home_opened: Slack would not send it")
        dm = self.open_dm(user)
        event = app_home_opened_event(
            user=user, channel=dm, tab=tab, event_ts=self.workspace.clock.next(), view=self.home_view(user)
        )
        return self.event_callback(event)

    def home_view(self, user: str) -> JSON | None:
        """The Home tab ``user`` sees: the view last published for them (None: never)."""
        return self.workspace.home_views.get(user)

    def home_text(self, user: str) -> str:
        """What ``user`` reads on their Home tab ("" before anything is published)."""
        view = self.home_view(user)
        return render_blocks(view["blocks"]) if view else ""

    # ----------------------------------------------------------------- Slack Connect

    def _with_connect_fields(self, event: JSON, channel: str, user: str) -> JSON:
        """``event`` with the Slack Connect fields, in a shared conversation or for a
        person from another organisation."""
        person = self.workspace.users[user]
        external = person.team_id != self.team_id
        if external or self._channel(channel).is_ext_shared:
            profile = person.event_profile() if external else None
            event.update(connect_fields(user_team=person.team_id, user_profile=profile))
        return event

    # ----------------------------------------------------------------- files

    def file_deleted_event(self, file_id: str) -> JSON:
        """The ``file_deleted`` envelope for a file deleted already (``delete_file`` or the
        bot's ``files.delete``)."""
        file = self.workspace.files.get(file_id)
        if file is None or file.state != "deleted":
            raise ValueError(f"file {file_id} is not deleted: delete_file() first")
        return self.event_callback(file_deleted_event(file_id=file_id, event_ts=self.workspace.clock.next()))

    def file_shared_event(self, file: JSON | str, *, channel: str, user: str) -> JSON:
        """The ``file_shared`` envelope for ``file`` (a file object or id) shared in
        ``channel`` by ``user``. It only names ids: the bot calls ``files.info``."""
        file_id = file if isinstance(file, str) else str(file["id"])
        if file_id not in self.workspace.files:
            raise ValueError(f"unknown file {file_id}: host_file() first")
        self._channel(channel)
        event = file_shared_event(
            file_id=file_id, channel_id=channel, user_id=user, event_ts=self.workspace.clock.next()
        )
        return self.event_callback(event)

    def _as_event_message(self, message: JSON, file_access: str) -> JSON:
        if file_access != "check_file_info" or not message.get("files"):
            return message
        stubs = [self.workspace.files[f["id"]].stub() for f in message["files"]]
        return {**message, "files": stubs}

    def command_payload(
        self,
        *,
        command: str = "/analyze",
        text: str = "",
        user_id: str = "U0ALICE",
        channel_id: str = "C0DATA",
        trigger_id: str | None = None,
    ) -> dict[str, str]:
        """The fields of a slash command (form fields over HTTP, the payload in Socket Mode)."""
        user = self.workspace.users.get(user_id)
        channel = self.workspace.channels.get(channel_id)
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.workspace.team_domain,
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel and channel.is_im else (channel.name if channel else ""),
            "user_id": user_id,
            "user_name": user.name if user else "",
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(channel_id, user_id),
            "trigger_id": trigger_id or f"{next(self._event_numbers)}.{self.team_id}.{uuid.uuid4().hex}",
        }

    def new_response_url(self, channel_id: str, user_id: str, *, message_ts: str | None = None) -> str:
        """A response_url on the fake; posts to it land in ``responses`` and in the channel.

        ``message_ts`` (for interactions) is the message (or ephemeral) that
        ``replace_original``/``delete_original`` act on. Like Slack's, it works 5 times
        within 30 minutes (``expire_response_url`` ages it).
        """
        return self._answers.issue(self.base_url, channel_id, user_id, message_ts=message_ts)

    def expire_response_url(self, url: str) -> None:
        """Make ``url`` as old as Slack's 30-minute limit: posts now fail with ``expired_url``."""
        self._answers.expire(url)

    async def deliver_http(
        self,
        url: str,
        payload: JSON,
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        sign: bool = True,
        secret: str | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """POST an Events API payload to the bot as Slack does; returns (status, body, headers).

        ``timestamp`` forges ``X-Slack-Request-Timestamp`` (stale requests), ``secret``
        signs with another secret, ``sign=False`` omits the signature headers.
        """
        headers = {"Content-Type": "application/json"}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return await self._post_signed(url, json.dumps(payload), headers, timestamp, sign, secret)

    async def deliver_command(
        self,
        url: str,
        *,
        command: str = "/analyze",
        text: str = "",
        user_id: str = "U0ALICE",
        channel_id: str = "C0DATA",
        trigger_id: str | None = None,
        timestamp: int | None = None,
        sign: bool = True,
        secret: str | None = None,
        ack_timeout: float = COMMAND_ACK_TIMEOUT,
    ) -> tuple[int, str, dict[str, str]]:
        """POST a slash command (form-encoded, signed); its response_url points at the fake.

        Returns the bot's (status, body, headers) and shows its answer as Slack would
        (``command_replies``; ``visible_to``). No answer within ``ack_timeout`` (Slack's
        3 seconds) or no connection returns status 0 and shows the person Slack's error.
        """
        fields = self.command_payload(
            command=command, text=text, user_id=user_id, channel_id=channel_id, trigger_id=trigger_id
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        post = self._post_signed(url, urlencode(fields), headers, timestamp, sign, secret)
        try:
            status, body, answer_headers = await asyncio.wait_for(post, ack_timeout)
        except (TimeoutError, aiohttp.ClientConnectionError) as failure:
            failed = TIMEOUT_ERROR if isinstance(failure, TimeoutError) else UNREACHABLE_ERROR
            self._answers.answer_command(fields, via="http", http_status=0, error=failed)
            self._changed()
            return 0, "", {}
        payload, refused = parse_command_answer(status, body, answer_headers.get("Content-Type", ""))
        self._answers.answer_command(fields, via="http", http_status=status, body=body, payload=payload, error=refused)
        self._changed()
        return status, body, answer_headers

    def click(self, user: str, channel: str, ts: str, action_id: str, *, positive: bool = True) -> JSON:
        """The ``block_actions`` payload of ``user`` clicking ``action_id`` on the bot's message
        ``ts`` — built from the element the message really shows (a test can only press what is
        there). For feedback buttons, ``positive`` picks 👍 or 👎. The payload's trigger_id can
        open one view (``views.open``), as Slack's does.

        Shape: docs interactivity/handling-user-interaction (block_actions payload); a feedback
        button's action carries the pressed button's ``value`` (bolt-js FeedbackButtonsAction).
        """
        message = self.message(channel, ts)
        found = [
            (block, element)
            for block in message.blocks or []
            for element in block.get("elements") or []
            if isinstance(element, dict) and element.get("action_id") == action_id
        ]
        if not found:
            raise AssertionError(f"message {ts} shows no element {action_id!r}")
        block, element = found[0]
        action: JSON = {
            "type": element["type"],
            "action_id": action_id,
            "block_id": block.get("block_id") or "",
            "action_ts": f"{time.time():.6f}",
        }
        if element["type"] == "feedback_buttons":
            pressed = element["positive_button" if positive else "negative_button"]
            action.update(value=pressed["value"], text=pressed["text"])
        else:
            action.update(value=element.get("value", ""), text=element.get("text"))
        trigger = f"{next(self._event_numbers)}.{self.team_id}.{uuid.uuid4().hex}"
        self.api.issued_triggers[trigger] = user
        person = self.workspace.users[user]
        api_message: JSON = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
        if message.thread_ts:
            api_message["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": {"id": user, "username": person.name, "name": person.name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {"type": "message", "message_ts": message.ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": trigger,
            "team": {"id": self.team_id, "domain": self.workspace.team_domain},
            "channel": {"id": channel, "name": self.workspace.channels[channel].name},
            "message": api_message,
            "response_url": self.new_response_url(channel, user, message_ts=message.ts),
            "actions": [action],
        }

    def submit_view(self, view_id: str, values: dict[str, dict[str, str]]) -> JSON:
        """The ``view_submission`` payload of the person a view was opened for, submitting it with
        ``values``: block_id → action_id → typed text (docs: view-interactions-payload)."""
        view = self.api.views[view_id]
        user = str(view["user"])
        state = {
            block: {action: {"type": "plain_text_input", "value": text} for action, text in fields.items()}
            for block, fields in values.items()
        }
        shown = {k: v for k, v in view.items() if k != "user"}
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.workspace.team_domain},
            "user": {"id": user, "username": self.workspace.users[user].name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "trigger_id": f"{next(self._event_numbers)}.{self.team_id}.{uuid.uuid4().hex}",
            "view": {**shown, "state": {"values": state}, "team_id": self.team_id, "app_id": self.app_id},
        }

    async def deliver_interaction(
        self,
        url: str,
        payload: JSON,
        *,
        timestamp: int | None = None,
        sign: bool = True,
        secret: str | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """POST an interaction (``payload=<json>`` form field, signed)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        body = urlencode({"payload": json.dumps(payload)})
        return await self._post_signed(url, body, headers, timestamp, sign, secret)

    async def _post_signed(
        self,
        url: str,
        body: str,
        headers: dict[str, str],
        timestamp: int | None,
        sign: bool,
        secret: str | None,
    ) -> tuple[int, str, dict[str, str]]:
        headers = {"User-Agent": SLACK_USER_AGENT, **headers}
        if sign:
            stamp = str(timestamp if timestamp is not None else int(time.time()))
            headers["X-Slack-Request-Timestamp"] = stamp
            headers["X-Slack-Signature"] = signature(secret or self.signing_secret, stamp, body)
        async with self._http().post(url, data=body.encode(), headers=headers) as response:
            return response.status, await response.text(), dict(response.headers)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # ================================================================= Socket Mode

    @property
    def socket_connections(self) -> int:
        """Open Socket Mode connections right now."""
        return self.socket.open_connections

    @property
    def socket_connects(self) -> int:
        """Socket Mode connections ever opened (a reconnect counts again)."""
        return self.socket.connects

    @property
    def socket_acks(self) -> list[JSON]:
        """Every ack Socket Mode clients sent back, in order."""
        return self.socket.acks

    async def wait_socket_connected(self, *, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: self.socket_connections > 0, timeout=timeout, what="a Socket Mode connection")

    async def deliver_socket(
        self,
        payload: JSON,
        *,
        envelope_type: str = "events_api",
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
        timeout: float = DEFAULT_ACK_TIMEOUT,
    ) -> JSON:
        """Send an envelope to the newest Socket Mode connection and return its ack.

        ``payload`` is an ``event_callback`` envelope for ``events_api``, the command
        fields (``command_payload()``) for ``slash_commands``, the interaction for
        ``interactive``. Raises AssertionError if no ack arrives within ``timeout``. The
        ack's ``payload`` to a slash command is shown as Slack would (``command_replies``).
        """
        ack = await self.socket.deliver(
            payload,
            envelope_type=envelope_type,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            envelope_id=envelope_id,
            timeout=timeout,
        )
        if envelope_type == "slash_commands":
            answer = ack.get("payload")
            self._answers.answer_command(
                payload, via="socket", http_status=200, payload=answer if isinstance(answer, dict) else None
            )
            self._changed()
        return ack

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` frame to every open connection (clients reconnect)."""
        await self.socket.disconnect(reason)

    # ================================================================= faults

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        mode: Literal["answer", "drop", "stall"] = "answer",
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        ``status=429``: HTTP 429, ``Retry-After`` (default 1) and ``error: ratelimited``;
        ``status>=500``: that status with an HTML body; otherwise ``{"ok": false, "error":
        error}`` with ``status``. ``method`` may also be "upload" (the POST of file bytes)
        or "download" (a hosted file; ``status=200`` there serves the login page). Uploads
        can also fail without an answer: ``mode="drop"`` closes the connection, ``"stall"``
        never answers (until the fake stops).
        """
        if mode != "answer" and method != "upload":
            raise ValueError("only uploads can drop or stall")
        if status == 200 and error is None and method != "download" and mode == "answer":
            raise ValueError("fail_next needs an error code or a non-200 status")
        self._faults[method].extend(Fault(status, error, retry_after, mode) for _ in range(times))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of Slack's time pass (for what expires on Slack's side: streams)."""
        self.workspace.seconds += seconds
        self._changed()

    def expire_stream(self, channel: str, ts: str) -> None:
        """Slack's server-side stream timeout: append/stop now fail with
        ``message_not_in_streaming_state`` (python-slack-sdk#1880)."""
        stream = self.message(channel, ts).stream
        if stream is None:
            raise ValueError(f"{channel}/{ts} is not a streamed message")
        stream.streaming = False
        stream.stopped_by = "timeout"
        self._changed()

    def _take_fault(self, key: str) -> Fault | None:
        queue = self._faults.get(key)
        return queue.popleft() if queue else None

    # ================================================================= HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: JSON = {}
        token: str | None = None
        bad_request: ApiError | None = None
        try:
            params, token = await read_api_request(request)
        except ApiError as error:
            bad_request = error
        call = ApiCall(method=method, params=decode_json_arguments(params), token=token)
        call.connection = request.transport.get_extra_info("peername") if request.transport else None
        self.calls.append(call)
        fault = self._take_fault(method)
        if fault is not None:
            response = fault_response(fault, call)
        else:
            try:
                if bad_request is not None:
                    raise bad_request
                call.response = self.api.call(method, params, token)
            except ApiError as error:
                call.response = error.body()
            response = web.json_response(call.response, headers=self._scope_headers(token))
        self._changed()
        return response

    def _scope_headers(self, token: str | None) -> dict[str, str]:
        """Slack reports the scopes a valid token has on its Web API responses.

        docs: docs.slack.dev/apis/web-api (scopes) — ``x-oauth-scopes`` lists the token's granted
        scopes, comma-separated; Bolt reads it from ``auth.test`` (slack_bolt/middleware/authorization/internals.py).
        """
        if token == self.bot_token:
            return {"x-oauth-scopes": ",".join(sorted(self.granted_scopes))}
        if token == self.app_token:
            return {"x-oauth-scopes": "connections:write"}
        return {}

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        data = await upload_body(request)
        file = self.workspace.file_by_ticket(ticket)
        record = Upload(
            file_id=file.id if file else None,
            ticket=ticket,
            received=len(data),
            expected=file.expected_length if file else None,
            accepted=False,
        )
        self.uploads.append(record)
        fault = self._take_fault("upload")
        if fault is not None:
            record.reason = f"fault: {fault.mode if fault.mode != 'answer' else fault.status}"
            self._changed()
            if fault.mode == "drop" and request.transport is not None:
                request.transport.abort()  # no answer at all: the client sees the connection close
            if fault.mode == "stall":
                await self._stopping.wait()
            return fault_response(fault)
        status, record.reason = upload_problem(file, data)
        if file is not None and status == 200:
            file.content = data
            file.state = "uploaded"
            record.accepted = True
        self._changed()
        return web.Response(status=status, text=record.reason, content_type="text/plain")

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["team_file"].removeprefix(f"{self.team_id}-")
        token = bearer(request)
        authorized = token == self.bot_token
        record = Download(file_id=file_id, path=request.path, token=token, authorized=authorized, status=200)
        self.downloads.append(record)
        self._changed()
        fault = self._take_fault("download")
        if fault is not None and fault.status != 200:
            record.status = fault.status
            return fault_response(fault)
        file = self.workspace.files.get(file_id)
        if file is None or file.state != "complete" or file.name != request.match_info["name"]:
            record.status = 404
            return web.Response(status=404, text="<html><body>File not found</body></html>", content_type="text/html")
        if not authorized or fault is not None:
            record.authorized = False
            return web.Response(text=self._login_page(), content_type="text/html")
        return await stream_file(request, file, download="/download/" in request.path)

    def _login_page(self) -> str:
        return LOGIN_PAGE_HTML.format(team_name=self.workspace.team_name, team_domain=self.workspace.team_domain)

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if not self._answers.knows(key):
            return web.Response(status=404, text="no_such_response_url")
        try:
            payload = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="invalid_payload")
        status, text = self._answers.post(key, payload)
        self._changed()
        return web.Response(status=status, text=text)

    # ================================================================= inspection

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Root and replies of a thread, oldest first, as a person sees it (deleted ones left out).

        ``thread_ts`` may also be a reply's ts: its whole thread is returned.
        """
        return self.workspace.thread(channel, self.workspace.thread_root(channel, thread_ts) or thread_ts)

    def channel_messages(self, channel: str) -> list[Message]:
        """What the channel shows: live top-level messages and broadcast replies, oldest first."""
        return self.workspace.top_level(channel)

    def message(self, channel: str, ts: str) -> Message:
        """Any message, deleted ones included."""
        message = self.workspace.find_message(channel, ts)
        if message is None:
            known = [m.ts for m in self.workspace.messages.get(channel, [])]
            raise KeyError(f"no message {ts} in {channel}; it has {known}")
        return message

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[Message]:
        """The bot's live messages in a thread (or anywhere in the channel)."""
        pool = self.thread(channel, thread_ts) if thread_ts else self.workspace.messages.get(channel, [])
        return [m for m in pool if m.by_bot and not m.deleted]

    def ephemerals(
        self,
        channel: str | None = None,
        user: str | None = None,
        *,
        thread_ts: str | None = None,
        include_deleted: bool = False,
    ) -> list[Ephemeral]:
        """Ephemeral messages (``chat.postEphemeral``, response_urls, command answers), oldest
        first; ones a response_url deleted only with ``include_deleted``. ``thread_ts``
        keeps those shown in that thread (a reply's ts names its thread when ``channel`` is
        given)."""
        if thread_ts is not None and channel is not None:
            thread_ts = self.workspace.thread_root(channel, thread_ts) or thread_ts
        return [
            e
            for e in self.workspace.ephemerals
            if (channel is None or e.channel == channel)
            and (user is None or e.user == user)
            and (thread_ts is None or e.thread_ts == thread_ts)
            and (include_deleted or not e.deleted)
        ]

    def visible_to(self, user: str, channel: str, *, thread_ts: str | None = None) -> list[Message | Ephemeral]:
        """What ``user`` sees in ``channel`` (or in the thread ``thread_ts``), oldest first:
        the live messages and the ephemerals shown to them. Nothing for a private channel
        or DM they are not in."""
        conversation = self._channel(channel)
        if user not in conversation.members and (conversation.is_private or conversation.is_im):
            return []
        root = self.workspace.thread_root(channel, thread_ts) if thread_ts else None
        messages: list[Message | Ephemeral] = []
        messages += self.thread(channel, thread_ts) if thread_ts else self.channel_messages(channel)
        messages += [e for e in self.ephemerals(channel, user) if e.thread_ts == root]
        return sorted(messages, key=lambda item: ts_key(item.ts))

    def visible_text(self, message: Message | Ephemeral | JSON) -> str:
        """What a person reads in ``message`` (a Message, an Ephemeral, or a message dict with
        channel and ts)."""
        if not isinstance(message, Message | Ephemeral):
            message = self.message(str(message["channel"]), str(message["ts"]))
        return self.workspace.visible_text(message)

    def assistant_thread(self, channel: str, thread_ts: str) -> AssistantThread | None:
        """Status, suggested prompts and title the bot set on a thread (None if it set nothing)."""
        return self.workspace.assistant_threads.get((channel, thread_ts))

    def file(self, file_id: str) -> SlackFile:
        return self.workspace.files[file_id]

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    # ================================================================= synchronisation

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "") -> None:
        """Return as soon as ``predicate()`` is true; it is re-checked after every change
        (API call, upload, download, event, socket frame, setup helper).

        Raises AssertionError with the recent API calls if ``timeout`` passes first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._timeout_report(what or getattr(predicate, "__name__", "condition"), timeout))
            changed: asyncio.Future[None] = loop.create_future()
            self._waiters.add(changed)
            try:
                await asyncio.wait_for(changed, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(changed)

    async def wait_for_call(
        self, method: str, *, where: Callable[[ApiCall], bool] | None = None, timeout: float = 10.0
    ) -> ApiCall:
        """The first call of ``method`` (matching ``where``), waiting for it if needed."""

        def found() -> ApiCall | None:
            return next((c for c in self.calls if c.method == method and (where is None or where(c))), None)

        await self.wait_for(lambda: found() is not None, timeout=timeout, what=f"a {method} call")
        call = found()
        assert call is not None
        return call

    def _changed(self) -> None:
        """Wake every ``wait_for``: some state changed."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _timeout_report(self, what: str, timeout: float) -> str:
        recent = "\n".join(f"  {call.summary()}" for call in self.calls[-15:]) or "  (none)"
        return f"timed out after {timeout}s waiting for {what}; last API calls:\n{recent}"

    def _channel(self, channel_id: str) -> Channel:
        channel = self.workspace.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}: add_channel() first")
        return channel


def _event_channel(event: JSON) -> str:
    """The conversation an event happened in, wherever its type keeps it."""
    thread = event.get("assistant_thread")
    nested = thread.get("channel_id") if isinstance(thread, dict) else None
    item = event.get("item")
    reacted = item.get("channel") if isinstance(item, dict) else None
    return str(event.get("channel") or event.get("channel_id") or nested or reacted or "")
