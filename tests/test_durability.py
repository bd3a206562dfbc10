"""Durability and faults: no event processed twice, no run lost, every fault ends in a
clear state — in the thread and in the ledger."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from bot.db import database_target
from bot.store import Store
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Hold, Text, scripted
from tests.fakes.slack import FakeSlack
from tests.harness import Harness
from tests.processes import LISTENING, free_port, start_cli, wait_for_line


def quick_answer(hold: Hold | None = None) -> Any:
    """A cheap analysis (one code run), optionally stalling at ``hold``."""
    actions: list[Any] = [hold] if hold else []
    actions += [Code("print(6 * 7)"), Text(lambda ctx: f"The answer is {ctx.last.stdout.strip()}.")]
    return scripted(*actions)


# -- idempotent intake ---------------------------------------------------------------------


async def test_a_duplicate_socket_mode_envelope_is_acknowledged_and_not_run_twice(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    async with Harness(env, slack, claude, socket=True) as harness:
        message, envelope = slack.mention_event("C0DATA", "U0ALICE", "what is 6 times 7?")
        first = await slack.deliver_socket(envelope)
        again = await slack.deliver_socket(envelope, retry_attempt=1, retry_reason="timeout")
        assert first["envelope_id"] != again["envelope_id"]  # both acknowledged
        await harness.settle()
        assert len(claude.message_requests) == 1
        assert len(await harness.running.analyst.store.all_runs()) == 1
        answers = [m for m in slack.thread("C0DATA", message["ts"]) if m.bot_id and "The answer is 42." in m.text]
        assert len(answers) == 1


async def test_a_redelivered_slash_command_runs_once(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    claude.script = quick_answer()
    # A generous per-person limit, so only deduplication can keep the second delivery from running.
    async with Harness({**env, "ANALYST_MAX_CONCURRENT_PER_USER": "5"}, slack, claude, socket=True) as harness:
        csv = harness.file("s.csv", streaming_csv)
        _, share = slack.file_share_message_event("C0DATA", "U0ALICE", "data", files=[csv])
        await slack.deliver_socket(share)
        payload = slack.command_payload(text="what is 6 times 7?", trigger_id="13345224609.738474920.8088930838d88f")
        await slack.deliver_socket(payload, envelope_type="slash_commands")
        await slack.deliver_socket(payload, envelope_type="slash_commands", retry_attempt=1)
        await harness.settle()
        assert len(claude.message_requests) == 1
        roots = [m for m in slack.channel_messages("C0DATA") if m.bot_id and "asked:" in m.text]
        assert len(roots) == 1


# -- Anthropic faults ----------------------------------------------------------------------


async def test_529s_that_say_when_to_come_back_are_waited_out_without_using_up_retries(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    claude.fail_next("messages", status=529, times=3, retry_after=0)
    async with Harness({**env, "ANALYST_ANTHROPIC_MAX_RETRIES": "1"}, slack, claude) as harness:
        asked = await harness.mention("what is 6 times 7?")
        text = harness.thread_text(asked)
        [run] = await harness.running.analyst.store.all_runs()
    # Three refusals, one retry allowed: it still succeeds, and the thread says Claude was busy once.
    assert text.count("Claude is busy right now — trying again") == 1 and "attempt" not in text
    assert "The answer is 42." in text
    assert [r.status for r in claude.message_requests] == [529, 529, 529, 200]
    assert run["status"] == "succeeded"


async def test_529s_without_retry_after_use_up_the_retries(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    claude.fail_next("messages", status=529, times=2)
    async with Harness({**env, "ANALYST_ANTHROPIC_MAX_RETRIES": "1"}, slack, claude) as harness:
        asked = await harness.mention("what is 6 times 7?")
        text = harness.thread_text(asked)
    assert "Claude is busy right now — trying again (attempt 2 of 2)" in text
    assert "Claude is overloaded right now. Try again in a few minutes." in text
    assert [r.status for r in claude.message_requests] == [529, 529]


async def test_429_with_retry_after_is_honoured(harness: Harness, claude: FakeAnthropic) -> None:
    claude.script = quick_answer()
    claude.fail_next("messages", status=429, retry_after=0.2)
    asked = await harness.mention("what is 6 times 7?")
    assert "Claude is busy right now — trying again" in harness.thread_text(asked)
    assert "The answer is 42." in harness.thread_text(asked)
    assert [r.status for r in claude.message_requests] == [429, 200]


async def test_a_broken_stream_is_retried_and_never_posted_half(harness: Harness, claude: FakeAnthropic) -> None:
    claude.script = scripted(Code("print(6 * 7)"), Text("The full answer is 42, with every detail."))
    claude.break_stream_next(after_events=12)
    asked = await harness.mention("what is 6 times 7?")
    answers = [m for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"]
    assert [m.blocks[0]["text"] for m in answers] == ["The full answer is 42, with every detail."]
    assert "The connection to Claude dropped — trying again" in harness.thread_text(asked)


async def test_a_run_past_its_deadline_is_stopped_with_a_message(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    gate = asyncio.Event()
    claude.script = quick_answer(hold=Hold(gate))
    async with Harness({**env, "ANALYST_RUN_DEADLINE_S": "1"}, slack, claude) as harness:
        asked = await harness.mention("what is 6 times 7?")
        gate.set()
        assert "took longer than its limit of 1 second, so I stopped it" in harness.thread_text(asked)
        [run] = await harness.running.analyst.store.all_runs()
        assert run["status"] == "failed" and "deadline" in run["error"]


# -- Slack faults --------------------------------------------------------------------------


async def test_slack_429_on_the_upload_url_is_retried(harness: Harness, slack: FakeSlack, streaming_csv: bytes) -> None:
    slack.fail_next("files.getUploadURLExternal", status=429, retry_after=0)
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    assert any(f["name"] == "churn_by_tier.png" for f in harness.thread_files(asked))
    assert any(c.http_status == 429 for c in slack.calls_to("files.getUploadURLExternal"))


async def test_an_expired_progress_stream_continues_in_the_same_message(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = quick_answer(hold=hold)
    asked = await harness.mention("what is 6 times 7?", settle=False)
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    stream = next(m for m in harness.replies(asked) if m.stream is not None)
    slack.expire_stream("C0DATA", stream.ts)
    hold.gate.set()
    await harness.settle()
    assert stream.edits and "Running" in slack.visible_text(stream)
    assert not [m for m in harness.replies(asked) if m.ts != stream.ts and "Working on" in slack.visible_text(m)]
    assert "The answer is 42." in harness.thread_text(asked)


# -- concurrency ---------------------------------------------------------------------------


async def test_a_hundred_concurrent_analyses_from_fifty_people(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    people = [f"U0P{n:03d}" for n in range(50)]
    for person in people:
        slack.add_user(person, person.lower())
        slack.workspace.channels["C0DATA"].members.add(person)
    settings = {**env, "ANALYST_MAX_CONCURRENT_PER_USER": "2", "ANALYST_MAX_CONCURRENT": "8"}
    async with Harness(settings, slack, claude) as harness:
        envelopes = [slack.mention_event("C0DATA", p, f"question {i} from {p}")[1] for p in people for i in range(2)]
        results = await asyncio.gather(*(harness.deliver(e) for e in envelopes))
        assert all(status == 200 for status, _ in results)
        await harness.settle()
        runs = await harness.running.analyst.store.all_runs()
    assert len(runs) == 100 and {r["status"] for r in runs} == {"succeeded"}
    per_person = {p: sum(r["user_id"] == p for r in runs) for p in people}
    assert set(per_person.values()) == {2}
    # The ledger's token accounting is exact: it equals what the API reported.
    reported = sum(m["usage"]["input_tokens"] + m["usage"]["output_tokens"] for m in claude.responses)
    assert sum(r["input_tokens"] + r["output_tokens"] for r in runs) == reported
    assert not [c for c in slack.calls if c.method.startswith("chat.") and not c.ok]


# -- a killed process, and a stopped one -----------------------------------------------------


async def ledger(env: dict[str, str]) -> list[dict[str, Any]]:
    """The runs in the bot's database (SQLite or PostgreSQL), read as another process would."""
    async with Store(database_target(env["ANALYST_DB"])) as store:
        return await store.all_runs()


