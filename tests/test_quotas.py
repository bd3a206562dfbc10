"""Quotas from the run ledger: exact under concurrency, durable across restarts, explained."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bot.quotas import LedgerState, Limits, check, slack_time
from bot.store import Store
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.harness import Harness, prompt_text

NOW = 1_764_115_200.0  # 2025-11-26 00:00 UTC
LIMITS = Limits(
    runs_per_hour=3, max_concurrent_per_user=10, daily_tokens_per_user=1_000, daily_tokens_per_workspace=5_000
)


def fields(user: str = "U0ALICE", team: str = "T0TEAM") -> dict[str, str]:
    return {"user_id": user, "team_id": team, "channel_id": "C0DATA", "source": "mention"}


# -- the arithmetic ------------------------------------------------------------------------


def test_runs_per_hour_names_the_limit_and_the_next_slot() -> None:
    usage = LedgerState(run_starts=[NOW - 3000, NOW - 1200, NOW - 600], active=0, user_tokens=[], workspace_tokens=[])
    refusal = check(usage, LIMITS, now=NOW)
    assert refusal is not None and refusal.limit == "ANALYST_RUNS_PER_HOUR"
    assert refusal.next_slot_at == NOW - 3000 + 3600
    assert "limit of 3 analyses per hour" in refusal.message and "(3 in the last hour)" in refusal.message
    assert slack_time(NOW + 600) in refusal.message and "in 10 min" in refusal.message


def test_daily_tokens_free_up_as_old_runs_age_out() -> None:
    usage = LedgerState(
        run_starts=[], active=0, user_tokens=[(NOW - 80_000, 600), (NOW - 3600, 500)], workspace_tokens=[]
    )
    refusal = check(usage, LIMITS, now=NOW)
    assert refusal is not None and refusal.limit == "ANALYST_DAILY_TOKENS_PER_USER"
    assert refusal.next_slot_at == NOW - 80_000 + 86_400  # dropping the oldest run gets under 1,000
    assert "1,100 of your 1,000 tokens" in refusal.message


def test_concurrency_and_workspace_limits_and_admins() -> None:
    busy = LedgerState(run_starts=[], active=10, user_tokens=[], workspace_tokens=[])
    refusal = check(busy, LIMITS, now=NOW)
    assert refusal is not None and refusal.limit == "ANALYST_MAX_CONCURRENT_PER_USER"
    assert check(busy, LIMITS, now=NOW, exempt=True) is None  # admins skip per-person limits
    full = LedgerState(run_starts=[], active=0, user_tokens=[], workspace_tokens=[(NOW - 10, 5_000)])
    refusal = check(full, LIMITS, now=NOW, exempt=True)
    assert refusal is not None and refusal.limit == "ANALYST_DAILY_TOKENS_PER_WORKSPACE"


# -- atomic admission ----------------------------------------------------------------------


async def test_twenty_simultaneous_requests_with_a_limit_of_three_admit_exactly_three(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        results = await asyncio.gather(*(store.admit(limits=LIMITS, exempt=False, **fields()) for _ in range(20)))
        admitted = [run_id for run_id, refusal in results if refusal is None]
        assert len(admitted) == 3
        statuses = [r["status"] for r in await store.all_runs()]
        assert statuses.count("queued") == 3 and statuses.count("refused") == 17


async def test_two_processes_share_the_limit(store_target: Path | str) -> None:
    """Two stores on one database stand for two bot processes: the transaction still holds."""
    async with (
        Store(store_target, clock=lambda: NOW) as one,
        Store(store_target, clock=lambda: NOW) as two,
    ):
        results = await asyncio.gather(
            *(store.admit(limits=LIMITS, exempt=False, **fields()) for store in [one, two] * 10)
        )
        assert sum(refusal is None for _, refusal in results) == 3


async def test_limits_survive_a_restart(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        for _ in range(3):
            _, refusal = await store.admit(limits=LIMITS, exempt=False, **fields())
            assert refusal is None
    async with Store(store_target, clock=lambda: NOW + 60) as restarted:
        _, refusal = await restarted.admit(limits=LIMITS, exempt=False, **fields())
        assert refusal is not None and refusal.limit == "ANALYST_RUNS_PER_HOUR"
        _, other = await restarted.admit(limits=LIMITS, exempt=False, **fields(user="U0BOB"))
        assert other is None  # limits are per person
    async with Store(store_target, clock=lambda: NOW + 3601) as later:
        _, refusal = await later.admit(limits=LIMITS, exempt=False, **fields())
        assert refusal is None  # the rolling hour moved on


async def test_refused_requests_do_not_count(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        for _ in range(10):
            await store.admit(limits=LIMITS, exempt=False, **fields())
        runs = await store.all_runs()
        assert len(runs) == 10
        # Only the admitted three are in the hour's count, so the refusal still says 3.
        assert all("(3 in the last hour)" in r["error"] for r in runs if r["status"] == "refused")


# -- what people see -----------------------------------------------------------------------


async def test_over_the_limit_the_asker_is_told_privately_and_claude_is_not_called(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_RUNS_PER_HOUR": "1"}, slack, claude) as harness:
        await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
        calls = len(claude.requests)
        downloads = len(slack.downloads)
        refused = await harness.mention("and again?", files=[harness.file("t.csv", streaming_csv)])
        assert len(claude.requests) == calls and len(slack.downloads) == downloads
        assert harness.replies(refused) == []  # nothing public
        [note] = [e for e in slack.ephemerals("C0DATA", "U0ALICE") if "limit of 1 analyses per hour" in e.text]
        assert re.search(r"<!date\^\d+\^\{time\}\|\d\d:\d\d UTC>", note.text)
        assert "no_entry_sign" in slack.message("C0DATA", refused.ts).reactions
        runs = await harness.running.analyst.store.all_runs()
        assert [r["status"] for r in runs] == ["succeeded", "refused"]
        assert runs[1]["error"].startswith("ANALYST_RUNS_PER_HOUR")


async def test_twenty_concurrent_mentions_from_one_person_run_exactly_three(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    async with Harness(
        {**env, "ANALYST_RUNS_PER_HOUR": "3", "ANALYST_MAX_CONCURRENT_PER_USER": "20"}, slack, claude
    ) as harness:
        asked = []
        for i in range(20):
            _, envelope = slack.mention_event("C0DATA", "U0ALICE", f"what is {i} squared?")
            asked.append(envelope)
        statuses = await asyncio.gather(*(harness.deliver(e) for e in asked))
        assert all(status == 200 for status, _ in statuses)
        await harness.settle()
        runs = await harness.running.analyst.store.all_runs()
        assert sum(r["status"] == "succeeded" for r in runs) == 3
        assert sum(r["status"] == "refused" for r in runs) == 17
        assert len({prompt_text(r.body["messages"][-1]) for r in claude.message_requests}) == 3
        notes = [e for e in slack.ephemerals("C0DATA", "U0ALICE") if "analyses per hour" in e.text]
        assert len(notes) == 17


async def test_admins_are_exempt_from_per_person_limits(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    async with Harness({**env, "ANALYST_RUNS_PER_HOUR": "1", "ANALYST_ADMINS": "U0ALICE"}, slack, claude) as harness:
        for question in ("what is 2+2?", "what is 3+3?"):
            await harness.mention(question)
        runs = await harness.running.analyst.store.all_runs()
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"]


async def test_beyond_the_process_cap_requests_queue_and_are_told_their_place(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    async with Harness({**env, "ANALYST_MAX_CONCURRENT": "1"}, slack, claude) as harness:
        queue = harness.running.analyst.parts.queue
        async with queue.slot():  # another analysis holds the only slot
            asked = await harness.mention("what is 2+2?", settle=False)
            await slack.wait_for(lambda: "number 1 in the queue" in harness.thread_text(asked), what="queue notice")
            assert claude.requests == []
            [run] = await harness.running.analyst.store.all_runs()
            assert run["status"] == "queued"
        await harness.settle()
        [run] = await harness.running.analyst.store.all_runs()
        assert run["status"] == "succeeded"


async def test_usage_shows_the_limits(harness: Harness, slack: FakeSlack) -> None:
    await harness.mention("what is 2+2?")
    await slack.deliver_command(harness.events_url, text="usage")
    await harness.settle()
    [usage] = [e.text for e in slack.ephemerals("C0DATA", "U0ALICE") if "Your limits" in e.text]
    assert "1 of 20 analyses in the last hour" in usage and "of 2,000,000 tokens" in usage


async def test_admins_see_the_workspaces_top_users(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    async with Harness({**env, "ANALYST_ADMINS": "U0ALICE"}, slack, claude) as harness:
        await harness.mention("what is 2+2?", user="U0BOB")
        await harness.mention("what is 3+3?", user="U0BOB")
        await harness.mention("what is 4+4?")
        await slack.deliver_command(harness.events_url, text="usage", user_id="U0ALICE")
        await slack.deliver_command(harness.events_url, text="usage", user_id="U0BOB")
        await harness.settle()
    [alice] = [e.text for e in slack.ephemerals("C0DATA", "U0ALICE") if "Your analyses" in e.text]
    [bob] = [e.text for e in slack.ephemerals("C0DATA", "U0BOB") if "Your analyses" in e.text]
    assert "Top users in this workspace" in alice and "<@U0BOB>: 2 runs" in alice and "<@U0ALICE>: 1 run," in alice
    assert "you're an admin" in alice
    assert "Top users" not in bob and "1 of 20" not in bob and "2 of 20 analyses" in bob


def test_prices_come_from_one_table() -> None:
    from bot.pricing import estimated_cost, price_for

    assert price_for("claude-sonnet-5-5").input_per_mtok == 2.0 and price_for("claude-sonnet-5-5").known
    assert price_for("claude-opus-5-5").output_per_mtok == 20.0
    assert not price_for("some-future-model").known
    cost = estimated_cost(
        "claude-sonnet-5-5",
        input_tokens=1_000_000,
        output_tokens=100_000,
        cache_read_tokens=1_000_000,
        cache_write_tokens=1_000_000,
    )
    assert cost == 2.0 + 1.0 + 0.1 + 2.5
