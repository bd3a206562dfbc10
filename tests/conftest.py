"""Shared fixtures: the two loopback fakes and the bot running against them.

The bot under test is the real thing — Bolt app, slack-sdk and anthropic clients, SQLite
store — started in HTTP mode on a free port and pointed at the fakes through
``SLACK_API_URL`` and ``ANTHROPIC_BASE_URL``. Tests talk to it the way Slack does
(signed event deliveries) and assert on what the fakes saw and show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes import anthropic_contract
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_contract import CONFORMANCE, ConformanceLog
from tests.harness import Harness
from tests.postgres import postgres_server, postgres_url, store_target  # noqa: F401 - fixtures

STREAMING_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "streaming.csv"

#: Marks a test that makes the fake Anthropic see, or send, what the SDK's types reject, on purpose.
EXPECTS_VIOLATION = "anthropic_contract_violation"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{EXPECTS_VIOLATION}: the test makes the fake Anthropic see or send what the SDK's types reject, on "
        "purpose (it must record at least one conformance violation, and may record any)",
    )


@pytest.fixture(autouse=True)
def anthropic_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test in which the fake Anthropic saw a request, or sent a response, that the SDK's
    own types reject (tests/fakes/anthropic_contract.py), unless the test is marked
    ``anthropic_contract_violation``; a marked test must record at least one.

    Autouse, so it is set up before (and torn down after) the fakes and the bot: a violation
    during shutdown counts too.
    """
    anthropic_contract.take_recorded()
    yield
    expected = request.node.get_closest_marker(EXPECTS_VIOLATION) is not None
    failure = anthropic_contract.verdict(anthropic_contract.take_recorded(), expected=expected)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


@pytest.fixture
def streaming_csv() -> bytes:
    return STREAMING_CSV.read_bytes()


@pytest.fixture(autouse=True)
def slack_conformance() -> Iterator[ConformanceLog]:
    """Fails a test at teardown if the fake Slack recorded a call or Block Kit payload
    that does not conform (tests/fakes/slack_contract.py). A test that means to send one
    asks for this fixture and ``take()``s what it expected."""
    CONFORMANCE.clear()
    yield CONFORMANCE
    unexpected = CONFORMANCE.take()
    if unexpected:
        listed = "\n".join(f"  - {violation}" for violation in unexpected)
        pytest.fail(f"Slack conformance violations (take() them if the test expects them):\n{listed}", pytrace=False)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, slack: FakeSlack, claude: FakeAnthropic) -> dict[str, str]:
    """The bot's environment, as an operator would set it, pointed at the fakes."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": claude.api_key,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "ANALYST_DB": str(tmp_path / "analyst.db"),
        # Socket Mode processes would otherwise all serve /metrics on 9091 (tests that want it pick a port).
        "ANALYST_METRICS_PORT": "0",
    }


@pytest.fixture
async def harness(env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic) -> AsyncIterator[Harness]:
    async with Harness(env, slack, claude) as running:
        yield running
