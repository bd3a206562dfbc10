"""``/analyze``: an analysis started from a slash command, and its subcommands.

The command's data is a Slack file link in the text, else the files the person shared
most recently in the channel (within ``ANALYST_RECENT_FILES_HOURS``), else a how-to.
The analysis itself is public: a root message (“@person asked: …”) with the work in
its thread, so follow-ups work there too. Replies meant only for the caller go back
through the command's ``response_url`` as ephemeral messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import NOT_YOURS_TO_ANALYSE, access_refusal, may_analyse_file
from bot.analyst import Analyst
from bot.commands import Command, help_text, parse_command
from bot.errors import UserFacingError
from bot.requests import AnalysisRequest, SharedFile
from bot.sanitize import clean_question, neutralize
from handlers.slack.clients import post_message
from handlers.slack.errors import describe_slack_error, slack_error_code
from handlers.slack.files import complete_file
from handlers.slack.surface import SlackSurface

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlashRequest:
    team_id: str
    channel_id: str
    user_id: str
    text: str
    response_url: str
    command: str = "/analyze"
    trigger_id: str = ""


def no_data_text(command: str, recent_hours: float) -> str:
    return (
        f"I don't see a file to analyse: you haven't shared one in this channel in the last {recent_hours:g} h. "
        f"Attach a data file to a message here, then run `{command} your question` — or paste the file's link "
        f"after `{command}`."
    )


class SlashCommands:
    def __init__(self, analyst: Analyst, surface: SlackSurface) -> None:
        self.analyst = analyst
        self.settings = analyst.settings
        self.surface = surface
        self.slack: AsyncWebClient = surface.client
        self.http: aiohttp.ClientSession = surface.http

    async def handle(self, request: SlashRequest) -> None:
        if request.trigger_id and not await self.analyst.claim_command(request.trigger_id):
            log.info("%s %s already handled; ignoring the redelivery", request.command, request.trigger_id)
            return
        command = parse_command(request.text)
        if command.kind == "help":
            await self.reply(request, self.help(request.command))
        elif command.kind == "usage" or command.kind == "forget":
            text = await self.analyst.command(command.kind, user_id=request.user_id, team_id=request.team_id)
            await self.reply(request, text)
        else:
            await self.analyze(request, command)

    def help(self, command: str = "/analyze") -> str:
        settings = self.settings
        return help_text(max_file_mb=settings.max_file_mb, recent_hours=settings.recent_files_hours, command=command)

    async def reply(self, request: SlashRequest, text: str) -> None:
        """An ephemeral reply to the caller, through the command's response_url."""
        try:
            async with self.http.post(
                request.response_url, json={"response_type": "ephemeral", "text": text}
            ) as response:
                if response.status == 200:
                    return
                log.warning("response_url answered %s", response.status)
        except aiohttp.ClientError as error:
            log.warning("response_url failed: %r", error)
        try:
            await self.slack.chat_postEphemeral(channel=request.channel_id, user=request.user_id, text=text)
        except SlackApiError as error:
            log.error("could not reply to %s: %s", request.command, slack_error_code(error))

    async def analyze(self, request: SlashRequest, command: Command) -> None:
        settings = self.settings
        external = await self.surface.people.is_external(
            request.user_id, team_id=self.surface.team_id or request.team_id
        )
        refusal = access_refusal(settings, user_id=request.user_id, channel_id=request.channel_id, external=external)
        if refusal is not None:
            await self.reply(request, f":no_entry_sign: {refusal}")
            return
        file_ids = list(command.file_ids)
        if not file_ids:
            file_ids = await self.analyst.recent_shares(channel_id=request.channel_id, user_id=request.user_id)
        if not file_ids:
            await self.reply(request, no_data_text(request.command, settings.recent_files_hours))
            return
        files = await self.files_to_analyse(request, file_ids)
        if files is None:
            return
        question = clean_question(
            command.question,
            bot_user_id=self.surface.bot_user_id,
            user_names=await self.surface.people.names_in(command.question, skip=self.surface.bot_user_id),
        )
        shown = neutralize(question.text) if question.text else "a general analysis of the data"
        try:
            ts = await post_message(self.slack, request.channel_id, f"<@{request.user_id}> asked: {shown}")
        except SlackApiError as error:
            problem = describe_slack_error(str(error.response.get("error", "unknown")))
            await self.reply(request, f"I couldn't start the analysis here. {problem.message}")
            return
        outcome = await self.analyst.handle(
            AnalysisRequest(
                team_id=request.team_id,
                channel_id=request.channel_id,
                user_id=request.user_id,
                message_ts=ts,
                thread_ts=ts,
                text=command.question,
                files=files,
                source="command",
            )
        )
        if outcome == "refused":  # the caller was told why; the public "asked:" message goes
            try:
                await self.slack.chat_delete(channel=request.channel_id, ts=ts)
            except SlackApiError as error:
                log.warning("could not remove the refused command's message: %s", error.response.get("error"))

    async def files_to_analyse(self, request: SlashRequest, file_ids: list[str]) -> tuple[SharedFile, ...] | None:
        """The files looked up in Slack, if the caller may have every one analysed here.

        A link names any file the bot can see, and the bot sees more than the caller: so each
        file must pass the file rule (``bot.access.may_analyse_file``) before anything else
        happens — no download, no upload, no Claude call, no public message. Otherwise the
        caller alone is told why, and None is returned."""
        found: list[SharedFile] = []
        for file_id in file_ids:
            try:
                file = await complete_file(self.slack, SharedFile(id=file_id))
            except UserFacingError as problem:
                await self.reply(request, f":warning: {problem.message}")
                return None
            if not may_analyse_file(file, asker=request.user_id, conversation_id=request.channel_id):
                log.warning(
                    "%s linked %s in %s: neither theirs nor shared there; refused",
                    request.user_id,
                    file_id,
                    request.channel_id,
                )
                await self.reply(request, f":no_entry_sign: {NOT_YOURS_TO_ANALYSE}")
                return None
            found.append(file)
        return tuple(found)
