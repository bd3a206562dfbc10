"""The fake Anthropic's model for the rig: every answer takes a FIXED amount of Claude time.

The script starts a timer when the fake begins the turn, says what it will do, optionally runs
``steps`` trivial code steps (really, in the fake's warm sandbox, so the bot relays real
code-execution blocks), then stalls (a :class:`~tests.fakes.scripts.Hold`) until the timer
fires and writes a short Markdown answer. However long the steps take, the turn lasts
``claude_s`` from the fake's side, so any time beyond that in an analysis is the bot's (or the
rig's) own. The same script answers the bot, the naive bot and the do-nothing bot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from tests.fakes import anthropic as fake_anthropic
from tests.fakes import anthropic_contract
from tests.fakes.scripts import Action, Code, Hold, Script, ScriptContext, Text

#: Claude time of one analysis, in seconds (issue #11: "an analysis takes a fixed 2 s").
CLAUDE_S = 2.0
#: Code steps per analysis (``--steps``). None by default: each one is a fork of the fake's
#: sandbox, about 16 ms of the rig's CPU, and on two cores the rig has one; with two steps the
#: do-nothing bot's ceiling at 200 at once falls from about 48% to 18% of ideal, and every
#: bot's figure with it. ``--steps 2`` includes the bot's per-step work (its CPU per analysis
#: rises accordingly, and the rig's ceiling falls).
STEPS = 0
#: How often the fake pings a stalled stream. The fake's own 0.05 s suits tests that wait for a
#: client to leave; at 200 streams it would be 4,000 events a second no real API sends
#: (docs: build-with-claude/streaming — "Event streams may also include any number of ping
#: events"), so the rig pings once a second.
PING_INTERVAL_S = 1.0

ANSWER = """## Summary of {name}
Overall churn is 29.1% across 5,000 customers.
- *watch_hours* under 10: 57.7% vs 20.2% at 10 or more (2.9×)
- *tier*: Free churns at 45.3%, vs 19.2% (Basic) and 8.8% (Premium)
- *account_age_months* under 3: 47.5% vs 27.8% (1.7×)
"""


def slow_pings() -> None:
    """Make the fake, in this process, ping stalled streams every :data:`PING_INTERVAL_S`."""
    fake_anthropic.PING_INTERVAL_S = PING_INTERVAL_S


def trust_fake_responses() -> None:
    """Skip the fake's checks of ITS OWN responses and stream events against the SDK's types.

    Those checks keep the fake honest in the test suite (which runs them on every test); they
    tell nothing about the bot, and at 200 analyses at once they are most of the rig's CPU. The
    checks of what the bot SENDS stay on: a malformed request is still refused with a 400.
    """
    anthropic_contract.response_problems = _no_problems
    anthropic_contract.stream_event_problems = _no_problems


def _no_problems(*_args: object, **_kwargs: object) -> list[str]:
    return []


def fixed_time(claude_s: float = CLAUDE_S, steps: int = STEPS) -> Script:
    """A script whose every turn takes ``claude_s`` seconds of Claude time."""

    def script(ctx: ScriptContext) -> Iterator[Action]:
        done = asyncio.Event()
        asyncio.get_running_loop().call_later(claude_s, done.set)
        name = ctx.file_names[-1] if ctx.file_names else "your data"
        yield Text(f"I'll profile {name} first.")
        if ctx.has_code_tool:
            for step in range(1, steps + 1):
                yield Code(f"print('step {step}: rows counted')")
        yield Hold(done)
        yield Text(ANSWER.format(name=name))

    return script
