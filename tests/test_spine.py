"""The spine, end to end: an @mention with a data file → analysis, charts and
interpretation in the thread. The real bot against the loopback fakes."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Action, Code, MaxTokens, Pause, Refuse, ScriptContext, Text, ToolError, scripted
from tests.fakes.slack import FakeSlack
from tests.harness import Asked, Harness, prompt_text


async def test_mention_with_csv_gets_interpretation_chart_and_code_in_the_thread(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    csv = harness.file("streaming.csv", streaming_csv, mimetype="text/csv", filetype="csv")
    asked = await harness.mention("what drives churn here?", files=[csv])

    text = harness.thread_text(asked)
    # The interpretation quotes the numbers the code computed (planted: Free ≈ 45 %).
    free = re.search(r"Free\D{0,40}?(\d+(?:\.\d+)?)\s*%", text)
    assert free is not None, text
    assert 40 <= float(free.group(1)) <= 50
    # The chart and the code are in the thread.
    files = harness.thread_files(asked)
    names = [f["name"] for f in files]
    assert any(n.endswith(".png") for n in names), names
    png = next(f for f in files if f["name"].endswith(".png"))
    assert slack.file(png["id"]).content.startswith(b"\x89PNG")
    assert "analysis_code.py" in names
    # Done is shown on the asking message.
    reactions = slack.message(asked.channel, asked.ts).reactions
    assert "white_check_mark" in reactions and "eyes" not in reactions
    # The file went to Anthropic once, and into the newest user turn as a container upload.
    assert len(claude.uploads_of(streaming_csv)) == 1
    first = claude.message_requests[0].body
    uploads = [b for b in first["messages"][-1]["content"] if b["type"] == "container_upload"]
    assert len(uploads) == 1
    # The ledger has a finished run with its usage.
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded"
    assert run["input_tokens"] > 0 and run["output_tokens"] > 0
    assert run["files_out"] >= 1 and run["code_executions"] >= 1
    assert run["container_id"]


async def test_two_questions_on_the_same_file_upload_it_once(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
    # The same bytes shared again later, as a new Slack file with another name.
    second = await harness.mention("summarise this", files=[harness.file("copy.csv", streaming_csv)])
    assert len(claude.uploads_of(streaming_csv)) == 1
    file_ids = {
        block["file_id"]
        for request in claude.message_requests
        for block in request.body["messages"][0]["content"]
        if block["type"] == "container_upload"
    }
    assert len(file_ids) == 1
    for asked in (first, second):
        assert "churn" in harness.thread_text(asked).lower()


async def test_a_mention_delivered_as_both_events_is_analysed_once(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    asked = await harness.mention("why?", files=[harness.file("s.csv", streaming_csv)], via="both")
    answers = [m for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"]
    assert len(answers) == 1
    assert len({prompt_text(r.body["messages"][0]) for r in claude.message_requests}) == 1
    assert len(await harness.running.analyst.store.all_runs()) == 1
    assert len(slack.calls_to("reactions.add")) == 2  # :eyes: then ✅, once each


async def test_a_mention_delivered_only_as_a_file_share_message_is_analysed(
    harness: Harness, streaming_csv: bytes
) -> None:
    asked = await harness.mention(
        "<@UBOT> what drives churn?", files=[harness.file("s.csv", streaming_csv)], via="file_share"
    )
    assert "Free" in harness.thread_text(asked)


async def test_a_file_share_without_a_mention_is_ignored(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    asked = await harness.mention("just sharing", files=[harness.file("s.csv", streaming_csv)], via="file_share")
    assert harness.replies(asked) == []
    assert slack.downloads == []


async def test_xlsx_is_analysed(harness: Harness, streaming_csv: bytes, tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "streaming.xlsx"
    pd.read_csv(io.BytesIO(streaming_csv)).head(800).to_excel(path, index=False)
    asked = await harness.mention("what drives churn?", files=[harness.file("streaming.xlsx", path.read_bytes())])
    text = harness.thread_text(asked)
    assert "Free" in text and "%" in text
    assert any(f["name"].endswith(".png") for f in harness.thread_files(asked))


async def test_two_files_both_reach_the_sandbox(harness: Harness, claude: FakeAnthropic, streaming_csv: bytes) -> None:
    prices = b"tier,monthly_price\nFree,0\nBasic,8.99\nPremium,15.99\n"
    asked = await harness.mention(
        "join these and tell me about churn",
        files=[harness.file("streaming.csv", streaming_csv), harness.file("prices.csv", prices)],
    )
    request = claude.message_requests[0].body
    newest = request["messages"][-1]
    assert [b["type"] for b in newest["content"]].count("container_upload") == 2
    assert "prices.csv" in prompt_text(newest) and "streaming.csv" in prompt_text(newest)
    container = claude.containers[claude.responses[0]["container"]["id"]]
    assert sorted(p.name for p in container.inputs.iterdir()) == ["prices.csv", "streaming.csv"]
    assert "Free" in harness.thread_text(asked)


async def test_a_mention_with_no_file_and_no_question_gets_a_how_to(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    asked = await harness.mention("")
    [reply] = harness.replies(asked)
    assert "Share a data file" in slack.visible_text(reply)
    assert claude.requests == []
    assert await harness.running.analyst.store.all_runs() == []


async def test_a_question_without_a_file_is_still_answered(harness: Harness, claude: FakeAnthropic) -> None:
    asked = await harness.mention("what is the mean of 3, 4 and 8?")
    assert claude.uploads == []
    assert all(b["type"] != "container_upload" for b in claude.message_requests[0].body["messages"][0]["content"])
    assert harness.replies(asked)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] in ("succeeded", "failed") and run["finished_at"]


async def test_an_oversized_file_is_refused_before_download(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    big = harness.file("huge.csv", b"a,b\n1,2\n", size=150 * 1024 * 1024)
    asked = await harness.mention("analyse this", files=[big])
    text = harness.thread_text(asked)
    assert "huge.csv" in text and "150.0 MB" in text and "100.0 MB" in text
    assert len(harness.replies(asked)) == 1  # just the refusal: no work was started
    assert slack.downloads == []
    assert claude.requests == []
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "refused"
    assert "warning" in slack.message(asked.channel, asked.ts).reactions


async def test_a_file_larger_than_claimed_is_cut_off_during_download(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    async with Harness({**env, "ANALYST_MAX_FILE_MB": "0.5"}, slack, claude) as harness:
        lying = harness.file("big.csv", b"a,b\n" + b"1,2\n" * 200_000, size=1000)
        asked = await harness.mention("analyse", files=[lying])
        assert "larger than this workspace's limit" in harness.thread_text(asked)
        assert claude.requests == []


async def test_an_unsupported_type_is_refused_with_the_accepted_list(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    deck = harness.file("deck.pptx", b"PK\x03\x04 not really", filetype="pptx")
    asked = await harness.mention("analyse", files=[deck])
    text = harness.thread_text(asked)
    assert "deck.pptx" in text and "CSV" in text and "Excel" in text
    assert slack.downloads == [] and claude.requests == []


async def test_a_binary_file_named_csv_never_reaches_anthropic(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    fake_csv = harness.file("data.csv", b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 10)
    asked = await harness.mention("analyse", files=[fake_csv])
    assert "binary" in harness.thread_text(asked)
    assert len(slack.downloads) == 1
    assert claude.requests == []


async def test_one_bad_file_among_good_ones_is_skipped_with_a_note(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    asked = await harness.mention(
        "analyse",
        files=[
            harness.file("streaming.csv", streaming_csv),
            harness.file("notes.docx", b"PK\x03\x04", filetype="docx"),
        ],
    )
    text = harness.thread_text(asked)
    assert "notes.docx" in text and "the rest" in text
    assert len(claude.uploads) == 1 and "Free" in text


async def test_a_mention_inside_a_thread_is_answered_in_that_thread(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    root = slack.post_user_message("C0DATA", "U0BOB", "our churn data is attached below")
    asked = await harness.mention(
        "what drives churn?", files=[harness.file("s.csv", streaming_csv)], thread_ts=root["ts"]
    )
    assert asked.thread_ts == root["ts"]
    replies = harness.replies(asked)
    assert replies and all(m.thread_ts == root["ts"] for m in replies)
    assert [m for m in slack.channel_messages("C0DATA") if m.bot_id and m.thread_ts in (None, m.ts)] == []


async def test_messages_from_bots_are_ignored(harness: Harness, slack: FakeSlack, claude: FakeAnthropic) -> None:
    slack.add_user("U0OTHERBOT", "otherbot", is_bot=True)
    slack.workspace.channels["C0DATA"].members.add("U0OTHERBOT")
    message, envelope = slack.mention_event("C0DATA", "U0OTHERBOT", "analyse")
    envelope["event"]["bot_id"] = "B0OTHER"
    status, _ = await harness.deliver(envelope)
    assert status == 200
    await harness.settle()
    assert [m for m in slack.thread("C0DATA", message["ts"]) if m.bot_id] == []
    assert claude.requests == []


async def test_files_announced_without_details_are_looked_up(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    csv = harness.file("streaming.csv", streaming_csv)
    message, envelope = slack.mention_event("C0DATA", "U0ALICE", "churn?", files=[csv], file_access="check_file_info")
    assert "url_private_download" not in envelope["event"]["files"][0]
    await harness.deliver(envelope)
    await harness.settle()
    assert slack.calls_to("files.info")
    assert "Free" in "\n".join(slack.visible_text(m) for m in slack.thread("C0DATA", message["ts"]))


async def test_a_login_page_instead_of_the_file_is_reported(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    slack.fail_next("download", status=200)
    asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    assert "files:read" in harness.thread_text(asked)
    progress = next(m for m in harness.replies(asked) if m.stream is not None)
    assert progress.stream.tasks["prepare"].status == "error"  # nothing is left spinning
    assert claude.requests == []
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "failed" and "text/html" in run["error"]


@pytest.mark.parametrize(
    "version",
    ["code_execution_20250522", "code_execution_20250825", "code_execution_20260120", "code_execution_20260521"],
)
async def test_every_code_execution_version_works_with_its_headers(
    version: str, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_CODE_EXECUTION": version}, slack, claude) as harness:
        asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
        assert "Free" in harness.thread_text(asked)
        assert any(f["name"].endswith(".png") for f in harness.thread_files(asked))
    request = claude.message_requests[0]
    assert request.body["tools"] == [
        {"type": version, "name": "code_execution", "cache_control": {"type": "ephemeral"}}
    ]
    code_beta = ["code-execution-2025-05-22"] if version.endswith("20250522") else []
    assert request.betas == [*code_beta, "files-api-2025-04-14"]  # the upload needs the Files API beta


async def test_a_paused_turn_is_continued_in_the_same_container(harness: Harness, claude: FakeAnthropic) -> None:
    claude.script = scripted(
        Code("print(6 * 7)"),
        Pause(),
        Code("print('second step')"),
        Pause(),
        Text(lambda ctx: f"The answer is {ctx.runs[0].stdout.strip()}."),
    )
    asked = await harness.mention("compute it")
    assert "The answer is 42." in harness.thread_text(asked)
    requests = claude.message_requests
    assert len(requests) == 3
    containers = {r.body.get("container") for r in requests[1:]}
    assert containers == {claude.responses[0]["container"]["id"]}
    assert requests[2].body["messages"][-1]["role"] == "assistant"  # the paused content, echoed back


async def test_endless_pausing_is_capped(env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic) -> None:
    def forever(ctx: ScriptContext) -> Iterator[Action]:
        for step in range(100):
            yield Code(f"print({step})")
            yield Pause()

    claude.script = forever
    async with Harness({**env, "ANALYST_MAX_CONTINUATIONS": "2"}, slack, claude) as harness:
        asked = await harness.mention("loop")
        assert len(claude.message_requests) == 3
        assert "stopped after 3 rounds" in harness.thread_text(asked)


async def test_an_answer_cut_at_max_tokens_says_so(harness: Harness, claude: FakeAnthropic) -> None:
    claude.script = scripted(Code("print(1)"), MaxTokens("Churn is driven mostly by"))
    asked = await harness.mention("why?")
    text = harness.thread_text(asked)
    assert "Churn is driven mostly by" in text and "cut off" in text


async def test_a_refusal_is_explained(harness: Harness, slack: FakeSlack, claude: FakeAnthropic) -> None:
    claude.script = scripted(Refuse())
    asked = await harness.mention("do something bad")
    assert "declined" in harness.thread_text(asked)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "failed" and "refusal" in run["error"]
    assert "warning" in slack.message(asked.channel, asked.ts).reactions


async def test_a_step_that_times_out_is_reported_in_the_answer(harness: Harness, claude: FakeAnthropic) -> None:
    claude.script = scripted(ToolError("execution_time_exceeded"), Text("Partial findings only."))
    asked = await harness.mention("heavy job")
    text = harness.thread_text(asked)
    assert "Partial findings only." in text and "ran longer than the sandbox allows" in text


async def test_a_failing_step_shows_in_progress_and_the_analysis_goes_on(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code("raise ValueError('bad column')"), Code("print('ok')"), Text("Recovered."))
    asked = await harness.mention("go")
    progress = next(m for m in harness.replies(asked) if m.stream is not None)
    statuses = [task.status for task in progress.stream.tasks.values()]
    assert "error" in statuses and statuses.count("complete") >= 2
    assert "Recovered." in harness.thread_text(asked)


async def test_anthropic_outage_ends_as_a_clear_message_and_a_failed_run(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.fail_next("messages", status=500, times=10, retry_after=0)
    async with Harness({**env, "ANALYST_ANTHROPIC_MAX_RETRIES": "1"}, slack, claude) as harness:
        asked = await harness.mention("anything?")
        assert "Claude's service had an error. Try again in a few minutes." in harness.thread_text(asked)
        [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "failed" and "500" in run["error"]
    assert len(claude.message_requests) == 2  # the first try and one SDK retry


async def test_a_rejected_api_key_says_retrying_will_not_help(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    async with Harness({**env, "ANTHROPIC_API_KEY": "sk-ant-wrong"}, slack, claude) as harness:
        asked = await harness.mention("anything?", files=[harness.file("a.csv", b"a,b\n1,2\n")])
        text = harness.thread_text(asked)
    assert "API key was rejected" in text and "ANTHROPIC_API_KEY" in text
    assert "sk-ant-wrong" not in text


async def test_slack_rate_limits_are_retried(harness: Harness, slack: FakeSlack, streaming_csv: bytes) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    assert "Free" in harness.thread_text(asked)
    assert any(c.http_status == 429 for c in slack.calls_to("chat.postMessage"))


async def test_a_long_answer_is_split_across_messages(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    paragraphs = [f"Finding {i}: " + "the data shows a pattern " * 30 for i in range(60)]
    claude.script = scripted(Text("\n\n".join(paragraphs)))
    asked = await harness.mention("tell me everything")
    answers = [m for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"]
    assert len(answers) >= 3
    shown = "\n".join(slack.visible_text(m) for m in answers)
    for paragraph in paragraphs:
        assert paragraph.strip() in shown


async def test_output_files_are_capped_with_a_note(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(
        Code(
            "import os\n"
            "os.makedirs('outputs', exist_ok=True)\n"
            "for i in range(5):\n"
            "    open(os.path.join('outputs', f'table_{i}.csv'), 'w').write('a\\n1\\n')\n"
        ),
        Text("Five tables."),
    )
    async with Harness({**env, "ANALYST_MAX_OUTPUT_FILES": "3"}, slack, claude) as harness:
        asked = await harness.mention("make tables")
        posted = [
            f["name"] for f in harness.thread_files(asked) if f["name"] not in ("analysis_code.py", "analysis.ipynb")
        ]
        assert len(posted) == 3
        assert "2 more files were held back" in harness.thread_text(asked)


async def test_health_and_signature_checks(harness: Harness, slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as http, http.get(harness.running.url + "/healthz") as response:
        assert response.status == 200
        assert (await response.json())["ok"] is True
    _, envelope = slack.mention_event("C0DATA", "U0ALICE", "hi")
    status, _ = await harness.deliver(envelope, secret="not-the-secret")
    assert status == 401
    status, _ = await harness.deliver(envelope, timestamp=int(time.time()) - 3600)
    assert status == 401


async def test_a_stream_broken_mid_answer_is_reported_not_posted_half(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    claude.break_stream_next(after_events=8)
    async with Harness({**env, "ANALYST_ANTHROPIC_MAX_RETRIES": "0"}, slack, claude) as harness:
        asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
        text = harness.thread_text(asked)
        [run] = await harness.running.analyst.store.all_runs()
    assert "connection to Claude broke" in text
    assert not [m for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"]
    assert run["status"] == "failed" and "stream broken" in run["error"]


async def test_an_overload_error_inside_the_stream_is_retried_and_said(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    claude.error_stream_next(after_events=5)
    asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    text = harness.thread_text(asked)
    assert "Claude is busy right now — trying again (attempt 2 of 5)" in text
    assert "Free" in text and ":warning:" not in text


async def test_an_overload_that_outlasts_the_retries_ends_as_a_clear_message(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    for _ in range(3):
        claude.error_stream_next(after_events=5)
    async with Harness({**env, "ANALYST_ANTHROPIC_MAX_RETRIES": "2"}, slack, claude) as harness:
        asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
        assert "Claude is overloaded right now. Try again in a few minutes." in harness.thread_text(asked)


async def test_every_subscribed_event_is_acknowledged(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    message, envelope = slack.message_event("C0DATA", "U0BOB", "lunch anyone?")
    status, _ = await harness.deliver(envelope)
    assert status == 200
    await harness.settle()
    assert [m for m in slack.thread("C0DATA", message["ts"]) if m.bot_id] == []
    assert claude.requests == []


async def test_an_event_is_acknowledged_before_bolt_dispatches_it(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack needs only an empty 200 for an Events API delivery: it is sent before Bolt's
    middleware and listeners run, so no other delivery's dispatch can hold it up."""
    release = asyncio.Event()
    dispatch = AsyncApp.async_dispatch

    async def held(app: AsyncApp, request: AsyncBoltRequest) -> BoltResponse:
        await release.wait()
        return await dispatch(app, request)

    monkeypatch.setattr(AsyncApp, "async_dispatch", held)
    csv = harness.file("streaming.csv", streaming_csv)
    message, envelope = slack.mention_event("C0DATA", "U0ALICE", "what drives churn?", files=[csv])
    async with asyncio.timeout(30):  # (the acknowledgement must not wait for the held dispatch)
        status, body = await harness.deliver(envelope)
    assert (status, body) == (200, "")
    assert not slack.message("C0DATA", message["ts"]).reactions  # nothing ran yet
    release.set()
    await harness.settle()
    assert "Free" in harness.thread_text(Asked(message, envelope, "C0DATA"))
    # A delivery that fails Slack's signature check still goes to Bolt, which refuses it.
    status, _ = await harness.deliver(envelope, secret="not-the-secret")
    assert status == 401


