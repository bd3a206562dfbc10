"""The naive baseline: the straightforward tutorial Slack bot, in one file.

Bolt for Python (sync) over HTTP with its built-in server, one listener for mentions that
reads each attached file whole into memory, uploads it to the Files API, asks Claude with the
code execution tool and posts the answer at the end, one analysis at a time (a global lock,
as a tutorial does to stay inside rate limits). No progress, no dedupe, no queue.

It reads the same settings as the real bot: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
SLACK_API_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, PORT.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from typing import Any

import anthropic
from slack_bolt import App, Say
from slack_sdk import WebClient

MODEL = "claude-sonnet-5-5"
BETAS = ["files-api-2025-04-14"]
TOOLS: list[Any] = [{"type": "code_execution_20250825", "name": "code_execution"}]
TOKEN = os.environ["SLACK_BOT_TOKEN"]

slack = WebClient(token=TOKEN, base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"))
app = App(client=slack, signing_secret=os.environ["SLACK_SIGNING_SECRET"])
claude = anthropic.Anthropic(base_url=os.environ.get("ANTHROPIC_BASE_URL") or None)
one_at_a_time = threading.Lock()


def download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request) as response:
        data: bytes = response.read()
    return data


def analyse(question: str, files: list[dict[str, Any]]) -> str:
    content: list[Any] = [{"type": "text", "text": question}]
    for file in files:
        data = download(file["url_private_download"])
        uploaded = claude.beta.files.upload(file=(file["name"], data, file.get("mimetype") or "text/csv"), betas=BETAS)
        content.append({"type": "container_upload", "file_id": uploaded.id})
    messages: list[Any] = [{"role": "user", "content": content}]
    container = None
    while True:
        response = claude.beta.messages.create(
            model=MODEL, max_tokens=4096, betas=BETAS, tools=TOOLS, messages=messages, container=container
        )
        container = response.container.id if response.container else None
        if response.stop_reason != "pause_turn":
            break
        messages.append({"role": "assistant", "content": response.content})
    return "\n".join(block.text for block in response.content if block.type == "text")


@app.event("app_mention")
def on_mention(event: dict[str, Any], say: Say) -> None:
    thread = event.get("thread_ts") or event["ts"]
    try:
        with one_at_a_time:
            answer = analyse(event.get("text", ""), event.get("files", []))
        say(text=answer, thread_ts=thread)
    except Exception as exc:  # noqa: BLE001 - as tutorials do: tell the person whatever went wrong
        say(text=f"Sorry, the analysis failed: {exc}", thread_ts=thread)


@app.event("message")
def ignore_messages() -> None:
    """Messages (file shares included) are answered only when they mention the bot."""


if __name__ == "__main__":
    app.start(port=int(os.environ.get("PORT", "3000")))
