"""The adaptive limiter (bot/limiter.py, bot/ratelimits.py): the arithmetic, the queue, the gate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bot.limiter import (
    ADAPTIVE_MAX_WIDTH,
    NARROW_COOLDOWN_S,
    START_WIDTH,
    Limiter,
    narrowed,
    reading,
    should_retell,
    widened,
)
from bot.ratelimits import Headroom, parse_headroom, retry_after
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Action, Code, Hold, ScriptContext, Text, scripted
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import Message
from tests.harness import Asked, Harness


class FakeTime:
    """A clock the test moves, and a sleep that moves it (nothing really waits)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limits(**remaining: tuple[int, int]) -> dict[str, str]:
    """Rate-limit headers: ``requests=(remaining, limit)`` → the -remaining and -limit headers."""
    headers = {}
    for name, (left, most) in remaining.items():
        key = name.replace("_", "-")
        headers[f"anthropic-ratelimit-{key}-limit"] = str(most)
        headers[f"anthropic-ratelimit-{key}-remaining"] = str(left)
        headers[f"anthropic-ratelimit-{key}-reset"] = "2026-06-01T12:00:00Z"
    return headers


HEALTHY = limits(requests=(3900, 4000), input_tokens=(1_900_000, 2_000_000))
LOW = limits(requests=(3900, 4000), output_tokens=(30_000, 400_000))  # 7.5 % of output tokens left
TIGHT = limits(requests=(1000, 4000))


# -- reading the headers ---------------------------------------------------------------------------


def test_headroom_is_the_fraction_left_of_each_reported_limit() -> None:
    headroom = parse_headroom(
        {
            "Anthropic-RateLimit-Requests-Limit": "50",  # any case, as HTTP allows
            "anthropic-ratelimit-requests-remaining": "45",
            **limits(tokens=(20_000, 80_000), input_tokens=(40_000, 40_000), output_tokens=(4_000, 16_000)),
        }
    )
    assert headroom.remaining == {"requests": 0.9, "tokens": 0.25, "input-tokens": 1.0, "output-tokens": 0.25}
    assert headroom.lowest == 0.25


def test_missing_or_garbage_rate_limit_headers_are_ignored() -> None:
    assert parse_headroom({}) == Headroom() and Headroom().lowest is None
    garbage = {
        "anthropic-ratelimit-requests-limit": "lots",
        "anthropic-ratelimit-requests-remaining": "3",
        "anthropic-ratelimit-tokens-limit": "0",  # a zero limit says nothing about a fraction
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-limit": "1000",
        "anthropic-ratelimit-input-tokens-remaining": "-5",
        "anthropic-ratelimit-output-tokens-limit": "1000",  # no -remaining
        "anthropic-ratelimit-something-limit": "10",
        "anthropic-ratelimit-something-remaining": "0",
    }
    assert parse_headroom(garbage) == Headroom()
    assert parse_headroom({**garbage, **limits(requests=(5, 10))}).remaining == {"requests": 0.5}


def test_retry_after_takes_seconds_or_milliseconds_and_the_longer_of_both() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"Retry-After-Ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "1", "retry-after-ms": "200"}) == 1.0
    assert retry_after({"retry-after": "soon"}) is None and retry_after({"retry-after": "-3"}) is None
    assert retry_after({}) is None


def test_a_response_reads_low_tight_or_healthy() -> None:
    assert reading(parse_headroom(LOW)) == "low"
    assert reading(parse_headroom(TIGHT)) == "tight"
    assert reading(parse_headroom(HEALTHY)) == "healthy"
    assert reading(Headroom()) == "healthy"  # none reported: a success is a success


# -- the arithmetic ----------------------------------------------------------------------------------


def test_narrowing_cuts_what_is_in_use_and_never_goes_below_one() -> None:
    assert narrowed(64.0, 64, 0.5) == 32.0
    assert narrowed(64.0, 10, 0.5) == 5.0  # 10 in use: the unused 54 said nothing
    assert narrowed(8.0, 20, 0.75) == 6.0  # never more than the width
    assert narrowed(1.0, 1, 0.5) == 1.0 and narrowed(3.0, 0, 0.5) == 1.0


