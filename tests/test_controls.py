"""In control while it runs, and able to judge the answer: Stop, 👍/👎 (with the "what was
wrong?" form), delete, and the links to the code — clicked as a person would, on the
messages the bot really posted, over signed interactivity."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.feedback import FeedbackStore
from bot.sanitize import neutralize
from handlers.slack.controls import COMMENT_INPUT, DELETE, RATE, STOP
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Hold, Text, scripted
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import Message
from tests.harness import Asked, Harness

CHANNEL = "C0DATA"


def slow_answer(hold: Hold) -> Any:
    """One code run, then a stall mid-answer (at ``hold``) before the interpretation."""
    return scripted(Code("print(6 * 7)"), hold, Text("The answer is 42."))


def quick_answer() -> Any:
    return scripted(Code("print(6 * 7)"), Text("The answer is 42."))


def with_element(harness: Harness, asked: Asked, action_id: str) -> Message:
    """The bot's message in the thread that shows ``action_id``."""
    found = [
        m
        for m in harness.replies(asked)
        if any(e.get("action_id") == action_id for b in m.blocks or [] for e in b.get("elements") or [])
    ]
    assert len(found) == 1, [harness.slack.visible_text(m) for m in harness.replies(asked)]
    return found[0]


async def started(harness: Harness, claude: FakeAnthropic, hold: Hold) -> Asked:
    claude.script = slow_answer(hold)
    asked = await harness.mention("what is 6 times 7?", settle=False)
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    # The bot has shown the step that ran before the stall (its output, 42) and the Stop button.
    await harness.slack.wait_for(
        lambda: (
            "  42" in harness.thread_text(asked)
            and any(
                e.get("action_id") == STOP
                for m in harness.replies(asked)
                for b in m.blocks or []
                for e in b.get("elements") or []
            )
        ),
        what="the first step's output and the Stop button",
    )
    return asked


# -- Stop ------------------------------------------------------------------------------------


