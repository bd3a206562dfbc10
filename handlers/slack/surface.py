"""Slack as the core's :class:`bot.surface.Surface`: publishers, files, people, and the
bot's own words outside a run (thread replies, ephemeral notes, reactions, deletions)."""

from __future__ import annotations

import logging

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import Problem
from bot.files_api import FilesApi
from bot.notebook import NotebookRecorder
from bot.requests import AnalysisRequest
from bot.sanitize import clean_question
from bot.settings import Settings
from bot.surface import PostLog, Publisher
from handlers.slack.clients import post_message, upload_client
from handlers.slack.errors import describe_slack_failure, slack_error_code
from handlers.slack.files import SlackFiles
from handlers.slack.people import People
from handlers.slack.progress import SlackThread
from handlers.slack.publisher import SlackPublisher, pane_title, react

log = logging.getLogger(__name__)


class SlackSurface:
    def __init__(self, settings: Settings, client: AsyncWebClient, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.client = client
        self.http = http
        # files_upload_v2 goes through a twin client whose timeout fits the largest file.
        self.uploads = upload_client(client, settings)
        self.files = SlackFiles(client, http, token=settings.slack_bot_token or "")
        self.people = People(client)
        self.bot_user_id: str | None = None
        self.team_id: str | None = None

    async def connect(self) -> None:
        identity = await self.client.auth_test()
        self.bot_user_id = identity.get("user_id")
        self.team_id = identity.get("team_id")
        log.info("connected to Slack team %s as %s", self.team_id, self.bot_user_id)

    def publisher(self, request: AnalysisRequest, run_id: int, posted: PostLog, outputs: FilesApi) -> Publisher:
        return SlackPublisher(
            self.client,
            outputs,
            SlackThread(request.team_id, request.channel_id, request.thread_ts, request.user_id, request.user_team),
            max_files=self.settings.max_output_files,
            max_file_bytes=self.settings.max_output_file_bytes,
            assistant=request.source == "assistant",
            on_post=posted,
            uploads=self.uploads,
            message_ts=request.message_ts,
            run_id=run_id,
            pane_title=pane_title(request.text, [f.name for f in request.files]),
            notebook=NotebookRecorder(clean_question(request.text, bot_user_id=self.bot_user_id).text)
            if self.settings.notebook
            else None,
        )

    async def tell_thread(self, request: AnalysisRequest, text: str) -> None:
        try:
            await post_message(self.client, request.channel_id, text, thread_ts=request.thread_ts)
        except SlackApiError as error:
            log.error("could not post to %s: %s", request.thread_ts, slack_error_code(error))

    async def tell_privately(self, request: AnalysisRequest, text: str) -> None:
        """An ephemeral message (in the thread when there is one); a thread reply where
        Slack can't show it ephemerally."""
        thread_ts = request.thread_ts if request.thread_ts != request.message_ts else None
        try:
            await self.client.chat_postEphemeral(
                channel=request.channel_id, user=request.user_id, text=text, thread_ts=thread_ts
            )
            return
        except SlackApiError as error:
            log.info("ephemeral message not possible (%s); replying in the thread", slack_error_code(error))
        await self.tell_thread(request, text)

    async def react(self, request: AnalysisRequest, name: str, *, remove: str | None = None) -> None:
        await react(self.client, request.channel_id, request.message_ts, name, remove=remove)

    async def delete_replies(self, channel_id: str, thread_ts: str, *, messages: set[str], files: set[str]) -> None:
        messages = messages | await self._messages_sharing(channel_id, thread_ts, files)
        for file_id in files:
            try:
                await self.client.files_delete(file=file_id)
            except SlackApiError as error:
                log.warning("could not delete file %s: %s", file_id, slack_error_code(error))
        for ts in messages:
            try:
                await self.client.chat_delete(channel=channel_id, ts=ts)
            except SlackApiError as error:
                log.warning("could not delete message %s: %s", ts, slack_error_code(error))

    async def _messages_sharing(self, channel_id: str, thread_ts: str, files: set[str]) -> set[str]:
        """The bot's messages in the thread that carry any of ``files`` (Slack posts them for
        files_upload_v2; their ts isn't in the upload's answer)."""
        if not files:
            return set()
        try:
            replies = await self.client.conversations_replies(channel=channel_id, ts=thread_ts, limit=200)
        except SlackApiError as error:
            log.warning("could not read the thread to find file messages: %s", slack_error_code(error))
            return set()
        return {
            str(m["ts"])
            for m in replies.get("messages") or ()
            if m.get("user") == self.bot_user_id and files & {f.get("id") for f in m.get("files") or ()}
        }

    def describe_failure(self, error: BaseException) -> Problem | None:
        return describe_slack_failure(error)
