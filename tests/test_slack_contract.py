"""The Slack side under real conditions: generated files that fail to arrive, progress that
outlives Slack's stream, the limits of stream chunks, and whom a stream is for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.progress import StepOutput
from bot.requests import AnalysisRequest
from bot.schema import PostKind
from bot.settings import Settings
from handlers.slack.clients import SLACK_TIMEOUT_S, slack_client, upload_client, upload_timeout_s
from handlers.slack.progress import TASK_OUTPUT_LIMIT, render_progress, step_summary
from handlers.slack.publisher import SlackPublisher
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Hold, Refuse, Text, output_files_code, scripted
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import Message
from tests.harness import Asked, Harness

CHART = "churn_by_tier.png"


def answers(harness: Harness, asked: Asked) -> list[str]:
    """The interpretations posted in the thread, oldest first."""
    return [
        harness.slack.visible_text(m) for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"
    ]


def generated_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["origin"] == "generated"]


def later(harness: Harness, seconds: float) -> None:
    """Move the bot's clock forward (the ledger's and the sweeper's notion of now)."""
    store = harness.running.analyst.store
    start = store.clock()
    store.clock = lambda: start + seconds


# -- generated files that fail to arrive -----------------------------------------------------


async def test_a_chart_whose_download_breaks_keeps_the_answer_the_conversation_and_its_cleanup(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    claude.break_download_next(after_bytes=100)
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])

    # The answer stays, and the thread names the file that didn't arrive and what to do.
    text = harness.thread_text(asked)
    assert "Free" in answers(harness, asked)[0]
    assert f"I couldn't attach *{CHART}* (fetching it from Claude's sandbox failed)" in text
    assert "ask me in this thread to post it again" in text
    assert not any(f["name"] == CHART for f in harness.thread_files(asked))
    analyst = harness.running.analyst
    [run] = await analyst.store.all_runs()
    assert run["status"] == "succeeded" and run["files_out"] == 0
    assert "white_check_mark" in slack.message("C0DATA", asked.ts).reactions

    # Every generated file is in the retention ledger, posted or not.
    [chart] = [f for f in claude.generated_files if f.filename == CHART]
    assert [r["id"] for r in generated_rows(await analyst.store.files())] == [chart.id]

    # The exchange was recorded: a follow-up continues in the same container, with the history.
    await harness.mention("now split that by country", thread_ts=asked.thread_ts)
    follow_up = claude.message_requests[-1].body
    assert follow_up["container"] == claude.responses[0]["container"]["id"]
    assert [m["role"] for m in follow_up["messages"]] == ["user", "assistant", "user"]
    assert len(answers(harness, asked)) == 2

    # The retention sweep later deletes the file that was never posted.
    later(harness, 25 * 3600)
    await analyst.sweeper.sweep_once()
    assert claude.files[chart.id].deleted


async def test_files_of_a_run_that_then_fails_are_still_deleted_later(harness: Harness, claude: FakeAnthropic) -> None:
    claude.script = scripted(Code(output_files_code("chart.png")), Refuse())
    asked = await harness.mention("chart it, then decline")
    assert "Claude declined" in harness.thread_text(asked)
    analyst = harness.running.analyst
    [run] = await analyst.store.all_runs()
    assert run["status"] == "failed"
    [chart] = claude.generated_files
    assert [r["id"] for r in generated_rows(await analyst.store.files())] == [chart.id]
    later(harness, 25 * 3600)
    await analyst.sweeper.sweep_once()
    assert claude.files[chart.id].deleted


def stall_uploads(harness: Harness, slack: FakeSlack) -> None:
    harness.running.surface.uploads.timeout = 1  # the stalled upload times out quickly
    slack.fail_next("upload", mode="stall")


