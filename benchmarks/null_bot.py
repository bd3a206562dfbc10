"""The do-nothing bot: the rig's ceiling.

It acknowledges every event at once and, for a mention, makes the one Messages call that
takes the fixed Claude time and posts the reply in the thread: no file download or upload,
no database, no progress, no checks beyond Slack's signature. Whatever throughput it misses
is lost in the rig (the fakes, the loopback, the machine), not in a bot.

Settings: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL, ANTHROPIC_API_KEY,
ANTHROPIC_BASE_URL, PORT.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from typing import Any

import aiohttp
from aiohttp import web

MODEL = "claude-sonnet-5-5"
TOOLS = [{"type": "code_execution_20250825", "name": "code_execution"}]


class NullBot:
    def __init__(self, env: dict[str, str]) -> None:
        self.token = env["SLACK_BOT_TOKEN"]
        self.secret = env["SLACK_SIGNING_SECRET"].encode()
        self.slack_api = env.get("SLACK_API_URL", "https://slack.com/api/")
        self.anthropic_url = env.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/") + "/v1/messages"
        self.api_key = env["ANTHROPIC_API_KEY"]
        self.tasks: set[asyncio.Task[None]] = set()
        self.session: aiohttp.ClientSession | None = None

    def signed(self, request: web.Request, body: bytes) -> bool:
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        expected = "v0=" + hmac.new(self.secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, request.headers.get("X-Slack-Signature", ""))

    async def events(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.signed(request, body):
            return web.Response(status=401)
        payload = json.loads(body)
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": payload.get("challenge")})
        event = payload.get("event") or {}
        if event.get("type") == "app_mention":
            task = asyncio.create_task(self.answer(event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.Response()

    async def close(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def answer(self, event: dict[str, Any]) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        request = {
            "model": MODEL,
            "max_tokens": 1024,
            "tools": TOOLS,
            "messages": [{"role": "user", "content": event.get("text") or "hello"}],
        }
        headers = {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}
        async with self.session.post(self.anthropic_url, json=request, headers=headers) as response:
            message = await response.json()
        text = "\n".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
        reply = {"channel": event["channel"], "thread_ts": event.get("thread_ts") or event["ts"], "text": text or "…"}
        auth = {"Authorization": f"Bearer {self.token}"}
        async with self.session.post(self.slack_api + "chat.postMessage", json=reply, headers=auth) as response:
            await response.read()


def main() -> None:
    bot = NullBot(dict(os.environ))
    app = web.Application()
    app.router.add_post("/slack/events", bot.events)
    app.on_cleanup.append(bot.close)
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")), print=None, access_log=None)


if __name__ == "__main__":
    main()