def test_widening_is_one_per_call_in_slow_start_then_one_per_round_and_stops_at_the_most() -> None:
    assert widened(64.0, 256, slow_start=True) == 65.0
    assert widened(10.0, 256, slow_start=False) == pytest.approx(10.1)
    width = 10.0
    for _ in range(10):  # one round of 10 calls: about one more
        width = widened(width, 256, slow_start=False)
    assert 10.9 < width < 11.0
    assert widened(256.0, 256, slow_start=True) == 256.0 and widened(4.0, 4, slow_start=False) == 4.0


def test_a_waiter_is_retold_near_the_front_or_when_its_place_shrank_by_a_fifth() -> None:
    assert not should_retell(10, 10) and not should_retell(10, 11)
    assert should_retell(4, 3) and should_retell(2, 1)
    assert not should_retell(10, 9) and should_retell(10, 8)
    assert not should_retell(200, 161) and should_retell(200, 160)
    # 200 people in line, served one at a time: the last is told about twenty times, not 199.
    told, updates = 200, 0
    for place in range(199, 0, -1):
        if should_retell(told, place):
            told, updates = place, updates + 1
    assert told == 1 and updates <= 20


# -- the width follows what the API says -------------------------------------------------------------


async def hold(limiter: Limiter, n: int) -> tuple[list[asyncio.Task[None]], asyncio.Event]:
    """``n`` analyses holding slots until the returned event is set."""
    release = asyncio.Event()
    holding: list[asyncio.Event] = []

    async def analysis(entered: asyncio.Event) -> None:
        async with limiter.slot():
            entered.set()
            await release.wait()

    tasks = []
    for _ in range(n):
        entered = asyncio.Event()
        holding.append(entered)
        tasks.append(asyncio.create_task(analysis(entered)))
    for entered in holding:
        await entered.wait()
    return tasks, release


def test_the_width_starts_generous_and_within_the_ceiling() -> None:
    assert Limiter().slots == START_WIDTH and Limiter().most == ADAPTIVE_MAX_WIDTH
    capped = Limiter(ceiling=2)
    assert capped.slots == 2 and capped.most == 2 and capped.report()["ceiling"] == 2


async def test_low_headroom_narrows_once_per_window_not_per_response() -> None:
    fake_time = FakeTime()
    limiter = Limiter(ceiling=16, clock=fake_time.clock, sleep=fake_time.sleep)
    tasks, release = await hold(limiter, 16)
    for _ in range(10):  # a burst of responses all saying the same
        limiter.accepted(LOW)
    assert limiter.slots == 12
    fake_time.now += NARROW_COOLDOWN_S
    limiter.accepted(LOW)
    assert limiter.slots == 12  # 16 still run: the cut to 12 hasn't taken effect, so no second cut
    release.set()
    await asyncio.gather(*tasks)
    tasks, release = await hold(limiter, 12)
    limiter.accepted(LOW)
    assert limiter.slots == 9
    release.set()
    await asyncio.gather(*tasks)


async def test_a_refusal_halves_the_width_and_pauses_every_new_call_for_retry_after() -> None:
    fake_time = FakeTime()
    limiter = Limiter(ceiling=8, clock=fake_time.clock, sleep=fake_time.sleep)
    tasks, release = await hold(limiter, 8)
    limiter.refused({"retry-after": "7"})
    limiter.refused({"retry-after": "3"})  # a second refusal in the burst: no second cut, no shorter pause
    assert limiter.slots == 4 and limiter.paused_s == 7.0
    started = fake_time.now
    await limiter.gate()
    assert fake_time.now - started >= 7.0 and limiter.paused_s == 0.0
    await limiter.gate()  # not paused: returns at once
    assert fake_time.now - started == 7.0
    release.set()
    await asyncio.gather(*tasks)


async def test_widening_only_when_the_width_is_used_in_full_and_never_past_the_ceiling() -> None:
    limiter = Limiter(ceiling=6, start=4)
    limiter.accepted(HEALTHY)
    assert limiter.slots == 4  # idle: no growth
    tasks, release = await hold(limiter, 4)
    limiter.accepted(TIGHT)
    assert limiter.slots == 4  # tight: hold
    for _ in range(5):
        limiter.accepted(HEALTHY)
    assert limiter.slots == 5  # grew by one, then 4 running < 5: not saturated any more
    more, more_release = await hold(limiter, 1)
    for _ in range(5):
        limiter.accepted(HEALTHY)
    extra, extra_release = await hold(limiter, 1)
    assert limiter.slots == 6
    for _ in range(5):
        limiter.accepted(HEALTHY)
    assert limiter.slots == 6  # the ceiling
    for event in (release, more_release, extra_release):
        event.set()
    await asyncio.gather(*tasks, *more, *extra)


