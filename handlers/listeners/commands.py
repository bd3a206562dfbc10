"""``/analyze``: acknowledged at once (Slack waits 3 s), the work handed to the analyst."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.analyst import Analyst
from bot.commands import parse_command
from handlers.slack.slash import SlashCommands, SlashRequest
from handlers.slack.surface import SlackSurface

ACK_TEXT = {
    "analyze": "On it — I'll post the analysis in this channel.",
    "usage": "Looking up your usage…",
    "forget": "Deleting your files and history…",
}


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    commands = SlashCommands(analyst, surface)

    @app.command("/analyze")
    async def on_analyze(ack: AsyncAck, command: dict[str, Any]) -> None:
        request = SlashRequest(
            team_id=str(command.get("team_id", "")),
            channel_id=str(command.get("channel_id", "")),
            user_id=str(command.get("user_id", "")),
            text=str(command.get("text", "")),
            response_url=str(command.get("response_url", "")),
            command=str(command.get("command", "/analyze")),
            trigger_id=str(command.get("trigger_id", "")),
        )
        kind = parse_command(request.text).kind
        if kind == "help":
            await ack(response_type="ephemeral", text=commands.help(request.command))
            return
        await ack(response_type="ephemeral", text=ACK_TEXT[kind])
        analyst.spawn(commands.handle(request), name=f"{request.command} {kind}")
