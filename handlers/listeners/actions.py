"""Interactions with the bot's messages: Stop, 👍/👎 (and the "what was wrong?" form), delete.

Every interaction is acknowledged at once — Slack shows the person an error when one is not
answered with HTTP 200 within 3 seconds (docs: interactivity/handling-user-interaction) —
and the work goes on in a tracked background task, started before the acknowledgement (so
nothing is lost between the two, and a shutdown drains it). What an action needs comes from its button's value
and the store, so buttons keep working after a restart. A 👎 opens its form right away,
while the click's ``trigger_id`` is fresh. Interactions with no listener of their own are
acknowledged by the catch-all, registered last.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.analyst import Analyst
from bot.schema import Rating
from handlers.slack.controls import COMMENT_FORM, DELETE, RATE, STOP, comment_form, comment_of, rating_of, run_of
from handlers.slack.errors import slack_error_code
from handlers.slack.surface import SlackSurface

log = logging.getLogger(__name__)

EVERY_ACTION = re.compile(".*")


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    return dict(actions[0])


def _where(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(user, channel, thread) of a click on a message."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    message = body.get("message") or {}
    thread = message.get("thread_ts") or (body.get("container") or {}).get("thread_ts")
    return str((body.get("user") or {}).get("id") or ""), str(channel), thread


async def _tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    """A note only the person who clicked sees, next to the message they clicked."""
    user, channel, thread = _where(body)
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread)
    except SlackApiError as error:
        log.warning("could not answer %s's click privately: %s", user, slack_error_code(error))


def _team(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")


async def _rate(analyst: Analyst, client: AsyncWebClient, body: dict[str, Any], rating: Rating, run_id: int) -> None:
    """Record a 👍/👎; a 👎 first opens the optional "what was wrong?" form (the click's
    trigger_id is good for 3 seconds, so this starts as soon as the click arrives)."""
    user, channel, _ = _where(body)
    if rating == "bad" and body.get("trigger_id"):
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=comment_form(run_id, channel_id=channel))
        except SlackApiError as error:
            log.warning("the feedback form could not be opened: %s", slack_error_code(error))
    await analyst.rate(run_id, user_id=user, team_id=_team(body), rating=rating)


RunAction = Callable[[int, str], Awaitable[str | None]]


def _on_run(
    analyst: Analyst, client: AsyncWebClient, act: RunAction, name: str
) -> Callable[[AsyncAck, dict[str, Any]], Awaitable[None]]:
    """A listener for a button carrying a run id: ``act(run_id, user)`` in a tracked task, any
    refusal it returns told to the clicker privately; acknowledged at once."""

    async def listener(ack: AsyncAck, body: dict[str, Any]) -> None:
        run_id = run_of(_action(body).get("value"))
        if run_id is not None:
            user, _, _ = _where(body)

            async def acting() -> None:
                refusal = await act(run_id, user)
                if refusal:
                    await _tell(client, body, f":no_entry_sign: {refusal}")

            analyst.spawn(acting(), name=f"{name} {run_id}")
        await ack()

    return listener


def register(app: AsyncApp, analyst: Analyst, surface: SlackSurface) -> None:
    client = surface.client

    async def stop(run_id: int, user: str) -> str | None:
        return await analyst.stop(run_id, user_id=user)

    async def delete(run_id: int, user: str) -> str | None:
        return await analyst.delete_answer(run_id, user_id=user)

    app.action(STOP)(_on_run(analyst, client, stop, "stop"))
    app.action(DELETE)(_on_run(analyst, client, delete, "delete"))

    @app.action(RATE)
    async def on_rate(ack: AsyncAck, body: dict[str, Any]) -> None:
        rated = rating_of(_action(body).get("value"))
        if rated is not None:
            analyst.spawn(_rate(analyst, client, body, *rated), name=f"rate {rated[1]}")
        await ack()

    @app.view(COMMENT_FORM)
    async def on_comment(ack: AsyncAck, body: dict[str, Any]) -> None:
        submitted = comment_of(body.get("view") or {})
        if submitted is not None:
            run_id, _, comment = submitted
            user = str((body.get("user") or {}).get("id") or "")
            work = analyst.comment(run_id, user_id=user, team_id=_team(body), comment=comment)
            analyst.spawn(work, name=f"comment {run_id}")
        await ack()

    @app.action(EVERY_ACTION)
    async def acknowledge(ack: AsyncAck) -> None:
        """Any other interaction (a link button, say): acknowledged, nothing to do."""
        await ack()
