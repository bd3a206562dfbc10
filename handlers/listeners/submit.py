"""The one thing every event listener does: payload → request → analyst, at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from slack_bolt.async_app import AsyncBoltContext

from bot.analyst import Analyst
from bot.requests import AnalysisRequest


class Parser(Protocol):
    def __call__(
        self, event: dict[str, Any], *, team_id: str, bot_user_id: str | None, event_id: str | None = None
    ) -> AnalysisRequest | None: ...


def submitting(
    parse: Parser, analyst: Analyst
) -> Callable[[dict[str, Any], dict[str, Any], AsyncBoltContext], Awaitable[None]]:
    """A Bolt event listener that parses the event and submits any request it yields."""

    async def listener(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        request = parse(
            event,
            team_id=context.team_id or str(body.get("team_id", "")),
            bot_user_id=context.bot_user_id,
            event_id=body.get("event_id"),
        )
        if request is not None:
            analyst.submit(request)

    return listener
