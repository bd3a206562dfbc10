"""What Slack sends to an app: Events API envelopes, slash commands, Socket Mode frames.

Pure builders; ``FakeSlack`` fills in the workspace's ids. Shapes follow real payloads
(Slack's Events API docs and captured payloads such as the golden files of
MercuryTechnologies/slack-web): a ``message`` with ``subtype: file_share`` carries
``files``, ``upload: true``, ``display_as_bot: false`` and ``channel_type`` and, unlike
plain messages, no ``team``; an ``app_mention`` carries ``files`` when the mention came
with a file (``upload: false``, as observed) and has no ``channel_type``.

Assistant (AI app) events follow Slack's reference pages for ``assistant_thread_started``
and ``assistant_thread_context_changed``; a person's message in an assistant thread is a
``message.im`` reply (``thread_ts``, ``parent_user_id`` of the bot, which authored the
thread's root) carrying ``assistant_thread: {action_token}``, as captured payloads show.
``file_shared`` follows Slack's reference page (``channel_id``, ``file_id``, ``user_id``,
``file: {id}``, ``event_ts``); ``reaction_added``/``reaction_removed``, ``file_deleted`` and
``app_home_opened`` follow theirs.

In Slack Connect conversations a person's message events also carry ``user_team`` and
``source_team`` (slack-go/slack#695; Bolt reads ``user_team`` to tell the acting
organisation), and events of a person from another organisation embed their
``user_profile`` (slack-morphism-rust#297, captured payloads).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Literal

JSON = dict[str, Any]

LOGIN_PAGE_HTML = """<!DOCTYPE html>
<html lang="en-US">
<head><meta charset="utf-8"><title>Slack</title></head>
<body class="signin">
<h1>Sign in to {team_name}</h1>
<p>{team_domain}.slack.com</p>
<form id="signin_form" action="/" method="post">
<input type="email" name="email" placeholder="name@work-email.com">
<input type="password" name="password" placeholder="Password">
<button type="submit" id="signin_btn">Sign in</button>
</form>
</body>
</html>
"""

SERVER_ERROR_HTML = "<html><head><title>Server Error</title></head><body><h1>Server Error</h1></body></html>"


def signature(secret: str, timestamp: str, body: str | bytes) -> str:
    """Slack's request signature: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    text = body.decode() if isinstance(body, bytes) else body
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{text}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def message_event(message: JSON, *, channel: str, channel_type: str, subtype: str | None = None) -> JSON:
    """A ``message`` event for a message a person posted (``message`` as the Web API shows it)."""
    event: JSON = {"type": "message"}
    if subtype:
        event["subtype"] = subtype
    event.update(_person_fields(message, channel))
    if subtype == "file_share":
        event.pop("team", None)
    event["channel_type"] = channel_type
    return event


def app_mention_event(message: JSON, *, channel: str) -> JSON:
    """An ``app_mention`` event for a message that mentions the bot."""
    event: JSON = {"type": "app_mention"}
    event.update(_person_fields(message, channel))
    if "files" in message:
        event["upload"] = False
    return event


def assistant_message_event(message: JSON, *, channel: str, subtype: str | None = None) -> JSON:
    """A person's ``message`` in an assistant thread (their DM with the bot)."""
    event = message_event(message, channel=channel, channel_type="im", subtype=subtype)
    event["assistant_thread"] = {"action_token": new_action_token()}
    return event


def assistant_thread_event(
    kind: Literal["assistant_thread_started", "assistant_thread_context_changed"],
    *,
    user_id: str,
    channel_id: str,
    thread_ts: str,
    context: JSON,
    event_ts: str,
) -> JSON:
    """``assistant_thread_started`` / ``assistant_thread_context_changed``."""
    return {
        "type": kind,
        "assistant_thread": {
            "user_id": user_id,
            "context": context,
            "channel_id": channel_id,
            "thread_ts": thread_ts,
        },
        "event_ts": event_ts,
    }