async def test_after_a_cut_the_width_grows_back_by_about_one_per_round() -> None:
    fake_time = FakeTime()
    limiter = Limiter(ceiling=100, start=10, clock=fake_time.clock, sleep=fake_time.sleep)
    tasks, release = await hold(limiter, 10)
    limiter.refused({})
    assert limiter.slots == 5
    for _ in range(10):  # one round of healthy calls from the 10 still running
        limiter.accepted(HEALTHY)
    assert limiter.slots == 6
    release.set()
    await asyncio.gather(*tasks)


# -- the queue ------------------------------------------------------------------------------------


HANG_LIMIT_S = 30


class Told:
    """An ``on_wait``: records the places a waiter is told, and lets the test wait for them."""

    def __init__(self) -> None:
        self.places: list[int] = []
        self.changed = asyncio.Event()

    async def __call__(self, place: int) -> None:
        self.places.append(place)
        self.changed.set()

    async def until(self, expected: list[int]) -> None:
        """Wait until the places told are ``expected`` (the limit only turns a hang into a failure)."""
        async with asyncio.timeout(HANG_LIMIT_S):
            while self.places != expected:
                self.changed.clear()
                await self.changed.wait()


async def test_waiters_are_served_in_arrival_order_and_told_each_move_near_the_front() -> None:
    limiter = Limiter(ceiling=1, tell_after=0)
    order: list[int] = []
    told = {n: Told() for n in range(4)}
    entered = {n: asyncio.Event() for n in range(4)}
    leave = {n: asyncio.Event() for n in range(4)}

    async def analysis(n: int) -> None:
        async with limiter.slot(on_wait=told[n]):
            order.append(n)
            entered[n].set()
            await leave[n].wait()

    tasks = [asyncio.create_task(analysis(0))]
    await entered[0].wait()
    for n in (1, 2, 3):
        tasks.append(asyncio.create_task(analysis(n)))
        await told[n].until([n])  # in line, told its place
    leave[0].set()
    await entered[1].wait()
    await told[3].until([3, 2])
    assert told[2].places == [2, 1]
    leave[1].set()
    await entered[2].wait()
    await told[3].until([3, 2, 1])
    leave[2].set()
    leave[3].set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3] and told[1].places == [1] and told[0].places == []
    assert limiter.running == 0 and limiter.waiting == 0


async def test_a_waiter_cancelled_in_line_loses_no_slot_and_moves_the_others_up() -> None:
    limiter = Limiter(ceiling=1, tell_after=0)
    tasks, release = await hold(limiter, 1)
    first, second = Told(), Told()

    async def wait_forever() -> None:
        async with limiter.slot(on_wait=first):
            raise AssertionError("the cancelled waiter must never run")

    served = asyncio.Event()

    async def patient() -> None:
        async with limiter.slot(on_wait=second):
            served.set()

    gone = asyncio.create_task(wait_forever())
    await first.until([1])
    later = asyncio.create_task(patient())
    await second.until([2])
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    await second.until([2, 1])
    assert limiter.waiting == 1 and limiter.running == 1
    release.set()
    await asyncio.gather(*tasks, later)
    assert served.is_set() and limiter.running == 0 and limiter.waiting == 0


async def test_a_waiter_cancelled_just_after_being_served_passes_its_slot_on() -> None:
    limiter = Limiter(ceiling=1, tell_after=0)
    release, entered = asyncio.Event(), asyncio.Event()
    first_told, second_told = Told(), Told()
    holding = asyncio.Event()

    async def analysis(told: Told) -> None:
        async with limiter.slot(on_wait=told):
            entered.set()

    first: asyncio.Task[None] | None = None

    async def holder() -> None:
        async with limiter.slot():
            holding.set()
            await release.wait()
        # In the same step as leaving: the first waiter was handed the slot, and is cancelled
        # before it resumes.
        assert first is not None
        first.cancel()

    holder_task = asyncio.create_task(holder())
    await holding.wait()
    first = asyncio.create_task(analysis(first_told))
    await first_told.until([1])
    second = asyncio.create_task(analysis(second_told))
    await second_told.until([2])
    release.set()
    await holder_task
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert entered.is_set() and limiter.running == 0 and limiter.waiting == 0


