"""Several replicas on one database (issue #12): real ``slack-analyst serve --http`` processes
(tests/replicas.py) sharing the store and the loopback fakes, Slack's deliveries spread over
them round-robin, with Slack's retries, a quota race, restarts and crashes.

The backend is a fixture so each test runs on every store the replicas can share: one SQLite
file (WAL mode works across processes on one host, not across hosts) and one PostgreSQL database
(tests/postgres.py). Run leases, the thread lock and Stop are shared through the database
(bot/leases.py).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import Store
from bot.supervisor import DEFERRED, RESTARTED
from handlers.slack.controls import STOP
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Hold, Script, ScriptContext, Text, scripted
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_events import message_event
from tests.fakes.slack_models import Message
from tests.forkserver import ForkServer
from tests.harness import ALICE, CHANNEL, prompt_text
from tests.replicas import Replica, Replicas

#: Limits high enough that only deduplication keeps a delivery from running.
GENEROUS = {
    "ANALYST_MAX_CONCURRENT_PER_USER": "1000",
    "ANALYST_RUNS_PER_HOUR": "1000",
    "ANALYST_DAILY_TOKENS_PER_USER": "1000000000",
    "ANALYST_MAX_CONCURRENT": "16",
}
#: What the bot logs when a claim finds a request already handled (bot/analyst.py).
IGNORED_DUPLICATE = r"already handled; ignoring the duplicate"
#: What start-up recovery logs for each run it takes over (bot/supervisor.py).
RESUMING = r"^resuming run \d+"
#: Bounds that only turn a hang into a failure (no speed is asserted).
ANSWERS_WITHIN_S = 300.0

TAG = re.compile(r"\bq\d{3}\b")


def tag(n: int) -> str:
    """A marker naming ask ``n`` in its question, its answer and its API request."""
    return f"q{n:03d}"


def answer(ctx: ScriptContext) -> str:
    found = TAG.search(ctx.question)
    return f"Answer for {found[0] if found else 'an untagged question'}."


def quick(hold: Hold | None = None) -> Script:
    """A cheap answer naming its question (no code run), optionally stalling at ``hold``."""
    return scripted(*([hold] if hold else []), Text(answer))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment that points every replica at the same store."""
    if request.param == "sqlite":
        return {"ANALYST_DB": str(tmp_path / "shared.db")}
    url: str = request.getfixturevalue("postgres_url")
    return {"ANALYST_DB": url}


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer | None]:
    """Replicas fork from one server that has imported the bot (see tests/forkserver.py);
    ``REPLICAS_EXEC=1`` starts each as ``python -m bot`` from scratch instead."""
    if os.environ.get("REPLICAS_EXEC") == "1":
        yield None
        return
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def rig(
    env: dict[str, str],
    backend: dict[str, str],
    slack: FakeSlack,
    claude: FakeAnthropic,
    tmp_path: Path,
    forks: ForkServer | None,
) -> AsyncIterator[Replicas]:
    async with Replicas({**env, **backend}, slack, tmp_path, forks=forks) as replicas:
        yield replicas


async def ledger(backend: dict[str, str]) -> list[dict[str, Any]]:
    async with Store(backend["ANALYST_DB"]) as store:
        return await store.all_runs()


def reacted(slack: FakeSlack, message: dict[str, Any], *names: str) -> bool:
    reactions = slack.message(CHANNEL, str(message["ts"])).reactions
    return any(name in reactions for name in names)


def answers(slack: FakeSlack, message: dict[str, Any], n: int) -> list[str]:
    """The bot's replies in ``message``'s thread that answer ask ``n``."""
    thread = slack.thread(CHANNEL, str(message.get("thread_ts") or message["ts"]))
    return [m.text for m in thread if m.bot_id and f"Answer for {tag(n)}." in slack.visible_text(m)]


def requests_for(claude: FakeAnthropic, n: int) -> int:
    """Messages calls whose newest user turn is ask ``n``."""
    return sum(
        1 for r in claude.message_requests if isinstance(r.body, dict) and tag(n) in prompt_text(r.body["messages"][-1])
    )


