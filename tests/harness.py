"""Drives the running bot the way people and Slack do, and reads back what they'd see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.settings import Settings
from handlers.server import RunningBot
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_events import message_event
from tests.fakes.slack_models import Message

CHANNEL = "C0DATA"
SETTLE_LIMIT_S = 600
ALICE = "U0ALICE"


@dataclass
class Asked:
    """A question put to the bot, and where its answer appears."""

    message: dict[str, Any]
    envelope: dict[str, Any]
    channel: str

    @property
    def ts(self) -> str:
        return str(self.message["ts"])

    @property
    def thread_ts(self) -> str:
        return str(self.message.get("thread_ts") or self.message["ts"])


class Harness:
    """The bot, started in HTTP mode against the fakes, plus ways to talk to it."""

    def __init__(
        self,
        env: dict[str, str],
        slack: FakeSlack,
        claude: FakeAnthropic,
        *,
        socket: bool = False,
        metrics_port: int | None = None,
    ) -> None:
        self.env = {**env, "SLACK_APP_TOKEN": slack.app_token} if socket else env
        self.socket = socket
        self.metrics_port = metrics_port  # Socket Mode: serve /metrics and /healthz (0: on a free port)
        self.slack = slack
        self.claude = claude
        self.bot: RunningBot | None = None
        self.clock_offset = 0.0  # seconds added to the bot's clock (to start it "later")

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        settings = Settings.from_env(self.env, http=not self.socket)
        clock = (lambda: time.time() + self.clock_offset) if self.clock_offset else None
        self.bot = await RunningBot(
            settings, http=not self.socket, port=0, host="127.0.0.1", clock=clock, metrics_port=self.metrics_port
        ).start()
        if self.socket:
            await self.slack.wait_socket_connected()

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.stop(grace=30)
            self.bot = None

    @property
    def running(self) -> RunningBot:
        assert self.bot is not None, "the bot is not running"
        return self.bot

    @property
    def events_url(self) -> str:
        return self.running.url + "/slack/events"

    async def deliver(self, envelope: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        status, text, _ = await self.slack.deliver_http(self.events_url, envelope, **kwargs)
        return status, text

    async def settle(self) -> None:
        """Wait until every analysis the bot started has finished.

        The limit only turns a hang into a failure; it is no speed assert, so it is far above
        what any test needs even on a loaded machine."""
        assert await self.running.analyst.drain(timeout=SETTLE_LIMIT_S), (
            f"analyses still running after {SETTLE_LIMIT_S} s"
        )

    def file(self, name: str, content: bytes, **kwargs: Any) -> dict[str, Any]:
        return self.slack.host_file(name=name, content=content, **kwargs)

    async def mention(
        self,
        text: str,
        *,
        files: list[dict[str, Any]] | None = None,
        via: str = "mention",
        channel: str = CHANNEL,
        user: str = ALICE,
        thread_ts: str | None = None,
        settle: bool = True,
    ) -> Asked:
        """@mention the bot (with files), delivered as Slack would.

        ``via`` picks the events: ``mention`` (app_mention only), ``file_share`` (only the
        message event, as Slack sometimes does), or ``both`` (each, in that order).
        """
        if via == "file_share":
            message, envelope = self.slack.file_share_message_event(
                channel, user, text, files=files or [], thread_ts=thread_ts
            )
            envelopes = [envelope]
        else:
            message, envelope = self.slack.mention_event(channel, user, text, files=files, thread_ts=thread_ts)
            envelopes = [envelope]
            if via == "both":
                share = message_event(message, channel=channel, channel_type="channel", subtype="file_share")
                envelopes.append(self.slack.event_callback(share))
        for item in envelopes:
            status, body = await self.deliver(item)
            assert status == 200, (status, body)
        if settle:
            await self.settle()
        return Asked(message, envelope, channel)

    async def click(
        self, user: str, message: Message, action_id: str, *, positive: bool = True, settle: bool = True
    ) -> None:
        """``user`` presses ``action_id`` on the bot's ``message``, delivered as Slack would."""
        payload = self.slack.click(user, message.channel, message.ts, action_id, positive=positive)
        status, _, _ = await self.slack.deliver_interaction(self.events_url, payload)
        assert status == 200, status
        if settle:
            await self.settle()

    def replies(self, asked: Asked) -> list[Message]:
        """The bot's messages in the thread of ``asked``."""
        return [m for m in self.slack.thread(asked.channel, asked.thread_ts) if m.bot_id]

    def thread_text(self, asked: Asked) -> str:
        return "\n---\n".join(self.slack.visible_text(m) for m in self.replies(asked))

    def thread_files(self, asked: Asked) -> list[Any]:
        return [f for m in self.replies(asked) for f in m.files]


def prompt_text(message: dict[str, Any]) -> str:
    """The text of a user turn of a Messages request, whatever blocks surround it."""
    return "\n".join(b["text"] for b in message["content"] if b.get("type") == "text")