FAULTS = {
    "anthropic-api-error": (
        lambda h, s, c: c.fail_next("files.download", status=500, should_retry=False),
        "fetching it from Claude's sandbox failed",
    ),
    "slack-api-error": (
        lambda h, s, c: s.fail_next("files.getUploadURLExternal", error="invalid_arguments"),
        "Slack refused the upload (`invalid_arguments`)",
    ),
    "slack-request-error": (
        lambda h, s, c: s.fail_next("upload", status=400, error="bad upload"),
        "the upload to Slack failed",
    ),
    "dropped-connection": (
        lambda h, s, c: s.fail_next("upload", mode="drop", times=3),  # the client retries twice
        "the upload to Slack failed",
    ),
    "timeout": (lambda h, s, c: stall_uploads(h, s), "the upload to Slack timed out"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_chart_that_fails_to_arrive_costs_only_that_file(
    fault: str, harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    inject, reason = FAULTS[fault]
    inject(harness, slack, claude)
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    assert "Free" in answers(harness, asked)[0]
    assert f"I couldn't attach *{CHART}* ({reason})" in harness.thread_text(asked)
    assert any(f["name"] == "analysis_code.py" for f in harness.thread_files(asked))  # the rest still arrives
    analyst = harness.running.analyst
    [run] = await analyst.store.all_runs()
    assert run["status"] == "succeeded", run["error"]
    conversation = await analyst.parts.conversations.get(f"C0DATA:{asked.thread_ts}")
    assert conversation is not None and [t["role"] for t in conversation.turns] == ["user", "assistant"]
    assert {r["filename"] for r in generated_rows(await analyst.store.files())} == {CHART}


async def test_the_code_listing_failing_to_upload_is_said_too(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code("print(6 * 7)"), Text("The answer is 42."))
    slack.fail_next("upload", status=400, error="bad upload")
    asked = await harness.mention("what is 6 times 7?")
    text = harness.thread_text(asked)
    assert "The answer is 42." in text
    assert "I couldn't attach the code the analysis ran (the upload to Slack failed)" in text
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded"


def test_the_upload_timeout_fits_the_largest_output_file(env: dict[str, str]) -> None:
    assert upload_timeout_s(0) == SLACK_TIMEOUT_S
    # 50 MB at the slowest uplink planned for (512 KiB/s) takes 100 s.
    assert upload_timeout_s(50) == SLACK_TIMEOUT_S + 100
    assert upload_timeout_s(200) == SLACK_TIMEOUT_S + 400
    settings = Settings.from_env({**env, "ANALYST_MAX_OUTPUT_FILE_MB": "200"})
    client = slack_client(settings)
    uploads = upload_client(client, settings)
    assert client.timeout == SLACK_TIMEOUT_S
    assert uploads.timeout == upload_timeout_s(200)
    assert (uploads.token, uploads.base_url, uploads.retry_handlers) == (
        client.token,
        client.base_url,
        client.retry_handlers,
    )


async def test_an_analysis_reuses_its_connections_to_slack(harness: Harness, slack: FakeSlack) -> None:
    """One HTTP session for every Web API call: a call reuses an idle keep-alive connection
    instead of opening its own (slack-sdk, given no session, opens a new one per call)."""
    asked = await harness.mention("what is in the data?")
    assert harness.replies(asked)  # the bot answered in the thread
    calls = [call for call in slack.calls if call.token == slack.bot_token]
    connections = {call.connection for call in calls}
    assert None not in connections
    assert len(calls) >= 6
    assert len(connections) <= len(calls) // 3, (len(connections), len(calls))
    assert harness.running.surface.client.session is not None
    assert not harness.running.surface.client.session.closed


async def test_uploads_go_through_the_client_sized_for_them(harness: Harness) -> None:
    surface, analyst = harness.running.surface, harness.running.analyst
    request = AnalysisRequest("T0TEAM", "C0DATA", "U0ALICE", "1.000100", "1.000100", "hi")

    async def posted(kind: PostKind, ref: str) -> None:
        return None

    publisher = surface.publisher(request, 1, posted, analyst.parts.files_api)
    assert isinstance(publisher, SlackPublisher)
    assert publisher.uploads is surface.uploads and publisher.client is surface.client
    assert surface.uploads.timeout == upload_timeout_s(analyst.settings.max_output_file_mb)


# -- progress that outlives Slack's stream ---------------------------------------------------


def progress_messages(harness: Harness, asked: Asked) -> list[Message]:
    return [m for m in harness.replies(asked) if "Working on your question" in harness.slack.visible_text(m)]


def steps_shown(slack: FakeSlack) -> list[str]:
    """The status of every task of the (only) progress stream, as Slack shows it."""
    [start] = slack.calls_to("chat.startStream")
    stream = slack.message("C0DATA", start.response["ts"]).stream if start.response else None
    return [task.status for task in stream.tasks.values()] if stream else []


@pytest.mark.parametrize("stalls", ["between-steps", "before-the-answer"])
async def test_progress_that_outlives_the_stream_ends_in_the_same_message(
    stalls: str, harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    hold = Hold(asyncio.Event())
    if stalls == "between-steps":
        claude.script = scripted(Code("print(6)"), hold, Code("print(6 * 7)"), Text("The answer is 42."))
    else:  # every step is shown before the stream closes: only the summary is left to show
        claude.script = scripted(Code("print(6)"), Code("print(6 * 7)"), Text("The answer"), hold, Text(" is 42."))
    asked = await harness.mention("what is 6 times 7?", settle=False)
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    if stalls == "before-the-answer":
        await slack.wait_for(lambda: steps_shown(slack) == ["complete"] * 5, what="every step shown as done")
    slack.advance(6 * 60)  # a long step: Slack closes the stream meanwhile
    hold.gate.set()
    await harness.settle()

    [start] = slack.calls_to("chat.startStream")
    stream_ts = start.response["ts"] if start.response else None
    assert any(c.error == "message_not_in_streaming_state" for c in slack.calls if c.method.endswith("Stream"))
    [progress] = progress_messages(harness, asked)  # no second progress message
    assert progress.ts == stream_ts and progress.edits
    title, *tasks, summary = slack.visible_text(progress).splitlines()
    assert title == "*Working on your question*"
    assert tasks[0] == ":white_check_mark: Reading your data"
    assert ":white_check_mark: Running analysis_2.py" in tasks  # every step is there, and done
    assert all(task.startswith(":white_check_mark: ") for task in tasks), tasks
    assert summary == "Done: 4 steps."  # two files written, two runs
    assert "42" in answers(harness, asked)[0]
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded"


async def test_a_run_that_fails_after_the_stream_closed_says_so_in_the_same_message(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = scripted(Code("print(6)"), hold, Refuse())
    asked = await harness.mention("what is 6 times 7?", settle=False)
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    slack.advance(6 * 60)
    hold.gate.set()
    await harness.settle()
    [start] = slack.calls_to("chat.startStream")
    [progress] = progress_messages(harness, asked)
    assert start.response is not None and progress.ts == start.response["ts"]
    *_, summary = slack.visible_text(progress).splitlines()
    assert summary == ":warning: The analysis stopped."
    assert "Claude declined" in harness.thread_text(asked)


async def test_a_stream_within_its_lifetime_is_not_edited(harness: Harness, slack: FakeSlack) -> None:
    hold = Hold(asyncio.Event())
    harness.claude.script = scripted(Code("print(6)"), hold, Text("Six."))
    asked = await harness.mention("what is 6?", settle=False)
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    slack.advance(4 * 60)
    hold.gate.set()
    await harness.settle()
    [progress] = progress_messages(harness, asked)
    assert progress.stream is not None and progress.stream.stopped_by == "app" and not progress.edits


def test_a_long_progress_message_keeps_within_its_limit() -> None:
    tasks = [(f"Running step {n} of a very long analysis", "complete") for n in range(400)]
    text = render_progress("Analysing data.csv", tasks, "Done: 400 steps.", limit=3000)
    assert len(text) <= 3000
    lines = text.splitlines()
    assert lines[0] == "*Analysing data.csv*" and lines[-1] == "Done: 400 steps."
    assert lines[1].startswith("… ") and lines[1].endswith("earlier steps")
    assert lines[-2].endswith("Running step 399 of a very long analysis")


# -- stream chunk limits and recipients ------------------------------------------------------


async def test_the_progress_stream_sends_its_first_task_once(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """chat.startStream carries the "Reading your data" task; no appendStream repeats it."""
    claude.script = scripted(Text("Nothing to run."))
    await harness.mention("what is in the data?")
    sent = [
        (chunk.get("id"), chunk.get("status"))
        for method in ("chat.startStream", "chat.appendStream")
        for call in slack.calls_to(method)
        for chunk in call.params.get("chunks") or ()
        if chunk.get("type") == "task_update"
    ]
    assert sent.count(("prepare", "in_progress")) == 1
    assert ("prepare", "complete") in sent
    assert steps_shown(slack)[0] == "complete"


async def test_a_long_step_output_fits_the_task_update_limit(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code("print('x' * 1000)"), Text("Printed."))
    await harness.mention("print a long line")
    outputs = [
        chunk["output"]
        for call in slack.calls_to("chat.appendStream")
        for chunk in call.params.get("chunks") or ()
        if "output" in chunk
    ]
    assert outputs and all(len(o) <= TASK_OUTPUT_LIMIT for o in outputs)
    assert all(c.ok for c in slack.calls if c.method.startswith("chat."))


def test_step_summaries_are_capped_at_the_task_output_limit() -> None:
    assert TASK_OUTPUT_LIMIT == 256
    status, output = step_summary(StepOutput(step=1, stdout="y" * 1000, return_code=0))
    assert status == "complete" and len(output) == TASK_OUTPUT_LIMIT
    status, output = step_summary(StepOutput(step=1, stderr="z" * 1000, return_code=1))
    assert status == "error" and len(output) == TASK_OUTPUT_LIMIT


async def test_a_stream_for_a_slack_connect_person_names_their_own_team(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0EXT", "erin", team_id="T0PARTNER")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True)
    claude.script = scripted(Code("print(6 * 7)"), Text("The answer is 42."))
    async with Harness({**env, "ANALYST_ALLOW_EXTERNAL": "true"}, slack, claude) as harness:
        asked = await harness.mention("what is 6 times 7?", channel="C0SHARED", user="U0EXT")
        assert "The answer is 42." in harness.thread_text(asked)
    [start] = slack.calls_to("chat.startStream")
    assert start.ok, start.summary()
    assert (start.params["recipient_team_id"], start.params["recipient_user_id"]) == ("T0PARTNER", "U0EXT")


async def test_a_stream_for_someone_in_the_workspace_names_the_workspace(harness: Harness, slack: FakeSlack) -> None:
    harness.claude.script = scripted(Text("Hello."))
    await harness.mention("hi there")
    [start] = slack.calls_to("chat.startStream")
    assert start.ok and start.params["recipient_team_id"] == slack.team_id