def file_shared_event(*, file_id: str, channel_id: str, user_id: str, event_ts: str) -> JSON:
    """``file_shared``: ids only; the app calls ``files.info`` for the rest."""
    return {
        "type": "file_shared",
        "channel_id": channel_id,
        "file_id": file_id,
        "user_id": user_id,
        "file": {"id": file_id},
        "event_ts": event_ts,
    }


def reaction_event(
    kind: Literal["reaction_added", "reaction_removed"],
    *,
    user: str,
    reaction: str,
    channel: str,
    ts: str,
    item_user: str | None,
    event_ts: str,
) -> JSON:
    """``reaction_added`` / ``reaction_removed`` on a message (Slack's reference pages).

    ``item_user`` is the author of the message; Slack leaves it out for messages no user
    authored (incoming webhooks), so None leaves it out here too.
    """
    event: JSON = {"type": kind, "user": user, "reaction": reaction}
    if item_user is not None:
        event["item_user"] = item_user
    event["item"] = {"type": "message", "channel": channel, "ts": ts}
    event["event_ts"] = event_ts
    return event


def app_home_opened_event(
    *, user: str, channel: str, tab: Literal["home", "messages"], event_ts: str, view: JSON | None
) -> JSON:
    """``app_home_opened`` (Slack's reference page): ``user``, ``channel`` (their DM with the
    app), ``tab`` and ``event_ts``; opening the Home tab after a view was published there
    also carries that ``view`` ("the current state of the Home tab")."""
    event: JSON = {"type": "app_home_opened", "user": user, "channel": channel, "event_ts": event_ts, "tab": tab}
    if view is not None and tab == "home":
        event["view"] = view
    return event


def file_deleted_event(*, file_id: str, event_ts: str) -> JSON:
    """``file_deleted``: the id only (Slack's reference and captured payloads)."""
    return {"type": "file_deleted", "file_id": file_id, "event_ts": event_ts}


def connect_fields(*, user_team: str, user_profile: JSON | None) -> JSON:
    """What Slack adds to a person's message events in a Slack Connect conversation:
    ``user_team`` (the poster's organisation) and ``source_team`` (where the message was
    sent from, the same for a person posting from their own workspace), plus the
    ``user_profile`` of a person from another organisation."""
    fields: JSON = {"user_team": user_team, "source_team": user_team}
    if user_profile is not None:
        fields["user_profile"] = user_profile
    return fields


def new_action_token() -> str:
    """An ``action_token`` shaped like Slack's: ``<digits>.<digits>.<32 hex>``."""
    return f"{secrets.randbelow(10**14):014d}.{secrets.randbelow(10**14):014d}.{secrets.token_hex(16)}"


def _person_fields(message: JSON, channel: str) -> JSON:
    fields: JSON = {"text": message.get("text", "")}
    if message.get("files"):
        fields.update(files=message["files"], upload=True, display_as_bot=False)
    for key in ("user", "ts", "team", "blocks", "client_msg_id", "thread_ts", "parent_user_id"):
        if key in message:
            fields[key] = message[key]
    fields["channel"] = channel
    fields["event_ts"] = message["ts"]
    return fields


def event_envelope(
    event: JSON,
    *,
    team_id: str,
    api_app_id: str,
    bot_user_id: str,
    verification_token: str,
    event_id: str,
    event_time: int,
    is_ext_shared_channel: bool,
) -> JSON:
    """The outer ``event_callback`` envelope of the Events API."""
    return {
        "token": verification_token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": is_ext_shared_channel,
        "event_context": f"4-fake-{event_id}",
    }


def socket_envelope(
    payload: JSON, *, envelope_type: str, envelope_id: str, retry_attempt: int, retry_reason: str
) -> JSON:
    """A Socket Mode frame carrying an event, a slash command or an interaction."""
    envelope: JSON = {
        "envelope_id": envelope_id,
        "payload": payload,
        "type": envelope_type,
        "accepts_response_payload": envelope_type != "events_api",
    }
    if envelope_type == "events_api":
        envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
    return envelope


def hello_frame(*, num_connections: int, app_id: str) -> JSON:
    return {
        "type": "hello",
        "num_connections": num_connections,
        "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": app_id},
    }


def disconnect_frame(reason: str) -> JSON:
    return {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}}