async def ask_held(rig: Replicas, slack: FakeSlack, hold: Hold, *, to: Replica) -> dict[str, Any]:
    """Ask 0, delivered to ``to``; returns once its analysis is stalled at ``hold`` in the fake."""
    message, envelope = slack.mention_event(CHANNEL, ALICE, f"what is 6 times 7? ({tag(0)})")
    await rig.deliver(envelope, to=to)
    await asyncio.wait_for(hold.reached.wait(), timeout=60)
    return message


def follow_up_to(slack: FakeSlack, message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask 1, in ``message``'s thread: (the message, its event envelope)."""
    return slack.mention_event(CHANNEL, ALICE, f"and 6 times 8? ({tag(1)})", thread_ts=str(message["ts"]))


async def everything_answered(rig: Replicas, slack: FakeSlack, asks: list[dict[str, Any]]) -> None:
    await rig.wait_until(
        lambda: all(reacted(slack, m, "white_check_mark", "warning") for m in asks),
        timeout=ANSWERS_WITHIN_S,
        what=f"all {len(asks)} asks to finish",
    )


async def every_delivery_decided(
    rig: Replicas, claude: FakeAnthropic, asks: dict[int, dict[str, Any]], deliveries: int
) -> None:
    """Wait until each of ``deliveries`` was either ignored as a duplicate or asked Claude (a
    duplicate that ran counts too, so the assertions after show it), then until all is idle."""
    await rig.wait_until(
        lambda: len(rig.messages(IGNORED_DUPLICATE)) + sum(requests_for(claude, n) for n in asks) >= deliveries,
        timeout=ANSWERS_WITHIN_S,
        what=f"each of {deliveries} deliveries to be run or ignored",
    )
    await rig.idle()


def assert_each_answered_once(
    slack: FakeSlack, claude: FakeAnthropic, asks: dict[int, dict[str, Any]], rig: Replicas
) -> None:
    problems = [
        f"{tag(n)}: {len(answers(slack, m, n))} answers, {requests_for(claude, n)} Messages calls"
        for n, m in asks.items()
        if len(answers(slack, m, n)) != 1 or requests_for(claude, n) != 1 or not reacted(slack, m, "white_check_mark")
    ]
    assert not problems, "\n".join(problems) + f"\n{rig.report()}"


# -- exactly once ------------------------------------------------------------------------------


async def test_a_hundred_events_with_slacks_retries_are_each_analysed_once(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str], streaming_csv: bytes
) -> None:
    claude.script = quick()
    replicas = await rig.start(3, **GENEROUS)
    csv = slack.host_file(name="streaming.csv", content=streaming_csv)
    asks: dict[int, dict[str, Any]] = {}
    deliveries = []
    for n in range(100):
        message, envelope = slack.mention_event(CHANNEL, ALICE, f"what drives churn? ({tag(n)})", files=[csv])
        asks[n] = message
        first = rig.next_replica()
        deliveries.append(rig.deliver(envelope, to=first))
        if n % 5 == 0:  # Slack gave up waiting for the acknowledgement and retried, at another replica
            deliveries.append(rig.deliver(envelope, to=rig.next_replica(after=first), retry=1))
        if n % 20 == 0:  # ... and once more, after an error
            deliveries.append(rig.deliver(envelope, retry=2, reason="http_error"))
        if n % 10 == 3:  # the same message announced by its `message` event too (another event id)
            share = message_event(message, channel=CHANNEL, channel_type="channel", subtype="file_share")
            deliveries.append(rig.deliver(slack.event_callback(share), to=rig.next_replica(after=first)))
    extra = len(deliveries) - len(asks)
    await asyncio.gather(*deliveries)

    await everything_answered(rig, slack, list(asks.values()))
    await every_delivery_decided(rig, claude, asks, len(deliveries))

    assert_each_answered_once(slack, claude, asks, rig)
    assert len(rig.messages(IGNORED_DUPLICATE)) == extra
    runs = await ledger(backend)
    assert len(runs) == 100 and {r["status"] for r in runs} == {"succeeded"}
    assert len({r["message_ts"] for r in runs}) == 100
    # The work was spread: every replica ran analyses to their end.
    assert all([await rig.runs_ended(r) for r in replicas]), rig.report()