async def test_stop_cancels_a_slow_run_and_the_thread_stays_usable(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    hold = Hold(asyncio.Event())
    asked = await started(harness, claude, hold)
    stop = with_element(harness, asked, STOP)

    await harness.click("U0ALICE", stop, STOP)

    # The in-flight request was closed, and no further Messages call was made for the run.
    await asyncio.wait_for(claude.client_closed.wait(), timeout=30)
    assert len(claude.message_requests) == 1
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "cancelled" and run["error"] == "stopped by U0ALICE"
    assert run["input_tokens"] > 0  # what the cut-short call had used is in the ledger
    assert run["code_executions"] == 1
    # The progress message ends saying who stopped it; the Stop button is gone; no answer.
    text = harness.thread_text(asked)
    assert "Stopped by <@U0ALICE>" in text and "The answer is 42." not in text
    assert stop.deleted
    assert "black_square_for_stop" in slack.message(CHANNEL, asked.ts).reactions
    hold.gate.set()

    # The thread stays usable: a follow-up runs and is answered.
    claude.script = quick_answer()
    await harness.mention("and again?", thread_ts=asked.thread_ts)
    assert "The answer is 42." in harness.thread_text(asked)
    runs = await harness.running.analyst.store.all_runs()
    assert [r["status"] for r in runs] == ["cancelled", "succeeded"]
    assert not any(  # the follow-up's Stop button went when it finished
        e.get("action_id") == STOP
        for m in harness.replies(asked)
        for b in m.blocks or []
        for e in b.get("elements") or []
    )


async def test_stop_by_someone_else_is_refused_privately_and_the_run_goes_on(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    hold = Hold(asyncio.Event())
    asked = await started(harness, claude, hold)
    stop = with_element(harness, asked, STOP)

    await harness.click("U0BOB", stop, STOP, settle=False)  # the run is still going: nothing to settle

    await slack.wait_for(lambda: bool(slack.ephemerals(CHANNEL, "U0BOB")), what="Bob's private note")
    [note] = slack.ephemerals(CHANNEL, "U0BOB")
    assert "Only <@U0ALICE>, who asked, or an admin can stop this analysis." in note.text
    assert not stop.deleted and claude.closed_by_client == []
    hold.gate.set()
    await harness.settle()
    assert "The answer is 42." in harness.thread_text(asked)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded"


async def test_an_admin_may_stop_anyones_run(env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic) -> None:
    async with Harness({**env, "ANALYST_ADMINS": "U0BOB"}, slack, claude) as harness:
        hold = Hold(asyncio.Event())
        asked = await started(harness, claude, hold)
        await harness.click("U0BOB", with_element(harness, asked, STOP), STOP)
        [run] = await harness.running.analyst.store.all_runs()
        assert run["status"] == "cancelled" and "Stopped by <@U0BOB>" in harness.thread_text(asked)
        hold.gate.set()


async def test_stop_after_the_run_ended_says_so(harness: Harness, slack: FakeSlack, claude: FakeAnthropic) -> None:
    hold = Hold(asyncio.Event())
    asked = await started(harness, claude, hold)
    payload = slack.click(
        "U0ALICE", with_element(harness, asked, STOP).channel, with_element(harness, asked, STOP).ts, STOP
    )
    hold.gate.set()
    await harness.settle()
    # A click that arrives once the run is over (the button went as it ended).
    status, _, _ = await slack.deliver_interaction(harness.events_url, payload)
    await harness.settle()
    assert status == 200
    [note] = slack.ephemerals(CHANNEL, "U0ALICE")
    assert "That analysis has already finished." in note.text
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded"


# -- on every answer -------------------------------------------------------------------------


async def answered(harness: Harness, claude: FakeAnthropic) -> tuple[Asked, Message]:
    claude.script = quick_answer()
    asked = await harness.mention("what is 6 times 7?")
    return asked, with_element(harness, asked, RATE)


async def test_every_answer_offers_feedback_delete_and_a_link_to_its_code(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    asked, answer = await answered(harness, claude)
    assert "The answer is 42." in slack.visible_text(answer)
    kinds = [b["type"] for b in answer.blocks or []]
    assert kinds[-2:] == ["context", "context_actions"]
    [code] = [f for f in harness.thread_files(asked) if f["name"] == "analysis_code.py"]
    assert f"<{code['permalink']}|analysis_code.py>" in answer.blocks[-2]["elements"][0]["text"]
    actions = {e["type"] for e in answer.blocks[-1]["elements"]}
    assert actions == {"feedback_buttons", "icon_button"}


async def test_an_answer_with_nothing_to_upload_is_posted_with_its_buttons(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """No code ran and no file came back: the buttons have no links to wait for, so they go
    out with the answer (one chat.postMessage) rather than in a chat.update after it."""
    claude.script = scripted(Text("The answer is 42."))
    asked = await harness.mention("what is 6 times 7?")
    answer = with_element(harness, asked, RATE)
    assert "The answer is 42." in slack.visible_text(answer)
    assert [b["type"] for b in answer.blocks or []][-1] == "context_actions"
    [posted] = [c for c in slack.calls_to("chat.postMessage") if c.response and c.response.get("ts") == answer.ts]
    assert RATE in str(posted.params.get("blocks"))
    assert [c for c in slack.calls_to("chat.update") if c.params.get("ts") == answer.ts] == []


async def test_feedback_is_stored_last_write_wins_and_a_thumbs_down_asks_what_was_wrong(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    _, answer = await answered(harness, claude)
    feedback = FeedbackStore(harness.running.analyst.store)
    [run] = await harness.running.analyst.store.all_runs()

    await harness.click("U0ALICE", answer, RATE, positive=True)
    await harness.click("U0ALICE", answer, RATE, positive=False)
    # The 👎 opened the form, for the person who clicked.
    [form] = slack.api.views.values()
    assert form["user"] == "U0ALICE" and form["title"]["text"] == "What was wrong?"
    submission = slack.submit_view(form["id"], {COMMENT_INPUT: {COMMENT_INPUT: "It used the wrong <!channel> column"}})
    status, _, _ = await slack.deliver_interaction(harness.events_url, submission)
    assert status == 200
    await harness.settle()
    await harness.click("U0ALICE", answer, RATE, positive=True)  # changed their mind: 👍 again
    await harness.click("U0BOB", answer, RATE, positive=False)

    rows = {r["user_id"]: r for r in await feedback.of_run(run["id"])}
    assert rows["U0ALICE"]["rating"] == "good"
    # Kept as typed, but neutralised: shown in a report later, it can't ping a channel.
    assert rows["U0ALICE"]["comment"] == neutralize("It used the wrong <!channel> column") != "<!channel>"
    assert "<!channel>" not in rows["U0ALICE"]["comment"]
    assert rows["U0BOB"]["rating"] == "bad" and rows["U0BOB"]["comment"] is None
    assert len(slack.api.views) == 2  # Bob's 👎 opened his own form


async def test_the_trash_button_deletes_the_answer_and_its_files(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    asked, answer = await answered(harness, claude)
    assert harness.thread_files(asked)

    await harness.click("U0BOB", answer, DELETE)  # not Bob's to delete
    [note] = slack.ephemerals(CHANNEL, "U0BOB")
    assert "Only <@U0ALICE>, who asked, or an admin can delete this answer." in note.text
    assert "The answer is 42." in harness.thread_text(asked)

    await harness.click("U0ALICE", answer, DELETE)
    assert "The answer is 42." not in harness.thread_text(asked)
    assert harness.thread_files(asked) == []
    assert all(f.state == "deleted" for f in slack.workspace.files.values() if f.user == slack.workspace.bot_user_id)


async def test_buttons_work_after_a_restart(env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic) -> None:
    async with Harness(env, slack, claude) as harness:
        asked, answer = await answered(harness, claude)
        [run] = await harness.running.analyst.store.all_runs()
    async with Harness(env, slack, claude) as restarted:
        await restarted.click("U0ALICE", answer, RATE, positive=True)
        [row] = await FeedbackStore(restarted.running.analyst.store).of_run(run["id"])
        assert row["rating"] == "good"
        await restarted.click("U0ALICE", answer, DELETE)
        assert "The answer is 42." not in restarted.thread_text(asked)


async def test_admins_see_the_ratings_in_analyze_usage(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0DAVE", "dave")
    slack.workspace.channels[CHANNEL].members.add("U0DAVE")
    async with Harness({**env, "ANALYST_ADMINS": "U0BOB"}, slack, claude) as harness:
        _, answer = await answered(harness, claude)
        await harness.click("U0ALICE", answer, RATE, positive=True)
        await harness.click("U0DAVE", answer, RATE, positive=False)
        for user in ("U0BOB", "U0ALICE"):
            await slack.deliver_command(harness.events_url, text="usage", user_id=user)
        await harness.settle()
    [admin] = [e.text for e in slack.ephemerals(CHANNEL, "U0BOB") if "Your analyses" in e.text]
    assert "Answers rated in this workspace, last 7 days:* 👍 1 · 👎 1 (50 % positive)" in admin
    [person] = [e.text for e in slack.ephemerals(CHANNEL, "U0ALICE") if "Your analyses" in e.text]
    assert "Answers rated" not in person


async def test_the_final_mark_is_set_even_when_the_eyes_are_gone(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A run another process admitted (or whose 👀 someone removed) still ends with ✅."""
    hold = Hold(asyncio.Event())
    asked = await started(harness, claude, hold)
    reactions = slack.message(CHANNEL, asked.ts).reactions
    assert "eyes" in reactions
    del reactions["eyes"]
    hold.gate.set()
    await harness.settle()
    assert "The answer is 42." in harness.thread_text(asked)
    assert list(slack.message(CHANNEL, asked.ts).reactions) == ["white_check_mark"]