async def test_a_retried_delivery_is_not_run_twice(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    status, _ = await harness.deliver(asked.envelope, retry_num=1, retry_reason="http_timeout")
    assert status == 200
    await harness.settle()
    assert len(await harness.running.analyst.store.all_runs()) == 1
    assert len([m for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"]) == 1


async def test_a_file_anthropic_no_longer_has_is_uploaded_again(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    [first] = claude.uploads_of(streaming_csv)
    claude.files[first.file_id].deleted = True
    asked = await harness.mention("again?", files=[harness.file("s.csv", streaming_csv)])
    assert len(claude.uploads_of(streaming_csv)) == 2
    assert "Free" in harness.thread_text(asked)
    rows = {r["id"]: r for r in await harness.running.analyst.store.files()}
    assert rows[first.file_id]["deleted_at"] is not None


async def test_replies_never_unfurl_links_and_the_ledger_counts_code_runs(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    posts = slack.calls_to("chat.postMessage")
    assert posts and all(c.params.get("unfurl_links") in (False, "false", "0") for c in posts)
    assert all(c.params.get("unfurl_media") in (False, "false", "0") for c in posts)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["code_executions"] == 2  # the analyst script runs two programs (plus two file edits)


async def test_a_chart_that_fails_to_upload_does_not_lose_the_answer(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    slack.fail_next("files.getUploadURLExternal", error="invalid_arguments")
    asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    text = harness.thread_text(asked)
    assert "Free" in text
    assert "I couldn't attach *churn_by_tier.png*" in text


async def test_without_streaming_progress_falls_back_to_an_edited_message(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    slack.fail_next("chat.startStream", error="feature_not_enabled")
    asked = await harness.mention("churn?", files=[harness.file("s.csv", streaming_csv)])
    progress = harness.replies(asked)[0]
    assert progress.stream is None and progress.edits
    assert "Running analysis_2.py" in slack.visible_text(progress) and "Done: 4 steps, 1 chart." in slack.visible_text(
        progress
    )
    assert "Free" in harness.thread_text(asked)