# -- quotas ------------------------------------------------------------------------------------


async def test_twenty_asks_racing_across_replicas_get_exactly_the_hourly_limit(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    claude.script = quick()
    await rig.start(3, **{**GENEROUS, "ANALYST_RUNS_PER_HOUR": "5"})
    asks = [slack.mention_event(CHANNEL, ALICE, f"what is 6 times 7? ({tag(n)})") for n in range(20)]
    await asyncio.gather(*(rig.deliver(envelope) for _, envelope in asks))
    messages = [message for message, _ in asks]
    await rig.wait_until(
        lambda: all(reacted(slack, m, "white_check_mark", "warning", "no_entry_sign") for m in messages),
        timeout=ANSWERS_WITHIN_S,
        what="every ask to be answered or refused",
    )
    await rig.idle()

    admitted = [m for m in messages if reacted(slack, m, "white_check_mark")]
    refused = [m for m in messages if reacted(slack, m, "no_entry_sign")]
    assert (len(admitted), len(refused)) == (5, 15), rig.report()
    notes = [slack.visible_text(e) for e in slack.ephemerals(CHANNEL, ALICE)]
    assert len(notes) == 15
    assert all("You've reached your limit of 5 analyses per hour" in note for note in notes), notes
    assert len(claude.message_requests) == 5
    runs = await ledger(backend)
    assert sorted(r["status"] for r in runs) == ["refused"] * 15 + ["succeeded"] * 5


async def test_twenty_asks_racing_across_replicas_get_exactly_the_concurrency_limit(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    hold = Hold(asyncio.Event())  # the admitted stay in progress until every ask is decided
    claude.script = quick(hold)
    await rig.start(3, **{**GENEROUS, "ANALYST_MAX_CONCURRENT_PER_USER": "3"})
    asks = [slack.mention_event(CHANNEL, ALICE, f"what is 6 times 7? ({tag(n)})") for n in range(20)]
    await asyncio.gather(*(rig.deliver(envelope) for _, envelope in asks))
    messages = [message for message, _ in asks]
    await rig.wait_until(
        lambda: all(reacted(slack, m, "eyes", "no_entry_sign") for m in messages),
        timeout=ANSWERS_WITHIN_S,
        what="every ask to be admitted or refused",
    )
    admitted = [m for m in messages if reacted(slack, m, "eyes")]
    assert len(admitted) == 3, rig.report()
    hold.gate.set()
    await everything_answered(rig, slack, admitted)
    await rig.idle()

    notes = [slack.visible_text(e) for e in slack.ephemerals(CHANNEL, ALICE)]
    assert len(notes) == 17
    assert all("You already have 3 analyses in progress (the limit is 3 at a time)" in n for n in notes), notes
    assert all(reacted(slack, m, "white_check_mark") for m in admitted)
    runs = await ledger(backend)
    assert sorted(r["status"] for r in runs) == ["refused"] * 17 + ["succeeded"] * 3


# -- restarts ----------------------------------------------------------------------------------


async def deliver_asks(
    rig: Replicas, slack: FakeSlack, numbers: range, asks: dict[int, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Ask questions ``numbers``, round-robin over the live replicas; adds them to ``asks``."""
    envelopes = {}
    for n in numbers:
        asks[n], envelopes[n] = slack.mention_event(CHANNEL, ALICE, f"what is 6 times 7? ({tag(n)})")
    await asyncio.gather(*(rig.deliver(envelope) for envelope in envelopes.values()))
    return envelopes


async def test_a_rolling_restart_with_nothing_in_flight_loses_and_duplicates_nothing(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    claude.script = quick()
    old, other = await rig.start(2, **GENEROUS)
    asks: dict[int, dict[str, Any]] = {}
    before = await deliver_asks(rig, slack, range(0, 10), asks)
    await everything_answered(rig, slack, list(asks.values()))
    await rig.idle()  # the old process has no run in flight

    new = await rig.start_one(**GENEROUS)
    assert not new.messages(RESUMING)
    assert await rig.sigterm(old) == 0
    assert old.messages(r"^shutting down$")

    await deliver_asks(rig, slack, range(10, 20), asks)
    # Slack retries a few of the old process's events at the replicas now serving: all ignored.
    for n in (0, 3, 7):
        await rig.deliver(before[n], retry=3, reason="http_timeout")
    await everything_answered(rig, slack, list(asks.values()))
    await every_delivery_decided(rig, claude, asks, len(asks) + 3)

    assert_each_answered_once(slack, claude, asks, rig)
    assert {name for name, _ in rig.messages(IGNORED_DUPLICATE)} <= {other.name, new.name}
    assert await rig.runs_ended(new) > 0, rig.report()
    runs = await ledger(backend)
    assert len(runs) == 20 and {r["status"] for r in runs} == {"succeeded"}


async def test_a_rolling_restart_with_a_run_in_flight_loses_and_duplicates_nothing(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = quick(hold)
    old = await rig.start_one(**GENEROUS, ANALYST_SHUTDOWN_GRACE_S="0")
    await rig.start_one(**GENEROUS)
    message = await ask_held(rig, slack, hold, to=old)

    # The new process starts while the old one works: it must leave that live run (its lease) alone.
    new = await rig.start_one(**GENEROUS)
    assert not new.messages(RESUMING), rig.report()

    # Past its (zero) grace the old one hands the run back; a live replica finishes it at once.
    assert await rig.sigterm(old) == 0
    hold.gate.set()
    asks = {0: message}
    await deliver_asks(rig, slack, range(1, 6), asks)
    await everything_answered(rig, slack, list(asks.values()))
    await rig.idle()

    for n, asked in asks.items():
        assert len(answers(slack, asked, n)) == 1, rig.report()
    text = "\n".join(slack.visible_text(m) for m in slack.thread(CHANNEL, message["ts"]) if m.bot_id)
    assert text.count(RESTARTED) == 1
    runs = await ledger(backend)
    assert len(runs) == 6 and {r["status"] for r in runs} == {"succeeded"}


async def test_a_killed_replicas_run_is_finished_by_another_within_about_a_lease(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = quick(hold)
    lease = {"ANALYST_LEASE_S": "1"}
    doomed, survivor = await rig.start(2, **GENEROUS, **lease)
    message = await ask_held(rig, slack, hold, to=doomed)
    await rig.sigkill(doomed)
    hold.gate.set()

    # No restart: the survivor takes the run over once its lease expires, or at once when it sees
    # the owner's process is gone from this host (bounded generously: a hang is the failure).
    await rig.wait_until(
        lambda: reacted(slack, message, "white_check_mark"), timeout=10, what="the survivor to finish the run"
    )
    await rig.idle()
    text = "\n".join(slack.visible_text(m) for m in slack.thread(CHANNEL, message["ts"]) if m.bot_id)
    assert RESTARTED in text and len(answers(slack, message, 0)) == 1
    assert survivor.messages(RESUMING)
    [run] = await ledger(backend)
    assert run["status"] == "succeeded"


# -- threads -----------------------------------------------------------------------------------


async def test_a_follow_up_at_another_replica_waits_for_the_running_answer_and_reuses_its_container(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = quick(hold)
    first, second = await rig.start(2)
    message = await ask_held(rig, slack, hold, to=first)
    follow_up, envelope = follow_up_to(slack, message)
    await rig.deliver(envelope, to=second)
    # Let the first answer go once the other replica has decided about the follow-up (without the
    # thread lock in the database it admits or refuses it at once); it waits, and the window runs out.
    await rig.holds_within(lambda: reacted(slack, follow_up, "eyes", "no_entry_sign"), timeout=5)
    hold.gate.set()
    await rig.wait_until(
        lambda: reacted(slack, follow_up, "white_check_mark", "warning", "no_entry_sign"),
        timeout=ANSWERS_WITHIN_S,
        what="the follow-up to end",
    )
    await rig.idle()

    assert len(answers(slack, follow_up, 1)) == 1, rig.report()
    first_call, follow_up_call = (
        next(r for r in claude.message_requests if tag(n) in prompt_text(r.body["messages"][-1])) for n in (0, 1)
    )
    first_response = next(m for m in claude.responses if "Answer for q000." in str(m["content"]))
    assert claude.requests.index(follow_up_call) > claude.requests.index(first_call)
    assert follow_up_call.body.get("container") == first_response["container"]["id"]
    assert "Answer for q000." in str(follow_up_call.body["messages"])


async def test_a_follow_up_waiting_at_a_replica_that_shuts_down_is_run_by_another(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = quick(hold)
    first = await rig.start_one()
    leaving = await rig.start_one(ANALYST_SHUTDOWN_GRACE_S="0")
    message = await ask_held(rig, slack, hold, to=first)
    follow_up, envelope = follow_up_to(slack, message)
    await rig.deliver(envelope, to=leaving)
    await rig.wait_until(
        lambda: bool(leaving.messages(r"^waiting for thread ")), timeout=60, what="the follow-up to wait for the thread"
    )

    # It shuts down while the follow-up waits: the follow-up is admitted for later (not refused for
    # Alice's analysis in progress: it runs after it, not beside it) and handed back.
    assert await rig.sigterm(leaving) == 0
    hold.gate.set()
    await rig.wait_until(
        lambda: bool(answers(slack, follow_up, 1)), timeout=ANSWERS_WITHIN_S, what="the follow-up's answer"
    )
    await rig.idle()

    assert len(answers(slack, message, 0)) == 1 and len(answers(slack, follow_up, 1)) == 1, rig.report()
    text = "\n".join(slack.visible_text(m) for m in slack.thread(CHANNEL, message["ts"]) if m.bot_id)
    assert DEFERRED in text
    assert sorted(r["status"] for r in await ledger(backend)) == ["succeeded", "succeeded"]


# -- controls ----------------------------------------------------------------------------------


def stop_button(slack: FakeSlack, message: dict[str, Any]) -> Message | None:
    """The bot's message in ``message``'s thread that shows the Stop button, if any."""
    return next(
        (
            m
            for m in slack.thread(CHANNEL, str(message["ts"]))
            if m.bot_id and any(e.get("action_id") == STOP for b in m.blocks or [] for e in b.get("elements") or [])
        ),
        None,
    )


async def test_stop_pressed_at_another_replica_stops_the_run(
    rig: Replicas, slack: FakeSlack, claude: FakeAnthropic, backend: dict[str, str]
) -> None:
    hold = Hold(asyncio.Event())
    claude.script = quick(hold)
    running_it, other = await rig.start(2)
    message = await ask_held(rig, slack, hold, to=running_it)
    await rig.wait_until(lambda: stop_button(slack, message) is not None, timeout=60, what="the Stop button")
    button = stop_button(slack, message)
    assert button is not None

    # The load balancer hands the click to the replica that is not running the analysis.
    status, _, _ = await slack.deliver_interaction(other.events_url, slack.click(ALICE, CHANNEL, button.ts, STOP))
    assert status == 200
    await rig.wait_until(
        lambda: reacted(slack, message, "black_square_for_stop") or bool(slack.ephemerals(CHANNEL, ALICE)),
        timeout=60,
        what="the run to stop, or a note about the click",
    )
    hold.gate.set()
    await rig.wait_until(
        lambda: reacted(slack, message, "white_check_mark", "warning", "black_square_for_stop"),
        timeout=ANSWERS_WITHIN_S,
        what="the run to end",
    )
    await rig.idle()

    # The other replica records the Stop for the run's owner rather than saying it has finished.
    assert [slack.visible_text(e) for e in slack.ephemerals(CHANNEL, ALICE)] == []
    assert reacted(slack, message, "black_square_for_stop") and not answers(slack, message, 0)
    [run] = await ledger(backend)
    assert run["status"] == "cancelled" and run["error"] == f"stopped by {ALICE}"
