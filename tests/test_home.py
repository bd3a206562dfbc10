"""The App Home tab: opened by a person, published with ``views.publish`` from the store.

What the person sees is read from the fake Slack (the view last published for them, held to
the Block Kit check of a Home tab); the figures are checked against the ledger the runs left.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.feedback import FeedbackStore, Ratings
from bot.history import (
    FILES_SHOWN,
    LAST_RUNS,
    Allowance,
    HomeData,
    PastRun,
    QuotaLeft,
    WeekFigures,
    next_run_at,
    next_tokens_at,
    past_run,
    quota_left,
)
from bot.quotas import DAY, HOUR, run_tokens, slack_time
from bot.requests import AnalysisRequest, SharedFile
from bot.sanitize import ZWSP
from bot.store import ConversationStore, Store, ThreadFile, parse_iso, utc_iso
from handlers.slack.home import UNAVAILABLE, home_view
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_blocks import MAX_VIEW_BLOCKS, BlocksRejected, render_blocks, validate_home_view
from tests.fakes.slack_contract import ConformanceLog
from tests.fakes.slack_manifest import manifest_bot_events, manifest_home_tab_enabled
from tests.harness import ALICE, Harness
from tests.test_slack_fixtures import fixture, fresh

BOB = "U0BOB"
NOW = 1_800_000_000.0


async def open_home(harness: Harness, user: str, *, socket: bool = False) -> dict[str, Any]:
    """``user`` opens the Home tab; returns the view they then see."""
    before = harness.slack.home_view(user)
    envelope = harness.slack.app_home_opened_event(user)
    if socket:
        await harness.slack.deliver_socket(envelope)
    else:
        status, body = await harness.deliver(envelope)
        assert status == 200, body
    await harness.slack.wait_for(lambda: harness.slack.home_view(user) is not before, what=f"{user}'s Home tab")
    view = harness.slack.home_view(user)
    assert view is not None
    return view


def text_of(view: dict[str, Any]) -> str:
    return render_blocks(view["blocks"])


async def ledger(harness: Harness, user: str) -> list[dict[str, Any]]:
    return [row for row in await harness.running.analyst.store.all_runs() if row["user_id"] == user]


# --------------------------------------------------------------------------- through the running bot


async def test_after_two_analyses_the_home_tab_shows_the_quota_left_and_both_with_links(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
    second = await harness.mention("now split that by tier", thread_ts=first.ts)

    view = await open_home(harness, ALICE)

    text = text_of(view)
    rows = await ledger(harness, ALICE)
    assert len(rows) == 2 and {row["status"] for row in rows} == {"succeeded"}
    used = sum(run_tokens(row) for row in rows)
    assert used > 0
    oldest = min(parse_iso(row["started_at"]) for row in rows)
    assert f"*Analyses this hour:* 18 of 20 left — another frees at {slack_time(oldest + HOUR)}" in text
    assert (
        f"*Tokens in 24 h:* {2_000_000 - used:,} of 2,000,000 left — more come back at {slack_time(oldest + DAY)}"
        in text
    )
    # Both analyses, newest first, each linked to its thread, with its file and status.
    assert text.index("now split that by tier") < text.index("what drives churn?")
    link = f"https://acme.slack.com/archives/C0DATA/p{first.thread_ts.replace('.', '')}"
    assert f"*<{link}|now split that by tier>*" in text
    assert f"*<{link}|what drives churn?>*" in text
    assert text.count("`streaming.csv`") == 2  # the follow-up analysed the conversation's file
    assert text.count("✅ done") == 2
    assert "This workspace" not in text  # not an admin
    assert second.thread_ts == first.ts
    permalinks = slack.calls_to("chat.getPermalink")
    assert [call.params["message_ts"] for call in permalinks] == [first.ts]  # one thread, one lookup


async def test_admins_see_the_workspace_week_and_no_per_person_limits(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_ADMINS": ALICE}, slack, claude) as harness:
        asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)], user=BOB)
        [run] = await ledger(harness, BOB)
        feedback = FeedbackStore(harness.running.analyst.store)
        await feedback.rate(run_id=run["id"], user_id=BOB, team_id="T0TEAM", rating="good")
        await feedback.rate(run_id=run["id"], user_id=ALICE, team_id="T0TEAM", rating="bad")

        admin = text_of(await open_home(harness, ALICE))
        person = text_of(await open_home(harness, BOB))

    assert asked.ts
    assert "This workspace, last 7 days" in admin
    assert f"*1 analysis* · *{run_tokens(run):,}* tokens" in admin
    assert "*Feedback:* 👍 1 · 👎 1 (50 % positive)" in admin
    assert f"• <@{BOB}>: 1 run, {run_tokens(run):,} tokens" in admin
    assert "Your quota" not in admin  # Alice has no analyses of her own
    assert "This workspace" not in person and "Top users" not in person
    assert "*Analyses this hour:* 19 of 20 left" in person


async def test_an_admins_own_quota_says_they_are_exempt(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_ADMINS": ALICE}, slack, claude) as harness:
        await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
        text = text_of(await open_home(harness, ALICE))
    assert "No per-person limits: you're an admin" in text
    assert "left" not in text.split("Your quota", 1)[1].split("Your latest", 1)[0]


async def test_someone_with_no_history_gets_the_how_to_only(harness: Harness, slack: FakeSlack) -> None:
    view = await open_home(harness, BOB)

    text = text_of(view)
    assert "How to start" in text and "/analyze" in text and "direct message" in text
    assert "Your quota" not in text and "latest" not in text and "This workspace" not in text
    assert slack.calls_to("chat.getPermalink") == []


async def test_the_messages_tab_publishes_nothing(harness: Harness, slack: FakeSlack) -> None:
    status, _ = await harness.deliver(slack.app_home_opened_event(ALICE, tab="messages"))
    await harness.settle()

    assert status == 200
    assert slack.calls_to("views.publish") == []


async def test_500_past_runs_stay_within_block_kit_limits_and_unlinkable_threads_are_listed_unlinked(
    harness: Harness, slack: FakeSlack
) -> None:
    store = harness.running.analyst.store
    live = slack.post_user_message("C0DATA", ALICE, "an old question that still has its thread")
    many_files = tuple(SharedFile(id=f"F{i}", name=f"{'quarterly-' * 12}{i}.csv") for i in range(40))
    for number in range(500):
        thread_ts = live["ts"] if number == 499 else f"1700000000.{number:06d}"  # only the newest still exists
        request = AnalysisRequest("T0TEAM", "C0DATA", ALICE, thread_ts, thread_ts, "q", files=many_files)
        await store.create_run(
            source="mention",
            status="failed" if number % 2 else "succeeded",
            team_id="T0TEAM",
            channel_id="C0DATA",
            thread_ts=thread_ts,
            message_ts=thread_ts,
            user_id=ALICE,
            question=f"question {number}: <!channel> " + "why? " * 2000,
            model="claude-sonnet-5-5",
            input_tokens=1000,
            output_tokens=100,
            request=request.to_json(),
        )

    view = await open_home(harness, ALICE)

    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    validate_home_view({"type": "home", "blocks": view["blocks"]})  # the fake took it; this says why
    text = text_of(view)
    assert "question 499" in text and "question 490" in text and "question 489" not in text
    assert text.count("and 35 more") == LAST_RUNS  # 40 files: 5 named, the rest counted
    assert "<!channel>" not in text and f"<{ZWSP}!channel>" not in text  # neutralised, then escaped
    assert f"&lt;{ZWSP}!channel&gt;" in text
    assert "*Analyses this hour:* none left (500 of 20 used)" in text
    assert len(slack.calls_to("chat.getPermalink")) == LAST_RUNS
    linked = [block for block in view["blocks"] if "archives/C0DATA" in render_blocks([block])]
    assert len(linked) == 1 and "question 499" in render_blocks(linked)  # the rest: no link, still listed


async def test_the_home_tab_works_after_a_restart(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness(env, slack, claude) as harness:
        await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
    async with Harness(env, slack, claude, socket=True) as restarted:
        text = text_of(await open_home(restarted, ALICE, socket=True))

    assert "what drives churn?" in text and "`streaming.csv`" in text and "✅ done" in text
    assert "*Analyses this hour:* 19 of 20 left" in text


async def test_when_the_figures_cant_be_read_the_tab_says_so_and_keeps_the_how_to(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(user_id: str, team_id: str) -> HomeData:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(harness.running.analyst, "home", broken)

    text = text_of(await open_home(harness, ALICE))

    assert UNAVAILABLE in text and "How to start" in text


async def test_slacks_published_app_home_opened_example_publishes_the_tab(harness: Harness, slack: FakeSlack) -> None:
    envelope = fixture("event_app_home_opened")
    envelope["event"]["channel"] = slack.open_dm(ALICE)
    envelope["event"]["event_ts"] = slack.workspace.clock.next()

    status, _ = await harness.deliver(fresh(envelope, slack))
    await harness.settle()

    assert status == 200
    assert "How to start" in slack.home_text(ALICE)


def test_the_manifest_turns_the_home_tab_on_and_subscribes_to_its_event() -> None:
    assert manifest_home_tab_enabled()
    assert "app_home_opened" in manifest_bot_events()


# --------------------------------------------------------------------------- the fake's views.publish


async def test_views_publish_refuses_what_slack_refuses(slack: FakeSlack, slack_conformance: ConformanceLog) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}

    async def error(**kwargs: Any) -> str:
        with pytest.raises(SlackApiError) as refused:
            await client.views_publish(**kwargs)
        return str(refused.value.response["error"])

    assert await error(user_id="U0NOBODY", view={"type": "home", "blocks": [section]}) == "user_not_found"
    assert await error(user_id=ALICE, view={"type": "modal", "blocks": [section]}) == "invalid_arguments"
    assert await error(user_id=ALICE, view={"type": "home"}) == "invalid_arguments"
    markdown = {"type": "markdown", "text": "**hi**"}  # a message-only block
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [markdown]}) == "invalid_arguments"
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [section] * 101}) == "invalid_arguments"
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [section], "hash": "x"}) == "invalid_arguments"
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [section]}, hash="1.stale") == "hash_conflict"
    big = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [big] * 99}) == "view_too_large"
    slack_conformance.take()
    assert slack.home_view(ALICE) is None

    published = await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": [section] * 100})
    view = published["view"]
    again = await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": [section]}, hash=view["hash"])
    assert again["view"]["id"] == view["id"] and again["view"]["hash"] != view["hash"]
    assert slack.home_text(ALICE) == "hi"
    slack.workspace.home_tab_enabled = False
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [section]}) == "not_enabled"


def test_app_home_opened_carries_the_tab_the_person_sees(slack: FakeSlack) -> None:
    first = slack.app_home_opened_event(ALICE)["event"]
    assert first["type"] == "app_home_opened" and first["tab"] == "home" and "view" not in first
    assert first["channel"] == slack.open_dm(ALICE)
    slack.workspace.publish_home(ALICE, {"type": "home", "blocks": []})
    assert slack.app_home_opened_event(ALICE)["event"]["view"]["type"] == "home"
    assert "view" not in slack.app_home_opened_event(ALICE, tab="messages")["event"]


# --------------------------------------------------------------------------- pure figures and layout


def run_row(run_id: int, started: float, *, tokens: int = 1000, **fields: Any) -> dict[str, Any]:
    row = {
        "id": run_id,
        "started_at": utc_iso(started),
        "input_tokens": tokens,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "web_search_requests": 0,
        "model": "claude-sonnet-5-5",
        "question": "q",
        "status": "succeeded",
        "channel_id": "C0DATA",
        "thread_ts": "1.0",
        "request": None,
    }
    return {**row, **fields}


def test_quota_left_counts_as_admission_does_and_says_when_more_comes_back() -> None:
    rows = [
        run_row(1, NOW - 3000, tokens=500),
        run_row(2, NOW - 1200, tokens=300),
        run_row(3, NOW - 600, tokens=700),
        run_row(4, NOW - 5 * HOUR, tokens=1000),
    ]

    quota = quota_left(rows, now=NOW, runs_per_hour=2, daily_tokens=1200, exempt=False)

    # Over the limit (it was lowered, say): a slot frees when the run before the last two leaves the hour.
    assert quota.runs == Allowance(used=3, limit=2, frees_at=NOW - 1200 + HOUR)
    assert quota.runs.left == 0
    # 2,500 tokens: under 1,200 again once the two oldest runs' have left the day.
    assert quota.tokens == Allowance(used=2500, limit=1200, frees_at=NOW - 3000 + DAY)
    roomy = quota_left(rows, now=NOW, runs_per_hour=5, daily_tokens=10_000, exempt=False)
    assert roomy.runs.left == 2 and roomy.runs.frees_at == NOW - 3000 + HOUR  # the oldest leaves the hour
    assert roomy.tokens.left == 7500 and roomy.tokens.frees_at == NOW - 5 * HOUR + DAY
    assert next_run_at([], 3) is None and next_tokens_at([], 3) is None


async def test_the_home_queries(tmp_path: Path) -> None:
    async with Store(tmp_path / "analyst.db", clock=lambda: NOW) as store:
        ids = [
            await store.create_run(source="mention", status=status, user_id=user, channel_id="C", thread_ts=ts)
            for user, status, ts in [
                (ALICE, "succeeded", "1.0"),
                (BOB, "succeeded", "3.0"),
                (ALICE, "failed", "1.0"),
                (ALICE, "cancelled", "4.0"),
                (ALICE, "refused", "2.0"),
            ]
        ]
        conversations = ConversationStore(store)
        for key, name in [("C:1.0", "a.csv"), ("C:1.0", "b.xlsx"), ("C:4.0", "c.csv")]:
            await conversations.add_file(key, ThreadFile(name, f"file_{name}", None, name, "csv", 1))

        latest = await store.latest_runs_of_user(ALICE, 2)
        names = await conversations.file_names(["C:1.0", "C:4.0", "C:9.0", "C:1.0"])

    assert [row["id"] for row in latest] == [ids[3], ids[2]]  # newest first, refused ones left out
    assert names == {"C:1.0": ["a.csv", "b.xlsx"], "C:4.0": ["c.csv"], "C:9.0": []}


def test_a_past_run_names_its_own_files_else_its_conversations() -> None:
    request = AnalysisRequest("T", "C", "U", "1.0", "1.0", "q", files=(SharedFile("F1", name="sales.xlsx"),))
    asked = past_run(run_row(1, NOW, request=request.to_json()), ["streaming.csv"])
    follow_up = past_run(run_row(2, NOW, request=json.dumps({"broken": True})), ["streaming.csv"])

    assert asked.files == ("sales.xlsx",)
    assert follow_up.files == ("streaming.csv",) and follow_up.more_files == 0


def worst_case() -> HomeData:
    nasty = "<!channel> @here `x` & *y* " * 100
    runs = tuple(
        PastRun(
            id=i,
            question=nasty[:300],
            files=tuple("n" * 80 for _ in range(FILES_SHOWN)),
            more_files=10_000,
            status="failed",
            started_at=NOW,
            tokens=10**9,
            cost=123_456.78,
            channel_id="C0DATA",
            thread_ts="1.0",
        )
        for i in range(LAST_RUNS)
    )
    full = Allowance(10**9, 20, NOW)
    week = WeekFigures(10**6, 10**12, 10**7, [(f"U{i:010d}", 10**5, 10**10, 10**6) for i in range(5)], Ratings(9, 9))
    return HomeData(user_id=ALICE, quota=QuotaLeft(False, full, full), runs=runs, workspace=week)


def test_the_fullest_home_tab_is_within_block_kit_limits() -> None:
    data = worst_case()
    links = {run.id: "https://acme.slack.com/archives/C0DATA/p" + "1" * 200 for run in data.runs}

    view = home_view(data, permalinks=links, bot_user_id="UBOT")

    validate_home_view(view)
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    assert len(json.dumps(view).encode()) < 250_000


def test_the_view_check_would_catch_a_view_over_the_limits() -> None:
    view = home_view(worst_case())
    with pytest.raises(BlocksRejected):
        validate_home_view({**view, "blocks": view["blocks"] * 5})