@pytest.fixture
def durable_env(env: dict[str, str], store_target: Path | str) -> dict[str, str]:
    """The bot's environment with its database on each backend in turn."""
    return {**env, "ANALYST_DB": str(store_target)}


async def start_bot(env: dict[str, str], tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    process = await start_cli("serve", env={**env, "PORT": str(port)}, cwd=tmp_path)
    assert process.stderr is not None
    await wait_for_line(process.stderr, LISTENING, [])
    return process


async def ask_a_bot_process(
    env: dict[str, str], tmp_path: Path, slack: FakeSlack, claude: FakeAnthropic, hold: Hold
) -> tuple[asyncio.subprocess.Process, dict[str, Any], int]:
    """Start the bot as a real process and ask it something that stalls at ``hold``."""
    claude.script = quick_answer(hold=hold)
    port = free_port()
    process = await start_bot(env, tmp_path, port)
    message, envelope = slack.mention_event("C0DATA", "U0ALICE", "what is 6 times 7?")
    await slack.deliver_http(f"http://127.0.0.1:{port}/slack/events", envelope)
    await asyncio.wait_for(hold.reached.wait(), timeout=60)
    return process, message, port


async def kill_mid_analysis(
    env: dict[str, str], tmp_path: Path, slack: FakeSlack, claude: FakeAnthropic
) -> tuple[dict[str, Any], int]:
    """SIGKILL a bot process in the middle of an analysis: no chance to clean up."""
    hold = Hold(asyncio.Event())
    process, message, port = await ask_a_bot_process(env, tmp_path, slack, claude, hold)
    process.kill()
    await process.wait()
    hold.gate.set()  # let the fake finish the orphaned answer
    return message, port


async def test_a_killed_process_resumes_the_run_after_restart(
    tmp_path: Path, durable_env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    env = durable_env
    message, port = await kill_mid_analysis(env, tmp_path, slack, claude)
    assert [r["status"] for r in await ledger(env)] == ["running"]

    claude.script = quick_answer()
    restarted = await start_bot(env, tmp_path, port)
    try:
        await slack.wait_for(
            lambda: "white_check_mark" in slack.message("C0DATA", message["ts"]).reactions, timeout=60, what="resumed"
        )
        text = "\n".join(slack.visible_text(m) for m in slack.thread("C0DATA", message["ts"]) if m.bot_id)
        assert "I was restarted while working on this — starting it again." in text
        assert "The answer is 42." in text
        [run] = await ledger(env)
        assert run["status"] == "succeeded"
    finally:
        restarted.send_signal(signal.SIGTERM)
        await restarted.wait()


async def test_a_run_too_old_to_resume_is_failed_with_a_message(
    tmp_path: Path, durable_env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    env = durable_env
    message, port = await kill_mid_analysis(env, tmp_path, slack, claude)
    restarted = await start_bot({**env, "ANALYST_RESUME_MAX_AGE_S": "0"}, tmp_path, port)
    try:
        await slack.wait_for(
            lambda: any("too late to pick it up" in m.text for m in slack.thread("C0DATA", message["ts"])),
            timeout=60,
            what="the failure notice",
        )
        [run] = await ledger(env)
        assert run["status"] == "failed" and "restart" in run["error"]
    finally:
        restarted.send_signal(signal.SIGTERM)
        await restarted.wait()


async def test_a_run_the_access_rules_no_longer_allow_is_not_resumed(
    tmp_path: Path, durable_env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Restarted with the asker no longer allowed: the run ends refused, only the asker is told
    why, and Claude is not asked again."""
    env = durable_env
    message, port = await kill_mid_analysis(env, tmp_path, slack, claude)
    asked_before = len(claude.requests)
    restarted = await start_bot({**env, "ANALYST_ALLOWED_USERS": "U0BOB"}, tmp_path, port)
    try:
        await slack.wait_for(
            lambda: "no_entry_sign" in slack.message("C0DATA", message["ts"]).reactions, timeout=60, what="refused"
        )
        [note] = slack.ephemerals("C0DATA", "U0ALICE")
        assert "isn't enabled for you" in slack.visible_text(note)
        assert "eyes" not in slack.message("C0DATA", message["ts"]).reactions
        bot_replies = [slack.visible_text(m) for m in slack.thread("C0DATA", message["ts"]) if m.bot_id]
        assert not any("starting it again" in text for text in bot_replies)
        [run] = await ledger(env)
        assert run["status"] == "refused" and run["error"].startswith("access: ")
        assert len(claude.requests) == asked_before
    finally:
        restarted.send_signal(signal.SIGTERM)
        await restarted.wait()


async def test_sigterm_lets_a_running_analysis_finish(
    tmp_path: Path, durable_env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    env = durable_env
    hold = Hold(asyncio.Event())
    process, message, _ = await ask_a_bot_process(env, tmp_path, slack, claude, hold)
    process.send_signal(signal.SIGTERM)
    hold.gate.set()
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    text = "\n".join(slack.visible_text(m) for m in slack.thread("C0DATA", message["ts"]) if m.bot_id)
    assert "The answer is 42." in text
    assert [r["status"] for r in await ledger(env)] == ["succeeded"]


async def test_past_the_grace_period_a_run_is_interrupted_and_resumed_on_restart(
    tmp_path: Path, durable_env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    env = durable_env
    hold = Hold(asyncio.Event())
    process, message, port = await ask_a_bot_process(
        {**env, "ANALYST_SHUTDOWN_GRACE_S": "0"}, tmp_path, slack, claude, hold
    )
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    hold.gate.set()
    [run] = await ledger(env)
    assert run["status"] == "queued" and "interrupted" in run["error"]
    assert any("I'm restarting" in m.text for m in slack.thread("C0DATA", message["ts"]))

    claude.script = quick_answer()
    restarted = await start_bot(env, tmp_path, port)
    try:
        await slack.wait_for(
            lambda: "white_check_mark" in slack.message("C0DATA", message["ts"]).reactions, timeout=60, what="resumed"
        )
        assert [r["status"] for r in await ledger(env)] == ["succeeded"]
    finally:
        restarted.send_signal(signal.SIGTERM)
        await restarted.wait()