async def test_narrowing_mid_flight_cancels_no_holder_and_widening_wakes_waiters() -> None:
    fake_time = FakeTime()
    limiter = Limiter(ceiling=8, start=4, tell_after=0, clock=fake_time.clock, sleep=fake_time.sleep)
    tasks, release = await hold(limiter, 4)
    limiter.refused({})
    assert limiter.slots == 2 and limiter.running == 4 and not any(t.done() for t in tasks)
    entered, told = asyncio.Event(), Told()

    async def late() -> None:
        async with limiter.slot(on_wait=told):
            entered.set()
            await release.wait()

    waiter = asyncio.create_task(late())
    await told.until([1])
    while limiter.slots < 5:  # healthy calls from the 4 still running widen it back …
        assert not entered.is_set()
        limiter.accepted(HEALTHY)
    await entered.wait()  # … and the widening that makes room wakes the waiter at once
    assert limiter.running == 5
    release.set()
    await asyncio.gather(*tasks, waiter)


async def test_a_long_line_is_retold_a_few_times_each_not_at_every_move() -> None:
    limiter = Limiter(ceiling=1, tell_after=0)
    n = 200
    told = [Told() for _ in range(n + 1)]
    entered = [asyncio.Event() for _ in range(n + 1)]
    leave = [asyncio.Event() for _ in range(n + 1)]

    async def analysis(i: int) -> None:
        async with limiter.slot(on_wait=told[i]):
            entered[i].set()
            await leave[i].wait()

    tasks = [asyncio.create_task(analysis(0))]
    await entered[0].wait()
    for i in range(1, n + 1):
        tasks.append(asyncio.create_task(analysis(i)))
        await told[i].until([i])
    for i in range(n):  # one analysis ends at a time; the line moves up by one
        leave[i].set()
        await entered[i + 1].wait()
    leave[n].set()
    await asyncio.gather(*tasks)
    last = told[n].places
    assert last[0] == n and last[-1] == 1 and len(last) <= 21 and last == sorted(last, reverse=True)
    # About log(n) tells each (3,123 here), where telling every move would be n(n+1)/2 = 20,100.
    assert sum(len(t.places) for t in told) < 20 * n
    assert limiter.running == 0


async def test_a_waiter_is_told_its_place_only_once_it_has_waited_a_while() -> None:
    """A burst that the width absorbs within a moment posts no queue notes; a waiter still in line
    after ``tell_after`` is told where it is then, and again as it moves up."""
    patient = Limiter(ceiling=1, tell_after=3600)  # never waits that long here
    tasks, release = await hold(patient, 1)
    untold = Told()
    lining_up, entered = asyncio.Event(), asyncio.Event()

    async def brief() -> None:
        lining_up.set()
        async with patient.slot(on_wait=untold):  # in line before this task first waits
            entered.set()

    waiter = asyncio.create_task(brief())
    await lining_up.wait()
    assert patient.waiting == 1
    release.set()
    await asyncio.gather(*tasks, waiter)
    assert entered.is_set() and untold.places == []

    limiter = Limiter(ceiling=1, tell_after=0.01)
    tasks, release = await hold(limiter, 1)
    first, second = Told(), Told()
    leave = asyncio.Event()

    async def waits(told: Told) -> None:
        async with limiter.slot(on_wait=told):
            await leave.wait()

    queued = [asyncio.create_task(waits(first)), asyncio.create_task(waits(second))]
    await second.until([2])  # told after the grace, at its place then
    await first.until([1])
    release.set()
    await second.until([2, 1])  # moved up: told again
    leave.set()
    await asyncio.gather(*tasks, *queued)


# -- end to end, against the fakes -----------------------------------------------------------------


class HeldWindow:
    """The fake's rate window clock: stands still (the budget stays used up) until released, then
    follows the real clock (windows of real seconds, which the bot's real waits see pass)."""

    def __init__(self) -> None:
        self.held = True

    def __call__(self) -> float:
        return 0.0 if self.held else time.monotonic()


async def test_when_the_per_minute_budget_runs_out_every_run_waits_its_turn_and_none_fails(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code("print(6 * 7)"), Text("The answer is 42."))
    window = HeldWindow()
    claude.rate_limit(requests=2, window_s=1.0, clock=window)  # two calls per one-second window
    # No retries at all: waiting out a refusal's retry-after must not use one up.
    settings = {**env, "ANALYST_MAX_CONCURRENT_PER_USER": "5", "ANALYST_ANTHROPIC_MAX_RETRIES": "0"}
    async with Harness(settings, slack, claude) as harness:
        asked = [await harness.mention(f"what is {n} times 7?", settle=False) for n in range(5)]

        def refused() -> int:
            return sum(r.status == 429 for r in claude.message_requests)

        # Of five analyses, two get the window's calls and three are refused (and go on being
        # refused, each after waiting its retry-after, while the window is held) …
        await slack.wait_for(lambda: refused() >= 3, timeout=60, what="three refusals")
        window.held = False  # … until it refills.
        await harness.settle()
        runs = await harness.running.analyst.store.all_runs()
        limiter = harness.running.analyst.parts.queue
        texts = [harness.thread_text(a) for a in asked]
    assert [r["status"] for r in runs] == ["succeeded"] * 5
    assert all("The answer is 42." in text for text in texts)
    assert [r.status for r in claude.message_requests].count(200) == 5
    assert claude.retried_too_soon() == []  # no refused call came back before its retry-after
    assert sum("Claude is busy right now — trying again" in text for text in texts) >= 3
    assert all(text.count("Claude is busy right now") <= 1 for text in texts)  # one task per thread, updated
    assert limiter.slots < START_WIDTH  # the refusals narrowed it


async def test_with_a_ceiling_of_two_the_third_ask_is_told_its_place_and_the_note_follows_it_up(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    names = ("alpha", "bravo", "charlie", "delta")
    holds = {name: Hold(asyncio.Event()) for name in names}

    def script(ctx: ScriptContext) -> Iterator[Action]:
        name = next(n for n in names if n in ctx.question)
        yield Code("print(6 * 7)")
        yield holds[name]
        yield Text(f"Done with {name}.")

    claude.script = script
    settings = {**env, "ANALYST_MAX_CONCURRENT": "2", "ANALYST_MAX_CONCURRENT_PER_USER": "4"}
    async with Harness(settings, slack, claude) as harness:

        def notes(asked: Asked) -> list[Message]:
            return [m for m in harness.replies(asked) if "in the queue" in m.text or "Your turn came" in m.text]

        asked = {}
        for name in ("alpha", "bravo"):
            asked[name] = await harness.mention(f"{name}: what is 6 times 7?", settle=False)
            await asyncio.wait_for(holds[name].reached.wait(), timeout=30)
        for name, place in (("charlie", 1), ("delta", 2)):
            asked[name] = await harness.mention(f"{name}: what is 6 times 7?", settle=False)
            await slack.wait_for(
                lambda name=name, place=place: f"number {place} in the queue" in harness.thread_text(asked[name]),
                what=f"{name} told its place",
            )
        [delta_note] = notes(asked["delta"])
        assert claude.message_requests and len(claude.message_requests) == 2  # the queued two wait, no calls

        holds["alpha"].gate.set()  # alpha finishes: charlie starts, delta moves up to first in line
        await asyncio.wait_for(holds["charlie"].reached.wait(), timeout=30)
        await slack.wait_for(
            lambda: "number 1 in the queue" in harness.thread_text(asked["delta"]), what="delta moved up"
        )
        [moved] = notes(asked["delta"])
        assert moved.ts == delta_note.ts  # the same note, edited: no second message
        await slack.wait_for(lambda: "Your turn came" in harness.thread_text(asked["charlie"]), what="charlie's turn")
        assert len(notes(asked["charlie"])) == 1

        for hold in holds.values():
            hold.gate.set()
        await harness.settle()
        runs = await harness.running.analyst.store.all_runs()
        assert [r["status"] for r in runs] == ["succeeded"] * 4
        assert "number 2 in the queue" not in harness.thread_text(asked["delta"])
